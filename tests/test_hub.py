"""hubconf.py through torch.hub itself: the entry points, their help, and a checkpoint loaded into a detector."""

import importlib.util
import os
import sys
import types

import pytest
import torch

from ssd_support.detector import SSDDetector
from model import build_ssd

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL_MAP = {"background": 0, "cat": 1, "dog": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, save_checkpoint):
    """A checkpoint in train.py's format, holding an untrained SSD300 with random non-zero biases."""
    torch.manual_seed(0)
    network = build_ssd(len(LABEL_MAP))
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.endswith("bias"):
                parameter.uniform_(-0.1, 0.1)
    return save_checkpoint(tmp_path_factory.mktemp("hub") / "ssd300.pt", network, LABEL_MAP, iteration=10)


def test_hub_loads_the_checkpoint_into_a_detector(checkpoint):
    detector = torch.hub.load(REPO_DIR, "ssd300", source="local", checkpoint=checkpoint, score_thresh=0.3)
    assert isinstance(detector, SSDDetector)
    assert detector.label_map == LABEL_MAP and detector.score_thresh == 0.3 and detector.nms_thresh == 0.45
    assert detector.training  # as torchvision's builders return their models
    saved = torch.load(checkpoint, weights_only=True)["model"]
    state = detector.network.state_dict()
    assert set(state) == set(saved) and all(torch.equal(state[name], saved[name]) for name in saved)
    # A checkpoint means trained weights: torchvision's default of 4 trainable VGG16 blocks applies.
    frozen = {name for name, parameter in detector.network.named_parameters() if not parameter.requires_grad}
    assert frozen == {"base.conv1_1.weight", "base.conv1_1.bias", "base.conv1_2.weight", "base.conv1_2.bias"}


def test_entry_points_and_their_help():
    """What torch.hub.list and torch.hub.help show for a GitHub copy (they take no local folder)."""
    spec = importlib.util.spec_from_file_location("hubconf", os.path.join(REPO_DIR, "hubconf.py"))
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entry_points = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
    assert entry_points == ["ssd300", "ssd300_resnet50", "ssd512"]  # torch.hub.list's rule
    assert hubconf.dependencies == ["torch", "torchvision", "cv2"]
    assert all(importlib.util.find_spec(module) is not None for module in hubconf.dependencies)
    for name in entry_points:  # torch.hub.help shows the docstring
        assert "checkpoint" in getattr(hubconf, name).__doc__ and "detector" in getattr(hubconf, name).__doc__


@pytest.mark.parametrize("entry_point, base, size, n_priors", [("ssd300_resnet50", "resnet50", 300, 8732),
                                                             ("ssd512", "vgg16", 512, 24564)])
def test_the_other_entry_points_build_their_networks(entry_point, base, size, n_priors):
    detector = torch.hub.load(REPO_DIR, entry_point, source="local", weights_backbone=None)
    network = detector.network
    assert (network.base_name, network.image_size, len(network.priors_cxcy)) == (base, size, n_priors)
    assert network.n_classes == 91  # without a checkpoint, torchvision's default (COCO's 91 classes)


def test_a_checkpoint_of_another_model_is_refused(checkpoint):
    with pytest.raises(ValueError, match="SSD300 with base vgg16, not an SSD512"):
        torch.hub.load(REPO_DIR, "ssd512", source="local", checkpoint=checkpoint)
    with pytest.raises(ValueError, match="'num_classes' expected value 3 but got 5"):
        torch.hub.load(REPO_DIR, "ssd300", source="local", checkpoint=checkpoint, num_classes=5)
    # weights="COCO_V1" converts torchvision's COCO SSD300 (tests/test_convert_weights.py); none exist for SSD512.
    with pytest.raises(ValueError, match="no published SSD512 weights; pass checkpoint=PATH"):
        torch.hub.load(REPO_DIR, "ssd512", source="local", weights="COCO_V1")
    with pytest.raises(ValueError, match="choose one of COCO_V1, DEFAULT"):
        torch.hub.load(REPO_DIR, "ssd300", source="local", weights="VOC")


def test_a_foreign_module_of_the_same_name_is_reported(monkeypatch):
    foreign = types.ModuleType("utils")
    foreign.__file__ = "/somewhere/else/utils.py"
    monkeypatch.setitem(sys.modules, "utils", foreign)
    with pytest.raises(ImportError, match="'utils' is already imported from /somewhere/else"):
        torch.hub.load(REPO_DIR, "ssd300", source="local", checkpoint="unused.pt")
