"""Tests of eval.py: evaluate() with stand-in models, and the command line on a tiny toy data set."""

import json
import os

import pytest
import torch
from torch import nn

import create_data_lists
import eval as eval_script
import model as model_module
from ssd_support import checkpoints
from datasets import PascalVOCDataset, load_label_map
from utils import make_label_map
from replay_ssd import ReplaySSD

LABEL_MAP = make_label_map(["cat", "dog"])


class Wrapper(nn.Module):
    """Like DistributedDataParallel: the network is under .module."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def _toy_batches():
    """Two batches (2 images + 1) of ground truth, the form a TEST data loader gives."""
    boxes = [torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]), torch.tensor([[0.2, 0.2, 0.6, 0.7]]),
             torch.tensor([[0.0, 0.0, 0.3, 0.3], [0.6, 0.1, 0.9, 0.4]])]
    labels = [torch.tensor([1, 2]), torch.tensor([1]), torch.tensor([2, 2])]
    difficulties = [torch.tensor([0, 0], dtype=torch.uint8), torch.tensor([0], dtype=torch.uint8),
                    torch.tensor([0, 1], dtype=torch.uint8)]
    images = torch.zeros(3, 3, 300, 300)
    loader = [(images[:2], boxes[:2], labels[:2], difficulties[:2]), (images[2:], boxes[2:], labels[2:],
                                                                     difficulties[2:])]
    return loader, boxes, labels


def test_evaluate_perfect_detections_score_one_and_model_mode_is_restored():
    loader, boxes, labels = _toy_batches()
    network = ReplaySSD([(b, lab, torch.ones(len(lab))) for b, lab in zip(boxes, labels)])
    network.train()
    results = eval_script.evaluate(Wrapper(network), loader, LABEL_MAP, "cpu", progress=False)
    assert results == {"ap_11pt": {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)},
                       "map_11pt": pytest.approx(1.0),
                       "ap_area": {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)},
                       "map_area": pytest.approx(1.0)}
    # Evaluated in eval mode under inference_mode with the paper's settings; training mode restored afterwards.
    assert [call["training"] for call in network.calls] == [False, False]
    assert all(call["inference"] for call in network.calls)
    assert network.calls[0]["min_score"] == 0.01 and network.calls[0]["max_overlap"] == 0.45
    assert network.calls[0]["top_k"] == 200 and network.calls[0]["max_candidates_per_class"] == 400
    assert network.training


def test_evaluate_misplaced_and_partial_detections():
    loader, boxes, labels = _toy_batches()
    # Every box moved off its object: nothing is found.
    shifted = [((b + 0.5).clamp(max=1.0), lab, torch.ones(len(lab))) for b, lab in zip(boxes, labels)]
    results = eval_script.evaluate(ReplaySSD(shifted), loader, LABEL_MAP, "cpu", progress=False)
    assert results["map_11pt"] == 0.0 and results["map_area"] == 0.0
    # Cats found, dogs missed: dog AP 0 and mAP 0.5 (the difficult dog does not count).
    cats_only = [(b[lab == 1], lab[lab == 1], torch.ones(int((lab == 1).sum()))) for b, lab in zip(boxes, labels)]
    results = eval_script.evaluate(ReplaySSD(cats_only), loader, LABEL_MAP, "cpu", progress=False, min_score=0.3)
    assert results["ap_11pt"] == {"cat": pytest.approx(1.0), "dog": 0.0}
    assert results["map_11pt"] == pytest.approx(0.5)


def test_format_table_lists_every_class_and_marks_missing_ones():
    results = {"ap_11pt": {"cat": 0.75}, "map_11pt": 0.75, "ap_area": {"cat": 0.8}, "map_area": 0.8}
    lines = eval_script.format_table(results, LABEL_MAP).splitlines()
    assert lines[0].split() == ["class", "AP", "11-point", "AP", "area"]
    assert lines[2].split() == ["cat", "0.7500", "0.8000"]
    assert lines[3].split()[:3] == ["dog", "n/a", "n/a"]
    assert lines[-1].split() == ["mAP", "0.7500", "0.8000"]
    assert not any("background" in line for line in lines)


@pytest.fixture(scope="module")
def tiny_test_folder(tmp_path_factory):
    """A toy data set with 3 TEST images (and 1 TRAIN image), its lists written beside it."""
    folder = tmp_path_factory.mktemp("toy_eval")
    assert create_data_lists.main(["--toy", str(folder), "--toy-train", "1", "--toy-test", "3", "--seed", "5"]) == 0
    return str(folder)


def _oracle(data_folder):
    """A ReplaySSD whose detections are the TEST ground truth (difficult objects included), score 1."""
    dataset = PascalVOCDataset(data_folder, "TEST", keep_difficult=True)
    return ReplaySSD([(boxes, labels, torch.ones(len(labels))) for _, boxes, labels, _ in dataset])


def test_command_line_with_perfect_detections_on_toy_data(tiny_test_folder, tmp_path, monkeypatch, capsys):
    label_map = load_label_map(tiny_test_folder)
    checkpoint = tmp_path / "oracle.pt"
    checkpoint.write_bytes(b"stand-in")  # main checks the file exists; the loader is replaced below
    monkeypatch.setattr(checkpoints, "load_model_from_checkpoint",
                        lambda path, device="cpu": (_oracle(tiny_test_folder), dict(label_map)))
    output, plots = tmp_path / "results.json", tmp_path / "plots"
    status = eval_script.main(["--data-folder", tiny_test_folder, "--checkpoint", str(checkpoint), "--workers", "0",
                               "--batch-size", "2", "--device", "cpu", "--output", str(output),
                               "--plots", str(plots), "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    saved = json.loads(output.read_text())
    assert saved["n_images"] == 3 and saved["settings"] == {"min_score": 0.01, "max_overlap": 0.45, "top_k": 200,
                                                            "max_candidates_per_class": 400}
    assert saved["map_11pt"] == pytest.approx(1.0) and saved["map_area"] == pytest.approx(1.0)
    assert set(saved["ap_11pt"]) <= set(label_map) - {"background"} and saved["ap_11pt"]
    # Perfect detections: no error, so predictions/ draws no image and lists none.
    assert sorted(os.listdir(plots)) == sorted([f"pr_{name}.png" for name in saved["ap_11pt"]] + [
        "confusion_matrix.csv", "confusion_matrix.png", "f1_curve.png", "predictions"])
    assert json.loads((plots / "predictions" / "index.json").read_text())["images"] == []
    for name in label_map:
        if name != "background":
            assert name in printed
    assert "mAP" in printed and "1.0000" in printed


def test_command_line_feeds_the_model_its_own_input_size(tiny_test_folder, tmp_path, monkeypatch):
    """An SSD512 (model.image_size 512) gets 512x512 images, an SSD300 (or a model without the attribute) 300x300."""
    checkpoint = tmp_path / "stand-in.pt"
    checkpoint.write_bytes(b"stand-in")
    for image_size, expected in ((512, 512), (None, 300)):
        network = _oracle(tiny_test_folder)
        if image_size is not None:
            network.image_size = image_size
        monkeypatch.setattr(checkpoints, "load_model_from_checkpoint",
                            lambda path, device="cpu": (network, load_label_map(tiny_test_folder)))
        assert eval_script.main(["--data-folder", tiny_test_folder, "--checkpoint", str(checkpoint), "--workers",
                                 "0", "--batch-size", "3", "--device", "cpu", "--no-progress"]) == 0
        assert [call["shape"] for call in network.calls] == [(3, 3, expected, expected)]


def test_command_line_refuses_a_checkpoint_with_another_label_map(tiny_test_folder, tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "other.pt"
    checkpoint.write_bytes(b"stand-in")
    monkeypatch.setattr(checkpoints, "load_model_from_checkpoint",
                        lambda path, device="cpu": (ReplaySSD([]), dict(LABEL_MAP)))
    status = eval_script.main(["--data-folder", tiny_test_folder, "--checkpoint", str(checkpoint), "--workers", "0",
                               "--device", "cpu"])
    assert status == 1
    error = capsys.readouterr().err
    assert "label_map.json" in error and "other.pt" in error and len(error.strip().splitlines()) == 1


def test_command_line_missing_checkpoint_is_a_one_line_error(tiny_test_folder, capsys):
    assert eval_script.main(["--data-folder", tiny_test_folder, "--checkpoint", "no/such.pt"]) == 1
    assert capsys.readouterr().err.strip() == "eval.py: error: no/such.pt: checkpoint not found"


def test_command_line_evaluates_a_real_checkpoint(tiny_test_folder, tmp_path, capsys, save_checkpoint):
    """A randomly initialised SSD300 saved in train.py's format: loads, runs, scores (near zero, but valid)."""
    label_map = load_label_map(tiny_test_folder)
    torch.manual_seed(0)
    network = model_module.SSD300(n_classes=len(label_map))
    checkpoint = save_checkpoint(tmp_path / "ssd300_iter_000000.pt", network, label_map)
    output = tmp_path / "results.json"
    status = eval_script.main(["--data-folder", tiny_test_folder, "--checkpoint", str(checkpoint), "--workers", "0",
                               "--batch-size", "2", "--device", "cpu", "--output", str(output), "--no-progress"])
    assert status == 0
    saved = json.loads(output.read_text())
    assert saved["ap_11pt"].keys() == saved["ap_area"].keys() and saved["ap_11pt"]
    for key in ("ap_11pt", "ap_area"):
        assert all(0.0 <= ap <= 1.0 for ap in saved[key].values())
    assert saved["map_11pt"] == pytest.approx(sum(saved["ap_11pt"].values()) / len(saved["ap_11pt"]))
    assert "mAP" in capsys.readouterr().out
