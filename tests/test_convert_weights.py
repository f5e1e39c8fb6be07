"""convert_weights.py: torchvision's and NVIDIA's COCO SSD300s become checkpoints of ours that compute what theirs
compute; fine-tuning copies the rows of the classes two label maps share. Offline, random weights.

Each forward pass of a VGG16 / ResNet-50 SSD300 costs ~0.5 s per image here: one or two images per test.
"""

import itertools
import json
import math

import pytest
import torch
from torch import nn
import torchvision
from torchvision.models.detection import ssd300_vgg16 as torchvision_ssd300_vgg16

import convert_weights
import train
from ssd_support import weights
from ssd_support.weights import LABEL_ALIASES, coco_category_names, coco_label_map, init_from_checkpoint
from ssd_support.detector import ssd300_resnet50, ssd300_vgg16
from model import build_ssd
from ssd_support.checkpoints import load_model_from_checkpoint, network_config

N_A_BIAS = -1e4  # the unused category ids of torchvision's head: never the best class, ~0 in the softmax


def randomize_biases(module, generator, low=-0.5, high=0.5):
    """Random biases (and batch-norm statistics), so that a mix-up of two channels or layers shows."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("bias"):
                tensor.uniform_(low, high, generator=generator)
            elif name.endswith("running_mean"):
                tensor.uniform_(-0.1, 0.1, generator=generator)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_coco(tmp_path_factory):
    """torchvision's ssd300_vgg16 with 91 random outputs per prior, its state_dict file and our conversion of it."""
    folder = tmp_path_factory.mktemp("torchvision_coco")
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    theirs = torchvision_ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91).eval()
    randomize_biases(theirs, generator)
    unused = [category for category, name in enumerate(coco_category_names()) if name == "N/A"]
    with torch.no_grad():
        theirs.backbone.scale_weight.uniform_(10, 30, generator=generator)
        for layer in theirs.head.classification_head.module_list:
            layer.weight.mul_(0.05)  # scores of a few tenths: no ties of saturated softmaxes at the top-k cut
            layer.bias.view(-1, 91)[:, unused] = N_A_BIAS
            layer.weight.view(-1, 91, *layer.weight.shape[1:])[:, unused] = 0
    weights_file = folder / weights.TORCHVISION_COCO_FILE
    torch.save(theirs.state_dict(), weights_file)
    output = folder / "ssd300_vgg16_coco.pt"
    assert convert_weights.main(["--from", "torchvision_coco", "--file", str(weights_file),
                                 "--output", str(output)]) == 0
    return theirs, str(output)


def test_torchvision_conversion_detects_what_torchvision_detects(torchvision_coco):
    theirs, checkpoint = torchvision_coco
    ours = ssd300_vgg16(checkpoint=checkpoint).eval()  # priors and preprocessing from the checkpoint
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 420, 500, generator=generator), torch.rand(3, 200, 150, generator=generator)]
    with torch.no_grad():
        their_detections, our_detections = theirs(images), ours(images)
    # Our label k is COCO's k-th category; torchvision's labels are the category ids.
    category_of_label = [category for category, name in enumerate(coco_category_names()) if name != "N/A"]
    for mine, their in zip(our_detections, their_detections):
        assert len(mine["scores"]) == len(their["scores"]) > 50
        order = torch.argsort(their["scores"], descending=True)
        # Matched detection by detection (equal scores may come in either order): label, score, box.
        unmatched = list(order.tolist())
        for box, label, score in zip(mine["boxes"], mine["labels"], mine["scores"]):
            twins = [j for j in unmatched if int(their["labels"][j]) == category_of_label[int(label)]
                     and abs(float(their["scores"][j] - score)) <= 1e-4
                     and float((their["boxes"][j] - box).abs().max()) <= 1e-2]
            assert twins, f"no torchvision detection for label {int(label)}, score {float(score)}, box {box.tolist()}"
            unmatched.remove(twins[0])


