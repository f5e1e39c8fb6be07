"""SSD300 against the paper and against torchvision's ssd300_vgg16: same weights in, same numbers out."""

import math

import pytest
import torch
from torchvision.models import vgg16
from torchvision.models.detection import ssd300_vgg16
from torchvision.models.detection._utils import BoxCoder

from model import (FEATURE_MAPS, N_PRIORS_PER_LOCATION, PRIOR_SCALES, SSD300, VGGBase, create_prior_boxes,
                   torchvision_ssd_to_ssd300_state_dict, vgg16_to_ssd_base_state_dict)
from utils import cxcy_to_gcxgcy, cxcy_to_xy, gcxgcy_to_cxcy, xy_to_cxcy

N_CLASSES = 21


@pytest.fixture(scope="module")
def twin_models():
    """A random torchvision ssd300_vgg16 and an SSD300 holding the same weights."""
    torch.manual_seed(0)
    tv_model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES).eval()
    # Random non-zero biases and rescale factors, so that a mix-up of any two layers shows.
    with torch.no_grad():
        for name, parameter in tv_model.named_parameters():
            if name.endswith("bias"):
                parameter.uniform_(-0.1, 0.1)
        tv_model.backbone.scale_weight.uniform_(10, 30)
    ours = SSD300(N_CLASSES).eval()
    missing, unexpected = ours.load_state_dict(torchvision_ssd_to_ssd300_state_dict(tv_model.state_dict()),
                                               strict=False)
    assert missing == ["priors_cxcy"] and unexpected == []
    return tv_model, ours


@pytest.fixture(scope="module")
def twin_outputs(twin_models):
    tv_model, ours = twin_models
    images = torch.randn(2, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tv_out = tv_model.head(list(tv_model.backbone(images).values()))
        our_locs, our_scores = ours(images)
    return tv_out, our_locs, our_scores


def test_forward_matches_torchvision(twin_outputs):
    tv_out, our_locs, our_scores = twin_outputs
    assert our_locs.shape == (2, 8732, 4) and our_scores.shape == (2, 8732, N_CLASSES)
    torch.testing.assert_close(our_locs, tv_out["bbox_regression"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_scores, tv_out["cls_logits"], rtol=1e-5, atol=1e-5)


def test_feature_map_sizes():
    base = VGGBase()
    with torch.no_grad():
        conv4_3, conv7 = base(torch.zeros(1, 3, 300, 300))
    assert conv4_3.shape == (1, 512, 38, 38)  # needs pool3's ceil_mode
    assert conv7.shape == (1, 1024, 19, 19)  # needs pool5 3x3 stride 1


def test_prior_count_and_table():
    priors = create_prior_boxes()
    assert priors.shape == (8732, 4)
    sizes = {"conv4_3": 38, "conv7": 19, "conv8_2": 10, "conv9_2": 5, "conv10_2": 3, "conv11_2": 1}
    expected_counts = [sizes[f] ** 2 * N_PRIORS_PER_LOCATION[f] for f in FEATURE_MAPS]
    assert expected_counts == [5776, 2166, 600, 150, 36, 4]

    start = 0
    scales = [PRIOR_SCALES[f] for f in FEATURE_MAPS] + [1.0]
    for k, (fmap, count) in enumerate(zip(FEATURE_MAPS, expected_counts)):
        block = priors[start:start + count]
        start += count
        s, s_next = scales[k], scales[k + 1]
        first_location = block[:N_PRIORS_PER_LOCATION[fmap]]
        expected_wh = [(s, s), (math.sqrt(s * s_next),) * 2, (s * math.sqrt(2), s / math.sqrt(2)),
                       (s / math.sqrt(2), s * math.sqrt(2))]
        if N_PRIORS_PER_LOCATION[fmap] == 6:
            expected_wh += [(s * math.sqrt(3), s / math.sqrt(3)), (s / math.sqrt(3), s * math.sqrt(3))]
        expected_wh = torch.tensor(expected_wh).clamp(max=1.0)
        torch.testing.assert_close(first_location[:, 2:], expected_wh)
        half_cell = 0.5 / sizes[fmap]
        torch.testing.assert_close(first_location[:, :2], torch.full((len(expected_wh), 2), half_cell))
    # The ratio 3 is exactly 3, not 1/0.333.
    conv7_prior = priors[5776 + 4]
    assert conv7_prior[2] / conv7_prior[3] == pytest.approx(3.0, rel=1e-6)
    assert priors[:, 2:].max() <= 1.0


def test_prior_order_is_location_major_row_by_row():
    priors = create_prior_boxes()
    conv4_3 = priors[:5776].view(38, 38, 4, 4)  # (row, column, prior, cxcywh)
    cell = 1 / 38
    torch.testing.assert_close(conv4_3[0, 1, 0, :2], torch.tensor([1.5 * cell, 0.5 * cell]))  # x moves first
    torch.testing.assert_close(conv4_3[1, 0, 0, :2], torch.tensor([0.5 * cell, 1.5 * cell]))
    last = priors[-4:]
    torch.testing.assert_close(last[:, :2], torch.full((4, 2), 0.5))


def test_priors_follow_the_model_to_another_dtype_and_are_saved():
    model = SSD300(3)
    assert "priors_cxcy" in model.state_dict()
    assert model.to(torch.float64).priors_cxcy.dtype == torch.float64


def test_encode_decode_round_trip():
    generator = torch.Generator().manual_seed(0)
    priors = create_prior_boxes()
    xy = torch.rand(8732, 2, generator=generator) * 0.5
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(8732, 2, generator=generator) * 0.45], dim=1)
    encoded = cxcy_to_gcxgcy(xy_to_cxcy(boxes), priors)
    torch.testing.assert_close(cxcy_to_xy(gcxgcy_to_cxcy(encoded, priors)), boxes, rtol=1e-5, atol=1e-5)
    # Same encoding as torchvision's BoxCoder with the SSD weights (10, 10, 5, 5).
    torchvision_encoded = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)).encode_single(boxes, cxcy_to_xy(priors))
    torch.testing.assert_close(encoded, torchvision_encoded, rtol=1e-4, atol=1e-4)


