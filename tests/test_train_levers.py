"""train.py's levers (issue 33) end to end on toy data, on CPU: background images in the loss, the augmentation's
parts, repeat-factor sampling, the EMA of the weights, and the resume check over every recorded setting."""

import contextlib
import io
import json
import os

import pytest
import torch

import create_data_lists as cdl
import train
from ssd_support import data_lists
from ssd_support.checkpoints import changed_settings, load_model_from_checkpoint
from ssd_support.toy_data import make_toy_dataset
from test_train_features import copy_lists, measured, quiet_args


@pytest.fixture(scope="module")
def background_folder(tmp_path_factory):
    """6 TRAIN / 2 TEST toy images, some of them without objects (only decoys)."""
    folder = str(tmp_path_factory.mktemp("background"))
    voc = make_toy_dataset(folder, n_train=6, n_test=2, seed=1, background_fraction=0.4)
    with contextlib.redirect_stdout(io.StringIO()):
        cdl.create_data_lists(voc07_path=voc, output_folder=folder)
    return folder


def losses(result):
    return [row["loss"] for row in result["log"]]


def test_a_run_with_every_lever_resumes_exactly(background_folder, tmp_path, capsys):
    """--ema --repeat-factor-threshold --negatives-per-empty-image --no-flip: 4 iterations in one go log the same
    losses, and end with the same EMA, as 2 iterations, a stop, and --resume latest for 2 more."""
    with open(os.path.join(background_folder, "TRAIN_objects.json")) as file:
        n_empty = sum(not entry["labels"] for entry in json.load(file))
    assert 0 < n_empty < 6
    common = ["--batch-size", "2", "--warmup", "1", "--decay-at", "3", "--ema", "--ema-decay", "0.9",
              "--repeat-factor-threshold", "0.9", "--negatives-per-empty-image", "3", "--no-flip"]
    straight = train.main(quiet_args(background_folder, tmp_path / "straight", "--iterations", "4", *common))
    printed = capsys.readouterr().out
    assert (f"{n_empty} of 6 TRAIN images have no objects: each contributes its 3 hardest negatives "
            f"(--negatives-per-empty-image).") in printed.splitlines()
    assert "Repeat factors (T=0.9): " in printed
    train.main(quiet_args(background_folder, tmp_path / "resumed", "--iterations", "2", *common))
    resumed = train.main(quiet_args(background_folder, tmp_path / "resumed", "--iterations", "4", "--resume",
                                    "latest", *common))
    assert resumed["iteration"] == 4 and losses(resumed) == losses(straight) and len(losses(straight)) == 4
    ends = [torch.load(result["checkpoint"], weights_only=True) for result in (straight, resumed)]
    assert ends[0]["ema"]["updates"] == ends[1]["ema"]["updates"] == 4
    for name, tensor in ends[0]["ema"]["model"].items():
        torch.testing.assert_close(ends[1]["ema"]["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    assert not torch.equal(ends[0]["model"]["base.conv1_1.weight"], ends[0]["ema"]["model"]["base.conv1_1.weight"])
    # eval.py, detect.py and export.py load through this: the EMA weights by default.
    model, _ = load_model_from_checkpoint(straight["checkpoint"])
    assert "using its EMA weights (train.py --ema, 4 updates)" in capsys.readouterr().err
    assert torch.equal(model.state_dict()["base.conv1_1.weight"], ends[0]["ema"]["model"]["base.conv1_1.weight"])


def test_background_images_teach_by_default_and_the_papers_zero_stays_reachable(background_folder, tmp_path,
                                                                             capsys):
    """TRAIN of background images only: by default (K = 3, measured in docs/training.md) a step has a loss (their
    hardest negatives); with --negatives-per-empty-image 0 (the paper's loss) it is 0, and train.py says so."""
    folder = tmp_path / "background_only"
    folder.mkdir()
    objects = json.loads(open(os.path.join(background_folder, "TRAIN_objects.json")).read())
    images = json.loads(open(os.path.join(background_folder, "TRAIN_images.json")).read())
    empty = [index for index, entry in enumerate(objects) if not entry["labels"]][:2]
    assert len(empty) == 2
    (folder / "TRAIN_objects.json").write_text(json.dumps([objects[i] for i in empty]))
    (folder / "TRAIN_images.json").write_text(json.dumps([os.path.join(background_folder, images[i])
                                                          for i in empty]))
    for name in ("TEST_images.json", "TEST_objects.json", "label_map.json"):
        text = open(os.path.join(background_folder, name)).read()
        if name == "TEST_images.json":
            text = json.dumps([os.path.join(background_folder, path) for path in json.loads(text)])
        (folder / name).write_text(text)
    common = ["--batch-size", "2", "--iterations", "1", "--no-previews", "--no-augment"]
    default = train.main(quiet_args(str(folder), tmp_path / "default", *common))
    assert ("2 of 2 TRAIN images have no objects: each contributes its 3 hardest negatives "
            "(--negatives-per-empty-image).") in capsys.readouterr().out.splitlines()
    assert float(default["log"][0]["loss"]) > 0
    papers = train.main(quiet_args(str(folder), tmp_path / "papers", *common, "--negatives-per-empty-image", "0"))
    assert "contribute nothing to the loss (--negatives-per-empty-image 0" in capsys.readouterr().out
    assert float(papers["log"][0]["loss"]) == 0


def test_all_four_augmentation_switches_train_as_no_augment(toy_data_folder, tmp_path):
    common = ["--batch-size", "2", "--iterations", "2", "--max-images", "4", "--no-previews"]
    unaugmented = train.main(quiet_args(toy_data_folder, tmp_path / "none", "--no-augment", *common))
    switched = train.main(quiet_args(toy_data_folder, tmp_path / "four", "--no-photometric", "--no-zoom-out",
                                     "--no-crop", "--no-flip", *common))
    assert losses(switched) == losses(unaugmented)
    assert torch.load(switched["checkpoint"], weights_only=True)["args"]["no_zoom_out"] is True


def test_the_augmentation_switches_are_compared_on_resume_by_what_they_leave_out():
    """Resuming a --no-augment run with --no-flip added, or a run of the four switches with --no-augment, changes
    nothing; leaving one of them out does, and the message names the switch as given."""
    paper = {"no_augment": False, "no_photometric": False, "no_zoom_out": False, "no_crop": False, "no_flip": False}
    four = {**paper, "no_photometric": True, "no_zoom_out": True, "no_crop": True, "no_flip": True}
    unaugmented = {**paper, "no_augment": True}
    assert changed_settings(unaugmented, {**unaugmented, "no_flip": True}) == []
    assert changed_settings(four, unaugmented) == changed_settings(unaugmented, four) == []
    assert changed_settings(unaugmented, {**paper, "no_flip": True}) == ["--no-augment False (was True)"]
    assert changed_settings(four, {**four, "no_crop": False}) == ["--no-crop False (was True)"]
    assert changed_settings(paper, {**paper, "no_flip": True}) == ["--no-flip True (was False)"]
    assert changed_settings({**paper, "lr": 1e-3}, {**paper, "lr": 2e-3}) == ["--lr 0.002 (was 0.001)"]
    # Which chain augments: nothing when nothing is augmented, a change otherwise.
    assert changed_settings(unaugmented, {**unaugmented, "reference_augment": True}) == []
    assert changed_settings({**paper, "reference_augment": False}, {**paper, "reference_augment": True}) == \
        ["--reference-augment True (was False)"]


def test_resuming_refuses_any_changed_recorded_setting_in_one_line(toy_data_folder, tmp_path, capsys):
    """Issue 31 item 7: a --lr-schedule cosine run resumed without the flag would train at the step schedule's
    rates. Every recorded setting is compared (the new levers too), the run's length and paths are not;
    --allow-changed-settings accepts the change with a warning naming it."""
    common = ["--batch-size", "1", "--max-images", "1", "--no-previews"]
    first = train.main(quiet_args(toy_data_folder, tmp_path, "--iterations", "1", "--lr-schedule", "cosine", *common))
    for extra, named in (([], "--lr-schedule step (was cosine)"), (["--lr-schedule", "cosine", "--no-flip"],
                                                                    "--no-flip True (was False)"),
                         (["--lr-schedule", "cosine", "--ema"], "--ema True (was False)")):
        with pytest.raises(train.TrainingSetupError, match="--allow-changed-settings") as error:
            train.main(quiet_args(toy_data_folder, tmp_path, "--iterations", "2", "--resume", "latest", *common,
                                  *extra))
        message = str(error.value)
        assert message.startswith(f"{first['checkpoint']}: this run changes") and named in message
        assert "\n" not in message and message.count("(was ") == 1, message
    result = train.main(quiet_args(toy_data_folder, tmp_path, "--iterations", "2", "--resume", "latest",
                                   "--workers", "1", "--log-every", "5", *common, "--allow-changed-settings"))
    assert result["iteration"] == 2
    assert "resuming with changed settings: --lr-schedule step (was cosine)" in capsys.readouterr().err


def test_evaluations_and_best_pt_use_the_ema_weights(toy_data_folder, tmp_path, monkeypatch):
    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)
    with contextlib.redirect_stdout(io.StringIO()):
        data_lists.split_validation(folder, 0.5)
    evaluated = []

    def fake_evaluate_split(model, split):
        evaluated.append({name: tensor.clone() for name, tensor in model.state_dict().items()})
        return measured(0.5)

    monkeypatch.setattr(train, "evaluation_on", lambda *args, **kwargs: fake_evaluate_split)
    train.main(quiet_args(folder, tmp_path / "ckpt", "--iterations", "1", "--batch-size", "1", "--eval-every", "1",
                          "--ema", "--no-previews"))
    best = torch.load(tmp_path / "ckpt" / "best.pt", weights_only=True)
    assert best["ema"]["updates"] == 1 and len(evaluated) == 1
    for name, tensor in best["ema"]["model"].items():
        assert torch.equal(evaluated[0][name], tensor), name
    assert not torch.equal(best["model"]["base.conv1_1.weight"], best["ema"]["model"]["base.conv1_1.weight"])
