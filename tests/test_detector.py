"""SSDDetector, the torchvision-style interface: the same code runs on torchvision's SSD and on ours, with the
same results; losses, detections in each image's pixels, target errors and frozen layers as torchvision."""

import copy
import inspect

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection import ssd300_vgg16 as torchvision_ssd300_vgg16

from ssd_support.detector import SSDDetector, TargetError, freeze_backbone_stages, ssd300_resnet50, ssd300_vgg16
from ssd_support.weights import torchvision_ssd_to_ssd300_state_dict
from utils import IMAGENET_MEAN, IMAGENET_STD, MultiBoxLoss, cxcy_to_xy, normalize, resize

N_CLASSES = 4


def torchvision_style_code(model, images, targets):
    """What code written for torchvision's detection models does: a training step, then detection."""
    model.train()
    loss_dict = model(images, targets)
    losses = sum(loss for loss in loss_dict.values())
    losses.backward()
    model.eval()
    with torch.no_grad():
        predictions = model(images)
    return loss_dict, predictions


# VGG16's conv1 to conv5 are frozen in both models, as fine-tuning with trainable_backbone_layers=0 does:
# the backward pass then stops at conv6 and takes a fraction of the time on a CPU.
TRAINABLE_LAYERS = 0


@pytest.fixture(scope="module")
def twins():
    """torchvision's ssd300_vgg16 and our detector with the same weights, the same priors and normalization.

    torchvision's builder normalizes as Caffe did (its VGG16 weights were trained that way) and lays out its
    own default boxes; here it is given ImageNet's mean/std and our priors, and ours resizes without
    antialiasing as torchvision does, so that only the code differs.
    """
    torch.manual_seed(0)
    theirs = torchvision_ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES)
    with torch.no_grad():  # random biases and rescale factors, so that a mix-up of two layers shows
        for name, parameter in theirs.named_parameters():
            if name.endswith("bias"):
                parameter.uniform_(-0.1, 0.1)
        theirs.backbone.scale_weight.uniform_(10, 30)
    theirs.transform.image_mean, theirs.transform.image_std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    ours = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES, antialias=False)
    ours.network.load_state_dict(torchvision_ssd_to_ssd300_state_dict(theirs.state_dict()), strict=False)
    anchors = cxcy_to_xy(ours.network.priors_cxcy) * 300  # our priors, in pixels of the 300x300 input
    theirs.anchor_generator.forward = lambda image_list, features: [anchors] * len(image_list.image_sizes)

    frozen = freeze_backbone_stages(ours.network, TRAINABLE_LAYERS)
    their_parameters = list(theirs.named_parameters())
    # Our name -> index of torchvision's parameter: the name mapping run on numbered scalars.
    index = torchvision_ssd_to_ssd300_state_dict({name: torch.tensor(i) for i, (name, _) in enumerate(their_parameters)})
    for name in frozen:
        their_parameters[int(index[name])][1].requires_grad_(False)
    return theirs, ours


@pytest.fixture(scope="module")
def images_and_targets():
    """Two images of different sizes and shapes, with objects in pixel coordinates."""
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 120, 160, generator=generator), torch.rand(3, 90, 70, generator=generator)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 90.0, 100.0], [100.0, 5.0, 150.0, 60.0]]),
                "labels": torch.tensor([1, 3])},
               {"boxes": torch.tensor([[5.0, 30.0, 60.0, 85.0]]), "labels": torch.tensor([2])}]
    return images, targets


@pytest.fixture(scope="module")
def results(twins, images_and_targets):
    """The same lines of torchvision-style code, run on torchvision's SSD and on ours; for ours also what its
    network was given and gave, in training mode and then in eval mode ((input batch, outputs) twice)."""
    theirs, ours = twins
    images, targets = images_and_targets
    network_calls = []
    hook = ours.network.register_forward_hook(
        lambda module, inputs, outputs: network_calls.append((inputs[0].detach(), [o.detach() for o in outputs])))
    try:
        return (torchvision_style_code(theirs, images, targets), torchvision_style_code(ours, images, targets),
                network_calls)
    finally:
        hook.remove()