def test_torchvision_checkpoint_names_its_priors_preprocessing_and_coco_labels(torchvision_coco):
    _, checkpoint = torchvision_coco
    saved = torch.load(checkpoint, weights_only=True)  # plain data and tensors only
    config = saved["config"]
    assert config["n_classes"] == 81 and config["base"] == "vgg16"
    assert config["label_map"] == coco_label_map()
    assert list(config["label_map"])[:6] == ["background", "person", "bicycle", "car", "motorcycle", "airplane"]
    assert config["label_map"]["toothbrush"] == 80 and "N/A" not in config["label_map"]
    assert config["preprocess"] == {"mean": [0.48235, 0.45882, 0.40784], "std": [1 / 255] * 3, "antialias": False}
    assert config["priors"]["scales"] == [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
    network, label_map = load_model_from_checkpoint(checkpoint)
    assert network.preprocess_config == config["preprocess"] and label_map == coco_label_map()
    # The priors of torchvision's DefaultBoxGenerator on a 300x300 input, in their (our) order.
    anchors = torchvision.models.detection.anchor_utils.DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300])
    their_priors = anchors._grid_default_boxes([[38, 38], [19, 19], [10, 10], [5, 5], [3, 3], [1, 1]], [300, 300])
    torch.testing.assert_close(network.priors_cxcy, their_priors.float(), rtol=0, atol=1e-6)


