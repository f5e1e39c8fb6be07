"""SSD300 against the paper and against torchvision's ssd300_vgg16: same weights in, same numbers out."""

import math

import pytest
import torch
from torchvision.models import vgg16
from torchvision.models.detection import ssd300_vgg16
from torchvision.models.detection._utils import BoxCoder

from model import (SSD300, SSD300_RESNET50, SSD300_VGG16, SSD512, SSD512_VGG16, ResNet50Base, VGGBase, build_ssd,
                   create_prior_boxes, priors_per_location, vgg16_to_ssd_base_state_dict)
from ssd_support.weights import torchvision_ssd_to_ssd300_state_dict
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
    feature_maps = SSD300_VGG16.feature_maps
    assert [f.size for f in feature_maps] == [38, 19, 10, 5, 3, 1]
    expected_counts = [f.size ** 2 * priors_per_location(f) for f in feature_maps]
    assert expected_counts == [5776, 2166, 600, 150, 36, 4]

    start = 0
    scales = [f.scale for f in feature_maps] + [1.0]
    for k, (fmap, count) in enumerate(zip(feature_maps, expected_counts)):
        block = priors[start:start + count]
        start += count
        s, s_next = scales[k], scales[k + 1]
        first_location = block[:priors_per_location(fmap)]
        expected_wh = [(s, s), (math.sqrt(s * s_next),) * 2, (s * math.sqrt(2), s / math.sqrt(2)),
                       (s / math.sqrt(2), s * math.sqrt(2))]
        if priors_per_location(fmap) == 6:
            expected_wh += [(s * math.sqrt(3), s / math.sqrt(3)), (s / math.sqrt(3), s * math.sqrt(3))]
        expected_wh = torch.tensor(expected_wh).clamp(max=1.0)
        torch.testing.assert_close(first_location[:, 2:], expected_wh)
        half_cell = 0.5 / fmap.size
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


# ---- SSD512 and the ResNet-50 base -------------------------------------------------------------


def caffe_style_priors(image_size, sizes, steps, min_sizes, max_sizes, aspect_ratios):
    """Priors written out the way the Caffe PriorBox layer and NVIDIA's DefaultBoxes do, in pixels,
    as an independent reference: for each map, location by location, (min, sqrt(min max), ratios).

    :return: (n_priors, 4) fractional cx, cy, w, h, widths and heights capped at 1
    """
    priors = []
    for size, step, min_size, max_size, ratios in zip(sizes, steps, min_sizes, max_sizes, aspect_ratios):
        for i in range(size):
            for j in range(size):
                cx, cy = (j + 0.5) * step / image_size, (i + 0.5) * step / image_size
                shapes = [(min_size, min_size), (math.sqrt(min_size * max_size),) * 2]
                for r in ratios:
                    shapes += [(min_size * math.sqrt(r), min_size / math.sqrt(r)),
                               (min_size / math.sqrt(r), min_size * math.sqrt(r))]
                priors += [(cx, cy, min(w / image_size, 1.0), min(h / image_size, 1.0)) for w, h in shapes]
    return torch.tensor(priors, dtype=torch.float32)


def test_ssd512_priors_are_the_papers():
    # ssd_pascal_512.py: maps 64..1, steps 8..512, min sizes 7% then 15%..90% of 512, max sizes the next.
    min_sizes = [512 * p / 100 for p in (7, 15, 30, 45, 60, 75, 90)]
    max_sizes = [512 * p / 100 for p in (15, 30, 45, 60, 75, 90, 105)]
    expected = caffe_style_priors(512, [64, 32, 16, 8, 4, 2, 1], [8, 16, 32, 64, 128, 256, 512], min_sizes,
                                  max_sizes, [(2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)])
    priors = create_prior_boxes(SSD512_VGG16)
    assert priors.shape == (24564, 4)
    torch.testing.assert_close(priors, expected)


def test_resnet50_priors_are_nvidias_default_boxes():
    # NVIDIA's dboxes300_coco(): figsize 300, feat sizes 38..1, steps 8..300, scales 21..315 pixels.
    scales = [21, 45, 99, 153, 207, 261, 315]
    expected = caffe_style_priors(300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300], scales[:-1], scales[1:],
                                  [(2,), (2, 3), (2, 3), (2, 3), (2,), (2,)])
    # DefaultBoxes clamps all four numbers to [0, 1]: the 10x10 map's last centres, 9.5 * 32 / 300, become 1.
    assert expected[:, :2].max() > 1.01
    expected[:, :2] = expected[:, :2].clamp(0, 1)
    priors = create_prior_boxes(SSD300_RESNET50)
    assert priors.shape == (8732, 4)
    torch.testing.assert_close(priors, expected)
    # The steps put the 38x38 centres 8 pixels apart, not 300/38: the last column's centre is at
    # 37.5 * 8 / 300 = 1.0, where VGG16's SSD300 has 37.5 / 38.
    last_location_of_conv4_x = 5776 - 4
    assert priors[last_location_of_conv4_x, 0].item() == pytest.approx(1.0)
    assert create_prior_boxes()[last_location_of_conv4_x, 0].item() == pytest.approx(37.5 / 38)