def test_training_losses_and_gradients_equal_torchvision(twins, results):
    (their_losses, _), (our_losses, _), _ = results
    assert set(our_losses) == {"bbox_regression", "classification"}
    for key in our_losses:
        torch.testing.assert_close(our_losses[key], their_losses[key], rtol=1e-5, atol=1e-5)
    # Same losses, same weights: the same gradients reach the first and the last layers.
    theirs, ours = twins
    their_grads = torchvision_ssd_to_ssd300_state_dict({name: p.grad for name, p in theirs.named_parameters()})
    for name in ("base.conv6.weight", "base.conv7.weight", "rescale_factors", "pred_convs.cl_conv4_3.weight",
                 "pred_convs.loc_conv11_2.bias"):
        our_grad = ours.network.get_parameter(name).grad
        assert our_grad is not None and our_grad.abs().sum() > 0
        # Sums of many terms, added in another order: equal to 1e-3 of the largest gradient.
        torch.testing.assert_close(our_grad, their_grads[name], rtol=0, atol=1e-3 * float(our_grad.abs().max()))
    assert ours.network.base.conv5_3.weight.grad is None  # frozen


def test_the_network_gets_the_images_resized_and_normalized(images_and_targets, results):
    images, _ = images_and_targets
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    # As torchvision's transform: normalize, then resize (bilinear) to 300x300.
    expected = torch.cat([F.interpolate(((image - mean) / std)[None], size=(300, 300), mode="bilinear")
                          for image in images])
    (training_batch, _), (eval_batch, _) = results[2]
    torch.testing.assert_close(training_batch, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(eval_batch, training_batch)


def test_shrinking_is_antialiased_as_in_training_unless_asked_otherwise(twins):
    theirs, ours = twins
    image = torch.randint(0, 256, (3, 600, 900), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    as_in_training = normalize(resize(image, torch.zeros(0, 4))[0])  # what train.py and detect.py feed
    resized = SSDDetector(ours.network).resize_and_normalize([image.float() / 255])[0]  # antialias by default
    assert (resized - as_in_training).abs().max() < 0.03  # they resize uint8 (rounded), ours floats
    as_torchvision = theirs.transform([image.float() / 255])[0].tensors[0]
    torch.testing.assert_close(ours.resize_and_normalize([image.float() / 255])[0], as_torchvision,
                               rtol=1e-5, atol=1e-5)  # antialias=False
    assert (resized - as_torchvision).abs().max() > 0.5  # shrinking noise: the filter makes a difference


def test_training_losses_are_multibox_loss_of_the_resized_images(twins, images_and_targets, results):
    _, ours = twins
    images, targets = images_and_targets
    _, (our_losses, _), ((_, network_outputs), _) = results
    fractional_boxes = [t["boxes"] / torch.tensor([i.shape[2], i.shape[1]] * 2) for i, t in zip(images, targets)]
    loc_loss, conf_loss = MultiBoxLoss(ours.network.priors_cxcy)(*network_outputs, fractional_boxes,
                                                                       [t["labels"] for t in targets])
    torch.testing.assert_close(our_losses["bbox_regression"], loc_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_losses["classification"], conf_loss, rtol=1e-5, atol=1e-5)
    assert our_losses["bbox_regression"].requires_grad and loc_loss > 0 and conf_loss > 0


def assert_same_detections(ours, theirs, score_tolerance=1e-5, box_tolerance=1e-3):
    """Every detection of one list has its own twin in the other: same label, score and box (in pixels).

    Matched one by one rather than row by row: detections of equal scores may come in either order.
    """
    assert len(ours["scores"]) == len(theirs["scores"])
    unmatched = list(range(len(theirs["scores"])))
    for box, label, score in zip(ours["boxes"], ours["labels"], ours["scores"]):
        twins = [j for j in unmatched if theirs["labels"][j] == label
                 and abs(theirs["scores"][j] - score) <= score_tolerance
                 and (theirs["boxes"][j] - box).abs().max() <= box_tolerance]
        assert twins, f"no twin for {label} {score} {box}"
        unmatched.remove(twins[0])


def test_detections_equal_torchvision(results):
    (_, their_predictions), (_, our_predictions), _ = results
    assert len(our_predictions) == 2
    for ours, theirs in zip(our_predictions, their_predictions):
        assert len(ours["scores"]) == 200  # an untrained network: the cap, detections_per_img
        assert torch.all(ours["scores"][:-1] >= ours["scores"][1:])  # best first, as torchvision
        assert_same_detections(ours, theirs)


def test_detections_are_in_each_images_own_pixels(twins, results):
    _, ours = twins
    _, (_, our_predictions), (_, (_, network_outputs)) = results
    boxes, labels, scores = ours.network.detect_objects(*network_outputs, min_score=0.01, max_overlap=0.45,
                                                        top_k=200, max_candidates_per_class=400)
    for i, (height, width) in enumerate([(120, 160), (90, 70)]):
        expected_boxes = boxes[i] * torch.tensor([width, height, width, height])
        torch.testing.assert_close(our_predictions[i]["boxes"], expected_boxes, rtol=1e-4, atol=1e-3)
        assert torch.equal(our_predictions[i]["labels"], labels[i])
        torch.testing.assert_close(our_predictions[i]["scores"], scores[i], rtol=1e-5, atol=1e-6)
        assert our_predictions[i]["boxes"][:, 2].max() <= width and our_predictions[i]["boxes"][:, 3].max() <= height


@pytest.mark.parametrize("targets, message", [
    (None, "targets should not be none when in training mode"),
    ([{"boxes": torch.tensor([1.0, 2.0, 3.0, 4.0]), "labels": torch.tensor([1])}] * 2,
     r"Expected target boxes to be a tensor of shape \[N, 4\]"),
    ([{"boxes": torch.tensor([[10.0, 20.0, 10.0, 40.0]]), "labels": torch.tensor([1])}] * 2,
     "All bounding boxes should have positive height and width"),
])
def test_bad_targets_raise_like_torchvision(twins, images_and_targets, targets, message):
    theirs, ours = twins
    images, _ = images_and_targets
    for model in (theirs, ours):  # both raise before running the network
        model.train()
        with pytest.raises(AssertionError, match=message):
            model(images, targets)
    with pytest.raises(ValueError, match=message):  # ours is also a ValueError
        ours(images, targets)


@pytest.mark.parametrize("targets, message", [
    ([{"boxes": torch.zeros(0, 4)}] * 2, "with keys 'boxes' and 'labels'"),
    ([{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1, 2])}] * 2,
     r"target labels of shape \[1\]"),
    ([{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([N_CLASSES])}] * 2,
     r"labels in \[0, 3\]"),
    ([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}], "one target per image"),
    # NaN and inf boxes were taken in training mode (issue 32, 10): NaN <= x is False, so no box was "degenerate"
    ([{"boxes": torch.tensor([[1.0, 2.0, float("nan"), 4.0]]), "labels": torch.tensor([1])}] * 2,
     r"should be finite. Found invalid box \[1.0, 2.0, nan, 4.0\] for target at index 0"),
    ([{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1])},
      {"boxes": torch.tensor([[1.0, 2.0, float("inf"), 4.0]]), "labels": torch.tensor([1])}],
     r"should be finite. Found invalid box \[1.0, 2.0, inf, 4.0\] for target at index 1"),
])
def test_other_bad_targets_get_a_clear_error(twins, images_and_targets, targets, message):
    _, ours = twins
    images, _ = images_and_targets
    ours.train()
    with pytest.raises(TargetError, match=message):
        ours(images, targets)


