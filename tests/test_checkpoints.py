"""Checkpoints from elsewhere: the config is checked against its bounds and its own tensors before anything is built.

The checkpoints here are a few KB: each tensor is one stored number expanded to the shape a network needs
(torch.save keeps the one-element storage), so that a config can claim any network without the file holding it.
"""

import pytest
import torch

from model import CONFIGS, config_with_priors, create_prior_boxes, prior_spec, ssd_config
from ssd_support import checkpoints
from ssd_support.checkpoints import (TrainingSetupError, check_network_config, expected_shapes,
                                     load_model_from_checkpoint, load_resume_state)
from ssd_support.limits import BASES, IMAGE_SIZES, MAX_CLASSES

LABEL_MAP = {"background": 0, "circle": 1, "square": 2, "triangle": 3}


def tiny_state_dict(n_classes, base="vgg16", image_size=300):
    """A state_dict with the keys and shapes of a network, each tensor one number expanded (a few bytes), but its
    priors (the network's own: check_network_config compares them)."""
    state_dict = {name: torch.zeros(()).expand(shape)
                  for name, shape in expected_shapes(n_classes, base, image_size).items()}
    state_dict["priors_cxcy"] = create_prior_boxes(ssd_config(base, image_size))
    return state_dict


def write(path, config, state_dict=None, **extra):
    """Save a checkpoint dict {"model", "config"} (plus ``extra``) and return its path as a str."""
    config = {"n_classes": 4, "label_map": dict(LABEL_MAP), "base": "vgg16", "image_size": 300, **config}
    if state_dict is None:
        state_dict = tiny_state_dict(4)
    torch.save({"model": state_dict, "config": config, **extra}, path)
    return str(path)


@pytest.fixture
def no_real_network(monkeypatch):
    """Fail the test if a loader builds a network anywhere but on the meta device (where nothing is allocated)."""
    real = checkpoints.build_ssd

    def guarded(*args, **kwargs):
        assert torch.empty(0).device.type == "meta", "a network was built from the config before it was checked"
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "build_ssd", guarded)