def test_decode_does_not_overflow_on_huge_offsets():
    priors = create_prior_boxes()[:3]
    decoded = gcxgcy_to_cxcy(torch.full((3, 4), 1e4), priors)
    assert torch.isfinite(decoded).all()


def test_vgg16_decimation_into_conv6_conv7():
    torch.manual_seed(0)
    vgg_state_dict = vgg16(weights=None).state_dict()
    base = VGGBase()
    base.load_state_dict(vgg16_to_ssd_base_state_dict(vgg_state_dict))

    fc6 = vgg_state_dict["classifier.0.weight"].view(4096, 512, 7, 7)
    assert base.conv6.weight.shape == (1024, 512, 3, 3)
    # Filter i of conv6 is fc6's filter 4i; tap (a, b) is fc6's tap (3a, 3b).
    torch.testing.assert_close(base.conv6.weight[5, 7, 1, 2], fc6[20, 7, 3, 6])
    torch.testing.assert_close(base.conv6.weight[1023, 511, 2, 0], fc6[4092, 511, 6, 0])
    torch.testing.assert_close(base.conv6.bias[10], vgg_state_dict["classifier.0.bias"][40])
    assert base.conv7.weight.shape == (1024, 1024, 1, 1)
    torch.testing.assert_close(base.conv7.weight[3, 9, 0, 0], vgg_state_dict["classifier.3.weight"][12, 36])
    # Convolutions are copied by name: conv4_3 is VGG's features.21, conv5_1 its features.24.
    torch.testing.assert_close(base.conv4_3.weight, vgg_state_dict["features.21.weight"])
    torch.testing.assert_close(base.conv5_1.bias, vgg_state_dict["features.24.bias"])


def test_load_pretrained_layers_uses_the_weights_api(monkeypatch):
    """``load_pretrained_layers`` asks torchvision's weights API for IMAGENET1K_V1 (no download here)."""
    import torchvision.models as tv_models

    asked = {}

    def fake_vgg16(weights=None):
        asked["weights"] = weights
        return vgg16(weights=None)

    monkeypatch.setattr(tv_models, "vgg16", fake_vgg16)
    base = VGGBase()
    before = base.conv1_1.weight.clone()
    base.load_pretrained_layers()
    assert asked["weights"] == tv_models.VGG16_Weights.IMAGENET1K_V1
    assert not torch.equal(before, base.conv1_1.weight)