def test_offline_without_file_says_what_to_download_and_where(monkeypatch, tmp_path, capsys):
    def offline(url, path, hash_prefix=None, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for source, file_name in (("torchvision_coco", weights.TORCHVISION_COCO_FILE),
                              ("nvidia_coco", weights.NVIDIA_COCO_FILE)):
        assert convert_weights.main(["--from", source, "--output", str(tmp_path / "out.pt")]) == 1
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1
        assert "download https://" in error and file_name in error
        assert str(tmp_path / "hub" / "checkpoints" / file_name) in error and "--file" in error
    assert not (tmp_path / "out.pt").exists()


def test_builder_weights_names_and_mistakes(monkeypatch, torchvision_coco):
    _, checkpoint = torchvision_coco
    converted = torch.load(checkpoint, weights_only=True)
    monkeypatch.setattr(weights, "converted_checkpoint", lambda source, *args, **kwargs: converted)
    detector = ssd300_vgg16(weights="DEFAULT")
    assert detector.label_map == coco_label_map() and detector.network.n_classes == 81
    assert detector.antialias is False and detector.image_std == (1 / 255,) * 3
    assert not detector.network.base.conv1_1.weight.requires_grad  # trained weights: torchvision's freezing
    with pytest.raises(ValueError, match="expected value 81"):
        ssd300_vgg16(weights="COCO_V1", num_classes=21)
    with pytest.raises(ValueError, match="COCO_V1"):
        ssd300_vgg16(weights="IMAGENET")


def test_a_file_that_is_not_those_weights_gets_one_line(tmp_path, capsys):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    assert convert_weights.main(["--from", "torchvision_coco", "--file", str(path), "--output",
                                 str(tmp_path / "out.pt")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("convert_weights.py: error: ") and str(path) in error and "\n" not in error


# ---------------------------------------------------------------------------------------------------------------
# NVIDIA
# ---------------------------------------------------------------------------------------------------------------


class NvidiaSSD300(nn.Module):
    """NVIDIA's SSD300 v1.1 (DeepLearningExamples PyTorch/Detection/SSD/ssd/model.py), written out as the
    reference: torchvision's ResNet-50 children [:7] with conv4_x's first block at stride 1, five additional
    blocks, and heads read coordinate-major: ``conv(x).reshape(N, 4, -1)`` then concatenated over the maps."""

    def __init__(self, label_num=81):
        super().__init__()
        backbone = torchvision.models.resnet50(weights=None)
        self.feature_extractor = nn.Module()
        self.feature_extractor.feature_extractor = nn.Sequential(*list(backbone.children())[:7])
        block = self.feature_extractor.feature_extractor[-1][0]
        block.conv1.stride, block.conv2.stride, block.downsample[0].stride = (1, 1), (1, 1), (1, 1)
        self.label_num = label_num
        channels = [1024, 512, 512, 256, 256, 256]
        self.additional_blocks = nn.ModuleList()
        for i, (c_in, c_out, middle) in enumerate(zip(channels[:-1], channels[1:], [256, 256, 128, 128, 128])):
            shrink = dict(padding=1, stride=2) if i < 3 else {}
            self.additional_blocks.append(nn.Sequential(
                nn.Conv2d(c_in, middle, kernel_size=1, bias=False), nn.BatchNorm2d(middle), nn.ReLU(inplace=True),
                nn.Conv2d(middle, c_out, kernel_size=3, bias=False, **shrink), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)))
        self.num_defaults = [4, 6, 6, 6, 4, 4]
        self.loc = nn.ModuleList(nn.Conv2d(c, nd * 4, kernel_size=3, padding=1)
                                 for nd, c in zip(self.num_defaults, channels))
        self.conf = nn.ModuleList(nn.Conv2d(c, nd * label_num, kernel_size=3, padding=1)
                                  for nd, c in zip(self.num_defaults, channels))

    def forward(self, x):
        x = self.feature_extractor.feature_extractor(x)
        feeds = [x]
        for block in self.additional_blocks:
            x = block(x)
            feeds.append(x)
        locs = torch.cat([loc(f).reshape(f.size(0), 4, -1) for f, loc in zip(feeds, self.loc)], 2)
        confs = torch.cat([conf(f).reshape(f.size(0), self.label_num, -1) for f, conf in zip(feeds, self.conf)], 2)
        return locs, confs  # (N, 4, 8732), (N, 81, 8732)


def nvidia_dboxes300_coco():
    """NVIDIA's dboxes300_coco (ssd/utils.py DefaultBoxes), written out: sizes outer, locations inner."""
    boxes = []
    for sfeat, step, (sk1, sk2), ratios in zip([38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300],
                                                itertools.pairwise([21, 45, 99, 153, 207, 261, 315]),
                                                [[2], [2, 3], [2, 3], [2, 3], [2], [2]]):
        sk1, sk2 = sk1 / 300, sk2 / 300
        sizes = [(sk1, sk1), (math.sqrt(sk1 * sk2),) * 2]
        for alpha in ratios:
            w, h = sk1 * math.sqrt(alpha), sk1 / math.sqrt(alpha)
            sizes += [(w, h), (h, w)]
        for w, h in sizes:
            for i, j in itertools.product(range(sfeat), repeat=2):
                boxes.append(((j + 0.5) * step / 300, (i + 0.5) * step / 300, w, h))
    return torch.tensor(boxes).clamp(0, 1)


def their_order_to_ours():
    """Index into NVIDIA's prior order for each of our priors: theirs run default box by default box within a
    map, ours location by location."""
    index, start = [], 0
    for size, n_defaults in zip([38, 19, 10, 5, 3, 1], [4, 6, 6, 6, 4, 4]):
        index.append(start + torch.arange(n_defaults * size * size).view(n_defaults, size * size).t().reshape(-1))
        start += n_defaults * size * size
    return torch.cat(index)


def test_nvidia_conversion_gives_their_outputs_in_our_layout(tmp_path, monkeypatch):
    torch.manual_seed(0)
    theirs = NvidiaSSD300().eval()
    randomize_biases(theirs, torch.Generator().manual_seed(3))
    weights_file = tmp_path / weights.NVIDIA_COCO_FILE
    # Saved as from DistributedDataParallel, with training state beside the model, as NVIDIA's files are.
    torch.save({"model": {f"module.{k}": v for k, v in theirs.state_dict().items()}, "epoch": 65}, weights_file)
    output = tmp_path / "ssd300_resnet50_coco.pt"
    assert convert_weights.main(["--from", "nvidia_coco", "--file", str(weights_file), "--output", str(output)]) == 0
    ours, label_map = load_model_from_checkpoint(str(output))
    assert ours.base_name == "resnet50" and label_map == coco_label_map() and ours.preprocess_config is None

    order = their_order_to_ours()
    torch.testing.assert_close(ours.priors_cxcy, nvidia_dboxes300_coco()[order], rtol=0, atol=1e-6)
    image = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        their_locs, their_scores = theirs(image)
        our_locs, our_scores = ours(image)
    for mine, their in ((our_locs, their_locs), (our_scores, their_scores)):
        expected = their.transpose(1, 2)[:, order]
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))

    # ssd300_resnet50(weights="COCO_V1") is this conversion (here of the local file instead of NGC's).
    converted = torch.load(output, weights_only=True)
    monkeypatch.setattr(weights, "converted_checkpoint", lambda source, *args, **kwargs: (
        converted if source == "nvidia_coco" else None))
    detector = ssd300_resnet50(weights="COCO_V1")
    assert detector.label_map == coco_label_map() and detector.image_mean == (0.485, 0.456, 0.406)
    assert torch.equal(detector.network.pred_convs.cl_extra2.weight, ours.pred_convs.cl_extra2.weight)