def refusal(path, loader=load_model_from_checkpoint):
    """The one-line message a loader refuses ``path`` with."""
    with pytest.raises(ValueError) as caught:
        loader(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def test_limits_are_the_networks_there_are():
    assert set(IMAGE_SIZES) == {size for _, size in CONFIGS} and set(BASES) == {base for base, _ in CONFIGS}


def test_a_huge_n_classes_is_refused_before_any_head_is_built(tmp_path, no_real_network):
    """A 1.4 KB file whose config says 5000 classes built 2.8 GB of class heads (issue 32, 6)."""
    path = write(tmp_path / "huge.pt", {"n_classes": 5000}, state_dict={"x": torch.zeros(1)})
    message = refusal(path)
    assert "n_classes" in message and "5000" in message and str(MAX_CLASSES) in message


def test_n_classes_within_bounds_but_not_the_tensors_is_refused_naming_the_head(tmp_path, no_real_network):
    path = write(tmp_path / "liar.pt", {"n_classes": 1500, "label_map": {"background": 0}})
    message = refusal(path)
    assert "pred_convs.cl_conv4_3.weight" in message
    assert "(16, 512, 3, 3)" in message and "(6000, 512, 3, 3)" in message  # 4 priors x 4 / x 1500 classes
    assert "4 priors per location x 1500 classes" in message


@pytest.mark.parametrize("key, value, named", [
    ("n_classes", "4", "n_classes"), ("n_classes", 1, "n_classes"), ("n_classes", True, "n_classes"),
    ("n_classes", 4.0, "n_classes"), ("base", "vgg19", "base"), ("image_size", 20000, "image_size"),
    ("image_size", "300", "image_size"), ("label_map", ["background"], "label_map"),
    ("label_map", {"background": 0, "circle": 9}, "label 9"), ("label_map", {"background": 0, "a": 1, "b": 1},
                                                                "share"),
    ("priors", {"scales": "abc"}, "priors"), ("preprocess", {"mean": 1}, "preprocess"),
])
def test_config_values_of_the_wrong_type_or_range_are_one_line(tmp_path, no_real_network, key, value, named):
    """``n_classes: "4"`` gave a 30-line traceback (issue 32, 7)."""
    message = refusal(write(tmp_path / "bad.pt", {key: value}))
    assert named in message


def test_a_pair_that_does_not_exist_is_refused(tmp_path, no_real_network):
    assert "no SSD512 with base 'resnet50'" in refusal(write(tmp_path / "r512.pt", {"base": "resnet50",
                                                                                    "image_size": 512}))


def test_a_wrong_shape_names_the_file_the_key_and_both_shapes(tmp_path, no_real_network):
    """Only "Error(s) in loading state_dict for SSD300:" was shown, without file, key or shapes (issue 32, 7)."""
    state_dict = tiny_state_dict(4)
    state_dict["aux_convs.conv9_2.weight"] = torch.zeros(()).expand(256, 128, 5, 5)
    message = refusal(write(tmp_path / "shape.pt", {}, state_dict))
    assert "aux_convs.conv9_2.weight" in message and "(256, 128, 5, 5)" in message and "(256, 128, 3, 3)" in message


def test_missing_extra_and_non_tensor_weights_are_named(tmp_path, no_real_network):
    state_dict = tiny_state_dict(4)
    del state_dict["rescale_factors"]
    assert "rescale_factors" in refusal(write(tmp_path / "missing.pt", {}, state_dict))
    state_dict = {**tiny_state_dict(4), "surprise.weight": torch.zeros(1)}
    assert "'surprise.weight'" in refusal(write(tmp_path / "extra.pt", {}, state_dict))
    state_dict = {**tiny_state_dict(4), "rescale_factors": 20.0}
    assert "rescale_factors: expected a tensor" in refusal(write(tmp_path / "number.pt", {}, state_dict))
    assert "state_dict" in refusal(write(tmp_path / "list.pt", {}, [1, 2]))


def test_a_checkpoint_that_fits_loads_with_its_weights(tmp_path):
    state_dict = tiny_state_dict(4)
    state_dict["rescale_factors"] = torch.full((1, 512, 1, 1), 7.0)
    model, label_map = load_model_from_checkpoint(write(tmp_path / "good.pt", {}, state_dict))
    assert label_map == LABEL_MAP and model.n_classes == 4 and float(model.rescale_factors.detach()[0, 3]) == 7.0
    assert check_network_config("x.pt", {"n_classes": 4, "label_map": LABEL_MAP}, state_dict) == (4, "vgg16", 300)


def test_init_from_a_checkpoint_whose_labels_pass_its_head_is_refused(tmp_path, no_real_network):
    """--init-from with a label beyond the checkpoint's class head: an IndexError traceback (issue 32, 7)."""
    from ssd_support.weights import init_from_checkpoint

    path = write(tmp_path / "beyond.pt", {"label_map": {**LABEL_MAP, "star": 7}})
    message = refusal(path, lambda p: init_from_checkpoint(None, p, LABEL_MAP, log=None))
    assert "label 7 of 'star'" in message and "0..3" in message


def test_resuming_from_a_checkpoint_at_odds_with_its_config_is_one_line(tmp_path):
    """load_resume_state: the first line of load_state_dict's error named no key; the check names it."""
    path = write(tmp_path / "resume.pt", {"n_classes": 5}, iteration=10, optimizer={})
    with pytest.raises(TrainingSetupError, match=r"resume.pt: model pred_convs.cl_conv4_3.weight has shape "
                                                 r"\(16, 512, 3, 3\), but .* needs \(20, 512, 3, 3\)"):
        load_resume_state(path, None, None, None, LABEL_MAP, {})


def test_priors_that_are_not_the_configs_are_refused_in_the_model_and_in_its_ema_copy(tmp_path, no_real_network):
    """Garbage priors of the right shape passed every check: detect.py exited 0 with 200 zero-area boxes."""
    state_dict = tiny_state_dict(4)
    state_dict["priors_cxcy"] = torch.zeros(()).expand(state_dict["priors_cxcy"].shape)
    message = refusal(write(tmp_path / "priors.pt", {}, state_dict))
    assert "model priors_cxcy differs from the SSD300 vgg16 priors" in message and "8732 priors differ" in message
    ema = {"model": state_dict, "updates": 5}  # detect.py takes the EMA copy by default
    message = refusal(write(tmp_path / "ema_priors.pt", {}, tiny_state_dict(4), ema=ema))
    assert "ema model priors_cxcy differs" in message
    shifted = tiny_state_dict(4)
    shifted["priors_cxcy"] = shifted["priors_cxcy"].clone()
    shifted["priors_cxcy"][100, 2] += 1e-3
    assert "prior 100" in refusal(write(tmp_path / "shifted.pt", {}, shifted))


def test_priors_are_compared_with_the_configs_own_prior_spec(tmp_path, no_real_network):
    """A converted COCO checkpoint names its priors in its config: its buffer must be those, not the base's."""
    spec = {**prior_spec(ssd_config("vgg16", 300)), "scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]}
    coco_priors = create_prior_boxes(config_with_priors(ssd_config("vgg16", 300), spec))
    own = {**tiny_state_dict(4), "priors_cxcy": coco_priors}
    config = {"n_classes": 4, "label_map": LABEL_MAP, "priors": spec}
    assert check_network_config("coco.pt", config, own) == (4, "vgg16", 300)
    message = refusal(write(tmp_path / "base_priors.pt", {"priors": spec}, tiny_state_dict(4)))
    assert "priors_cxcy differs from the priors spec of its config" in message


def test_weights_that_are_not_finite_are_refused_naming_the_key(tmp_path, no_real_network):
    """NaN weights in the EMA copy were accepted."""
    state_dict = tiny_state_dict(4)
    state_dict["pred_convs.loc_conv4_3.bias"] = torch.tensor([float("nan")] * 16)
    message = refusal(write(tmp_path / "nan_ema.pt", {}, tiny_state_dict(4), ema={"model": state_dict}))
    assert "ema model pred_convs.loc_conv4_3.bias holds 16 of 16 values that are not finite" in message
    state_dict["pred_convs.loc_conv4_3.bias"] = torch.full((16,), float("inf"))
    assert "model pred_convs.loc_conv4_3.bias" in refusal(write(tmp_path / "inf.pt", {}, state_dict))