def test_ssd512_and_resnet50_shapes():
    torch.manual_seed(0)
    for model, n_priors in ((SSD512(4), 24564), (SSD300(4, base="resnet50"), 8732)):
        model.eval()
        with torch.no_grad():
            locs, scores = model(torch.randn(1, 3, model.image_size, model.image_size))
        assert locs.shape == (1, n_priors, 4) and scores.shape == (1, n_priors, 4)
        assert model.priors_cxcy.shape == (n_priors, 4)


def test_ssd512_feature_map_sizes():
    model = SSD512(3).eval()
    with torch.no_grad():
        conv4_3, conv7 = model.base(torch.zeros(1, 3, 512, 512))
        extras = model.aux_convs(conv7)
    assert conv4_3.shape[-1] == 64 and conv7.shape[-1] == 32
    assert [f.shape[-1] for f in extras] == [16, 8, 4, 2, 1]


def test_resnet50_base_is_torchvisions_up_to_conv4_x_without_its_stride():
    from torchvision.models import resnet50

    base = ResNet50Base().eval()
    with torch.no_grad():
        conv4_x = base(torch.zeros(1, 3, 300, 300))
    assert conv4_x.shape == (1, 1024, 38, 38)
    # Every parameter and buffer has torchvision's name and shape, so ImageNet weights load by name;
    # conv5_x (layer4) and the classifier are gone.
    reference = resnet50(weights=None).state_dict()
    ours = base.state_dict()
    assert all(name in reference and reference[name].shape == value.shape for name, value in ours.items())
    assert not any(name.startswith(("layer4", "fc")) for name in ours)
    assert len(ours) == len([n for n in reference if not n.startswith(("layer4", "fc"))])
    model = SSD300(3, base="resnet50").eval()
    with torch.no_grad():
        extras = model.aux_convs(conv4_x)
    assert [f.shape[1:] for f in extras] == [(512, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)]
    assert not hasattr(model, "rescale_factors")  # batch norm: no L2 normalization


def test_build_ssd_names_the_choices_when_asked_for_a_missing_variant():
    assert isinstance(build_ssd(3, "vgg16", 512), SSD512)
    assert isinstance(build_ssd(3, "resnet50", 300), SSD300)
    with pytest.raises(ValueError, match="no SSD512 with base 'resnet50'"):
        build_ssd(3, "resnet50", 512)


def test_checkpoints_from_before_ssd512_load_as_the_vgg16_ssd300(tmp_path, save_checkpoint):
    """A config without "base" and "image_size" (checkpoints written before SSD512 and the ResNet-50 base)
    rebuilds SSD300 with VGG16; network_config writes both for the networks that exist now."""
    from ssd_support.checkpoints import load_model_from_checkpoint, network_config

    label_map = {"background": 0, "a": 1, "b": 2}
    torch.manual_seed(0)
    network = SSD300(3)
    old_style = tmp_path / "old.pt"
    torch.save({"model": network.state_dict(), "config": {"n_classes": 3, "label_map": label_map}}, old_style)
    loaded, loaded_map = load_model_from_checkpoint(old_style)
    assert (type(loaded), loaded.base_name, loaded.image_size, loaded_map) == (SSD300, "vgg16", 300, label_map)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in network.state_dict().items())
    assert network_config(SSD512(3), label_map) == {"n_classes": 3, "label_map": label_map, "base": "vgg16",
                                                    "image_size": 512}
    resnet_path = save_checkpoint(tmp_path / "resnet.pt", SSD300(3, base="resnet50"), label_map)
    assert load_model_from_checkpoint(resnet_path)[0].base_name == "resnet50"


def test_fast_cpu_layout_keeps_the_outputs_and_detections():
    """use_fast_cpu_layout (what detect.py and eval.py apply on the CPU) stores the convolution weights
    channels-last and leaves the predictions equal up to float summation order, so the detections agree."""
    from ssd_support.cpu_layout import use_fast_cpu_layout

    torch.manual_seed(0)
    network = SSD300(n_classes=4).eval()
    images = torch.randn(2, 3, 300, 300)
    with torch.inference_mode():
        expected_locs, expected_scores = network(images)
        use_fast_cpu_layout(network)
        assert network.base.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
        locs, scores = network(images)
        assert torch.allclose(locs, expected_locs, atol=1e-4) and torch.allclose(scores, expected_scores, atol=1e-4)
        expected = network.detect_objects(expected_locs, expected_scores, 0.2, 0.45, 50)
        actual = network.detect_objects(locs, scores, 0.2, 0.45, 50)
    assert torch.equal(expected[1][0], actual[1][0]) and torch.allclose(expected[0][0], actual[0][0], atol=1e-4)