def test_nvidia_file_that_needs_unpickling_is_refused_without_the_flag(tmp_path, capsys):
    import argparse

    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)  # an object weights_only refuses
    assert convert_weights.main(["--from", "nvidia_coco", "--file", str(path), "--output",
                                 str(tmp_path / "out.pt")]) == 1
    error = capsys.readouterr().err.strip()
    assert "--allow-pickle" in error and str(path) in error and "\n" not in error
    with pytest.warns(UserWarning, match="unpickling"):
        assert convert_weights.main(["--from", "nvidia_coco", "--file", str(path), "--output",
                                     str(tmp_path / "out.pt"), "--allow-pickle"]) == 1  # then: no weights in it
    assert "not NVIDIA's SSD300" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------------------------------------------


def test_init_from_copies_the_shared_classes_rows_and_keeps_new_ones_fresh(tmp_path, save_checkpoint, capsys):
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    source = build_ssd(5).eval()
    randomize_biases(source, generator)
    source.use_priors(weights.TORCHVISION_COCO_PRIORS)
    source.preprocess_config = dict(weights.TORCHVISION_COCO_PREPROCESS)
    source_map = {"background": 0, "person": 1, "dog": 2, "airplane": 3, "car": 4}
    path = save_checkpoint(tmp_path / "source.pt", source, source_map)

    target = build_ssd(4).eval()
    target_map = {"background": 0, "person": 1, "aeroplane": 2, "widget": 3}
    fresh = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    report = init_from_checkpoint(target, path, target_map)
    assert report["class_rows"] == {"person": "person", "aeroplane": "airplane"}
    assert report["new_classes"] == ["widget"] and report["initialised"] == []
    printed = capsys.readouterr().out
    assert "aeroplane (from airplane)" in printed and "widget" in printed

    image = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        source_locs, source_scores = source(image)
        target_locs, target_scores = target(image)
    torch.testing.assert_close(target_locs, source_locs)
    torch.testing.assert_close(target_scores[..., [0, 1, 2]], source_scores[..., [0, 1, 3]])
    # widget's rows are the target's own fresh ones, in every class head.
    for name in fresh:
        if name.startswith("pred_convs.cl_"):
            rows = target.state_dict()[name].view(-1, 4, *fresh[name].shape[1:])
            assert torch.equal(rows[:, 3], fresh[name].view(-1, 4, *fresh[name].shape[1:])[:, 3])
    # The weights came with their priors and preprocessing, and the new checkpoint names them.
    assert torch.equal(target.priors_cxcy, source.priors_cxcy)
    config = network_config(target, target_map)
    assert config["priors"] == source.priors_spec and config["preprocess"] == source.preprocess_config


def test_init_from_an_ema_run_takes_its_ema_weights_and_says_so(tmp_path, save_checkpoint, capsys):
    """best.pt of a train.py --ema run was chosen by its EMA weights' VAL mAP; --init-from copied the trained ones."""
    torch.manual_seed(8)
    trained, averaged = build_ssd(3), build_ssd(3)
    label_map = {"background": 0, "circle": 1, "square": 2}
    path = save_checkpoint(tmp_path / "best.pt", trained, label_map)
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "ema": {"model": averaged.state_dict(), "updates": 12, "decay": 0.9999}}, path)

    target = build_ssd(3)
    init_from_checkpoint(target, path, label_map)
    assert f"{path}: using its EMA weights (train.py --ema, 12 updates)" in capsys.readouterr().out.splitlines()
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, averaged.state_dict()[name]), name
    assert not torch.equal(target.pred_convs.cl_conv4_3.weight, trained.pred_convs.cl_conv4_3.weight)


def test_label_aliases_are_coco_names_and_voc_names():
    from utils import VOC_LABELS

    coco_names = set(coco_label_map())
    assert set(LABEL_ALIASES) <= coco_names and set(LABEL_ALIASES.values()) <= set(VOC_LABELS)
    # With the aliases, all 20 VOC classes are COCO classes: COCO weights fine-tune to VOC with every row copied.
    assert {weights.class_key(name) for name in coco_names} >= set(VOC_LABELS)