def test_bad_images_raise_like_torchvision(twins):
    _, ours = twins
    ours.eval()
    with pytest.raises(ValueError, match="3d tensors"):
        ours([torch.rand(1, 3, 50, 50)])
    with pytest.raises(TypeError, match="floating type"):
        ours([torch.zeros(3, 50, 50, dtype=torch.uint8)])


def test_rgba_images_lose_their_alpha_as_the_file_loader_does(twins, tmp_path):
    import numpy as np
    from PIL import Image

    from ssd_support.images import load_image

    _, ours = twins
    ours.eval()
    generator = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (4, 40, 50), dtype=torch.uint8, generator=generator)
    # The file loader reads an RGBA file as its R, G and B, the alpha dropped (not composited on a background).
    Image.fromarray(pixels.permute(1, 2, 0).numpy(), mode="RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "rgba.png")), pixels[:3].permute(1, 2, 0).numpy())

    rgba = pixels.float() / 255
    assert torch.equal(ours.resize_and_normalize([rgba]), ours.resize_and_normalize([rgba[:3]]))
    grey = rgba[:1]  # grey is R = G = B; a list may mix grey, RGB and RGBA images
    mixed = ours.resize_and_normalize([grey, rgba[:3], rgba])
    assert torch.equal(mixed[0], ours.resize_and_normalize([grey.repeat(3, 1, 1)])[0])
    assert torch.equal(mixed[1], mixed[2])
    with torch.no_grad():  # the whole call: it used to fail in the normalization (4 channels against 3 means)
        with_alpha, without = ours([rgba, rgba[:3].clone()])
    assert len(with_alpha["scores"]) == 200
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(with_alpha[key], without[key])


@pytest.mark.parametrize("channels", [2, 5])
def test_other_channel_counts_are_refused_naming_them(twins, channels):
    _, ours = twins
    ours.eval()
    with pytest.raises(ValueError, match=rf"image 1 has {channels} channels \(shape \({channels}, 30, 40\)\)"):
        ours([torch.rand(3, 30, 40), torch.rand(channels, 30, 40)])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_images_are_resized_in_float32_on_a_cpu(twins, dtype):
    """PyTorch's antialiased CPU resize has no float16/bfloat16 kernels ("compute_index_ranges_weights" not
    implemented for 'Half'): the detector resizes such images in float32, then casts to the network's dtype."""
    _, ours = twins
    image = torch.rand(3, 120, 160, generator=torch.Generator().manual_seed(4)).to(dtype)
    half = SSDDetector(copy.deepcopy(ours.network).to(dtype), antialias=True)
    full = SSDDetector(ours.network, antialias=True)
    batch = half.resize_and_normalize([image])
    assert batch.dtype == dtype
    assert torch.equal(batch, full.resize_and_normalize([image.float()]).to(dtype))
    # A half image given to a float32 network: resized in float32 as well (the same batch, uncast).
    assert torch.equal(full.resize_and_normalize([image]), full.resize_and_normalize([image.float()]))


def test_a_bfloat16_detector_runs_on_a_cpu_and_detects_what_float32_does(twins):
    _, ours = twins
    full = SSDDetector(ours.network, antialias=True).eval()  # antialiased: the resize that had no half kernels
    bf16 = SSDDetector(copy.deepcopy(ours.network).to(torch.bfloat16), antialias=True).eval()
    image = torch.rand(3, 120, 160, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        locs, scores = full.network(full.resize_and_normalize([image]))
        bf16_locs, bf16_scores = bf16.network(bf16.resize_and_normalize([image.bfloat16()]))
        (detections,) = bf16([image.bfloat16()])
    assert bf16_scores.dtype == torch.bfloat16
    # bfloat16 keeps 8 significant bits: the class probabilities stay within 0.03 of float32's (0.009 measured)
    # and the offsets within 0.1 (0.04 measured, of values up to about 3.5).
    assert (bf16_scores.float().softmax(2) - scores.softmax(2)).abs().max() < 0.03
    assert (bf16_locs.float() - locs).abs().max() < 0.1
    assert len(detections["scores"]) == 200 and detections["boxes"].dtype == torch.float32
    assert torch.all(detections["scores"][:-1] >= detections["scores"][1:])
    assert detections["boxes"].min() >= 0 and detections["boxes"][:, 2].max() <= 160
    assert detections["boxes"][:, 3].max() <= 120


@pytest.mark.parametrize("where", ["detector.to", "network.to"])
def test_a_bfloat16_detector_keeps_float32_priors_and_decodes_as_float32(twins, where):
    """Half precision rounded the priors buffer too (bf16: up to ~1 px on a 500-px image, issue 32): a bfloat16
    detector's priors stay float32, whether the detector or its network was converted, and its boxes are the
    float32 decoding of the same offsets."""
    _, ours = twins
    network = copy.deepcopy(ours.network)
    detector = SSDDetector(network).to(torch.bfloat16) if where == "detector.to" else \
        SSDDetector(network.to(torch.bfloat16))
    assert detector.network.priors_cxcy.dtype == torch.float32
    assert torch.equal(detector.network.priors_cxcy, ours.network.priors_cxcy)
    assert next(detector.network.parameters()).dtype == torch.bfloat16
    generator = torch.Generator().manual_seed(6)
    locs = torch.randn(2, 8732, 4, generator=generator).bfloat16()
    scores = (3 * torch.randn(2, 8732, N_CLASSES, generator=generator)).bfloat16()
    settings = dict(min_score=0.2, max_overlap=0.45, top_k=50)
    half = detector.network.detect_objects(locs, scores, **settings)
    full = ours.network.detect_objects(locs.float(), scores.float(), **settings)
    assert len(half[0][0]) == 50
    for half_part, full_part in zip(half, full):
        for a, b in zip(half_part, full_part):
            assert torch.equal(a, b)
    assert detector.float().network.priors_cxcy.dtype == torch.float32  # and back


def frozen_names(model):
    return {name for name, parameter in model.named_parameters() if not parameter.requires_grad}


@pytest.fixture(scope="module")
def shared_vgg16():
    """One random VGG16 standing in for the ImageNet download (nothing can be downloaded here)."""
    return torchvision.models.vgg16(weights=None)


@pytest.mark.parametrize("trainable_layers", [0, 3])
def test_trainable_backbone_layers_freeze_what_torchvision_freezes(monkeypatch, twins, shared_vgg16,
                                                                   trainable_layers):
    """Freezing only applies with trained weights; torchvision's builder, given "downloaded" VGG16 weights,
    decides which of its parameters to freeze, and ours must freeze the same ones under our names."""

    def fake_vgg16(weights=None, progress=True):
        assert weights is not None
        for parameter in shared_vgg16.parameters():
            parameter.requires_grad_(True)
        return shared_vgg16

    monkeypatch.setattr(torchvision.models.detection.ssd, "vgg16", fake_vgg16)
    theirs = torchvision_ssd300_vgg16(weights=None, num_classes=N_CLASSES, trainable_backbone_layers=trainable_layers)
    flags = {name: torch.full_like(p, float(p.requires_grad)) for name, p in theirs.named_parameters()}
    expected = {name for name, flag in torchvision_ssd_to_ssd300_state_dict(flags).items() if flag.min() == 0}

    _, ours = twins
    was_frozen = frozen_names(ours.network)
    for parameter in ours.network.parameters():
        parameter.requires_grad_(True)
    assert set(freeze_backbone_stages(ours.network, trainable_layers)) == expected == frozen_names(ours.network)
    if trainable_layers == 0:
        assert "base.conv5_3.weight" in expected and "base.conv6.weight" not in expected
    for name, parameter in ours.network.named_parameters():
        parameter.requires_grad_(name not in was_frozen)


def test_trainable_backbone_layers_through_the_builders(monkeypatch, shared_vgg16):
    monkeypatch.setattr(torchvision.models, "vgg16", lambda weights=None, progress=True: shared_vgg16)
    detector = ssd300_vgg16(weights_backbone="IMAGENET1K_V1", num_classes=N_CLASSES)  # default: 4 trainable
    assert frozen_names(detector.network) == {"base.conv1_1.weight", "base.conv1_1.bias", "base.conv1_2.weight",
                                              "base.conv1_2.bias"}
    torch.testing.assert_close(detector.network.base.conv2_1.weight, shared_vgg16.features[5].weight)
    with pytest.raises(ValueError, match=r"range \[0,5\]"):
        ssd300_vgg16(weights_backbone=None, trainable_backbone_layers=6)
    with pytest.warns(UserWarning, match="no effect"):  # random weights: nothing to keep, all layers train
        detector = ssd300_vgg16(weights_backbone=None, num_classes=N_CLASSES, trainable_backbone_layers=2)
    assert frozen_names(detector) == set()
    with pytest.raises(ValueError, match="IMAGENET1K_FEATURES"):
        ssd300_vgg16(weights_backbone="IMAGENET1K_FEATURES", num_classes=N_CLASSES)


def test_resnet50_stages_and_their_batch_norms_freeze():
    detector = ssd300_resnet50(weights_backbone=None, num_classes=N_CLASSES)
    base = detector.network.base
    expected_frozen = {
        5: set(),
        4: {"conv1.weight", "bn1.weight", "bn1.bias"},
        3: {"conv1.weight", "bn1.weight", "bn1.bias"} | {f"layer1.{n}" for n, _ in base.layer1.named_parameters()},
    }
    for trainable_layers, frozen in expected_frozen.items():
        for parameter in base.parameters():
            parameter.requires_grad_(True)
        freeze_backbone_stages(detector.network, trainable_layers)
        assert {name for name, p in base.named_parameters() if not p.requires_grad} == frozen
    freeze_backbone_stages(detector.network, 1)  # no layer4 in this base: 1 freezes it whole, as 0
    assert not any(p.requires_grad for p in base.parameters())
    assert all(p.requires_grad for p in detector.network.aux_convs.parameters())
    # With layer1 and layer2 frozen, their batch norms keep their statistics in training mode too.
    for parameter in base.parameters():
        parameter.requires_grad_(True)
    freeze_backbone_stages(detector.network, 2)
    detector.train()
    assert not base.bn1.training and not base.layer2[0].bn1.training and base.layer3[0].bn1.training
    assert detector.network.aux_convs.training and detector.training


def test_settings_have_torchvisions_names_and_defaults(twins):
    theirs, ours = twins
    their_defaults = inspect.signature(torchvision.models.detection.ssd.SSD.__init__).parameters
    our_defaults = inspect.signature(SSDDetector.__init__).parameters
    for name in ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates"):
        assert our_defaults[name].default == their_defaults[name].default
        assert getattr(ours, name) == getattr(theirs, name)
    builder_arguments = inspect.signature(torchvision_ssd300_vgg16).parameters
    assert set(builder_arguments) - {"kwargs"} <= set(inspect.signature(ssd300_vgg16).parameters)