def test_train_init_from_starts_a_new_run_from_the_weights(toy_data_folder, tmp_path, save_checkpoint, capsys):
    torch.manual_seed(7)
    source = build_ssd(3)
    source.preprocess_config = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "antialias": False}
    path = save_checkpoint(tmp_path / "source.pt", source, {"background": 0, "circle": 1, "square": 2}, iteration=99)
    result = train.main(["--data-folder", toy_data_folder, "--checkpoint-dir", str(tmp_path / "run"), "--device",
                         "cpu", "--workers", "0", "--no-progress", "--batch-size", "1", "--iterations", "1",
                         "--max-images", "1", "--lr", "1e-9", "--init-from", path, "--freeze-base", "5"])
    assert "new classes (fresh rows): triangle" in capsys.readouterr().out
    assert result["iteration"] == 1  # a new run: iteration 0 + one step, not 99 + 1
    model = result["model"]
    # --freeze-base 5: VGG16's five blocks, conv1_1 to conv5_3; conv6 and conv7 (the paper's fc6/fc7) still train.
    assert {name for name, p in model.base.named_parameters() if p.requires_grad} == {
        "conv6.weight", "conv6.bias", "conv7.weight", "conv7.bias"}
    torch.testing.assert_close(model.base.conv1_1.weight, source.base.conv1_1.weight, rtol=0, atol=0)
    checkpoint = torch.load(result["checkpoint"], weights_only=True)
    assert checkpoint["config"]["preprocess"] == source.preprocess_config


def test_detect_and_the_data_sets_prepare_images_as_the_checkpoint_says(tmp_path, save_checkpoint, toy_data_folder):
    import torchvision.transforms.v2.functional as TF
    from PIL import Image

    from datasets import PascalVOCDataset
    from detect import detect_batch

    preprocess = {"mean": [0.2, 0.3, 0.4], "std": [0.5, 0.25, 0.125], "antialias": False}
    network = build_ssd(4)
    network.preprocess_config = preprocess
    path = save_checkpoint(tmp_path / "custom.pt", network, {"background": 0, "circle": 1, "square": 2, "triangle": 3})
    model, label_map = load_model_from_checkpoint(path)
    assert model.preprocess_config == preprocess

    def expected(image):  # resized without antialiasing, then (x - mean) / std, written out
        pixels = TF.resize(TF.pil_to_tensor(image), [300, 300], antialias=False).float() / 255
        return (pixels - torch.tensor(preprocess["mean"]).view(3, 1, 1)) / torch.tensor(preprocess["std"]).view(3, 1, 1)

    image = Image.fromarray(torch.randint(0, 256, (450, 600, 3), dtype=torch.uint8,
                                          generator=torch.Generator().manual_seed(8)).numpy())
    seen = []
    model.register_forward_hook(lambda module, inputs, outputs: seen.append(inputs[0]))
    detect_batch([image], model, label_map)
    torch.testing.assert_close(seen[0][0], expected(image), rtol=0, atol=1e-5)

    dataset = PascalVOCDataset(toy_data_folder, "TEST", preprocess=preprocess)
    torch.testing.assert_close(dataset[0][0], expected(TF.to_pil_image(dataset.load_image(0))), rtol=0, atol=1e-5)
    default = PascalVOCDataset(toy_data_folder, "TEST")[0][0]
    assert (default - dataset[0][0]).abs().max() > 1  # the checkpoint's preprocessing made a difference


def test_export_records_the_converted_checkpoints_preprocessing(torchvision_coco, tmp_path):
    pytest.importorskip("onnx")
    import onnx

    import export

    _, checkpoint = torchvision_coco
    assert export.main(["--checkpoint", checkpoint, "--output", str(tmp_path / "coco.onnx")]) == 0
    metadata = {prop.key: prop.value for prop in onnx.load(str(tmp_path / "coco.onnx")).metadata_props}
    assert json.loads(metadata["preprocess"]) == weights.TORCHVISION_COCO_PREPROCESS
    assert "without antialiasing" in metadata["input"] and "0.48235" in metadata["input"]


def test_frozen_batch_norms_stay_in_eval_mode_on_the_bare_network():
    """train.py --freeze-base trains the network itself (no SSDDetector): its frozen ResNet stages must not
    update their batch-norm statistics either."""
    from ssd_support.detector import freeze_backbone_stages

    network = build_ssd(3, base="resnet50").train()
    freeze_backbone_stages(network, 5 - 2)  # --freeze-base 2: conv1/bn1 and layer1
    assert not network.base.bn1.training and not network.base.layer1[0].bn1.training
    assert network.base.layer2[0].bn1.training and network.aux_convs.training
    network.eval().train()
    assert not network.base.layer1[2].bn3.training and network.base.layer3[0].bn1.training
