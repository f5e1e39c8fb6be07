"""ssd_support.operating_points: eval.py --thresholds-out (the best-F1 score per class) and --operating-score
(precision, recall, F1 at a score)."""

import json

import pytest
import torch

import create_data_lists
import eval as eval_script
from ssd_support import checkpoints, operating_points
from datasets import PascalVOCDataset, load_label_map
from utils import make_label_map
from replay_ssd import ReplaySSD

LABEL_MAP = make_label_map(["cat", "dog"])
CAT_OBJECTS = [[0.0, 0.0, 0.1, 0.1], [0.2, 0.0, 0.3, 0.1], [0.4, 0.0, 0.5, 0.1]]
DOG_OBJECTS = [[0.0, 0.5, 0.1, 0.6], [0.2, 0.5, 0.3, 0.6]]
NOWHERE = [0.8, 0.8, 0.9, 0.9]  # overlaps no object: a false positive


def crafted():
    """One image, 3 cats and 2 dogs, and detections whose curves are worked out by hand below.

    cat: 0.9 right, 0.8 wrong, 0.7 right, 0.3 wrong, 0.2 wrong. F1 after each: 0.5, 0.4, 0.667, 0.571, 0.5.
    dog: 0.9 wrong, 0.6 right, 0.6 wrong, 0.5 wrong. After the first 0.6 F1 would be 0.5, but a threshold keeps
    both 0.6 detections or neither: 1 right of 3 kept, precision 1/3, recall 1/2, F1 0.4.
    """
    det = [(CAT_OBJECTS[0], 1, 0.9), (NOWHERE, 1, 0.8), (CAT_OBJECTS[1], 1, 0.7), (NOWHERE, 1, 0.3),
           (NOWHERE, 1, 0.2), (NOWHERE, 2, 0.9), (DOG_OBJECTS[0], 2, 0.6), (NOWHERE, 2, 0.6), (NOWHERE, 2, 0.5)]
    collected = {
        "det_boxes": [torch.tensor([d[0] for d in det])], "det_labels": [torch.tensor([d[1] for d in det])],
        "det_scores": [torch.tensor([d[2] for d in det])],
        "true_boxes": [torch.tensor(CAT_OBJECTS + DOG_OBJECTS)], "true_labels": [torch.tensor([1, 1, 1, 2, 2])],
        "true_difficulties": [torch.zeros(5, dtype=torch.uint8)]}
    _, curves = eval_script.score_detections(collected, LABEL_MAP)
    return collected, curves


def test_best_f1_threshold_per_class_on_hand_worked_curves():
    collected, curves = crafted()
    thresholds = operating_points.best_f1_thresholds(curves, operating_points.sorted_class_scores(collected, LABEL_MAP))
    assert thresholds["cat"] == {"score": pytest.approx(0.7), "precision": pytest.approx(2 / 3),
                                 "recall": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "n_positives": 3}
    assert thresholds["dog"] == {"score": pytest.approx(0.6), "precision": pytest.approx(1 / 3),
                                 "recall": pytest.approx(0.5), "f1": pytest.approx(0.4), "n_positives": 2}


def test_operating_point_at_a_score():
    collected, curves = crafted()
    scores = operating_points.sorted_class_scores(collected, LABEL_MAP)
    points = operating_points.operating_point(curves, scores, 0.75)
    assert points["cat"] == {"precision": pytest.approx(0.5), "recall": pytest.approx(1 / 3),
                             "f1": pytest.approx(0.4), "n_detections": 2}
    assert points["dog"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n_detections": 1}
    # Above every score nothing is kept; at the lowest score everything is.
    assert operating_points.operating_point(curves, scores, 0.95)["cat"]["n_detections"] == 0
    assert operating_points.operating_point(curves, scores, 0.2)["cat"]["recall"] == pytest.approx(2 / 3)
    table = operating_points.format_operating_point(points, 0.75)
    assert table.splitlines()[3].split() == ["cat", "0.5000", "0.3333", "0.4000", "2"]


def test_command_line_thresholds_out_and_operating_score_on_val(tmp_path, monkeypatch, capsys):
    """On a VAL split: every object found at 0.8, one wrong box per image at 0.5 (circle). The best-F1
    threshold of every class is 0.8 (precision 1, recall 1); at 0.4 the circle's precision drops."""
    folder = str(tmp_path / "toy")
    assert create_data_lists.main(["--toy", folder, "--toy-train", "6", "--toy-test", "1", "--seed", "2",
                                   "--val-fraction", "0.5"]) == 0
    label_map = load_label_map(folder)
    val = PascalVOCDataset(folder, "VAL", keep_difficult=True)
    detections = []
    for _, boxes, labels, difficulties in val:
        keep = difficulties == 0
        detections.append((torch.cat([boxes[keep], torch.tensor([[0.0, 0.0, 0.02, 0.02]])]),
                           torch.cat([labels[keep], torch.tensor([1])]),
                           torch.cat([torch.full((int(keep.sum()),), 0.8), torch.tensor([0.5])])))
    monkeypatch.setattr(checkpoints, "load_model_from_checkpoint",
                        lambda path, device="cpu": (ReplaySSD(detections), dict(label_map)))
    checkpoint, out = tmp_path / "stand-in.pt", tmp_path / "thresholds.json"
    checkpoint.write_bytes(b"stand-in")
    capsys.readouterr()
    assert eval_script.main(["--data-folder", folder, "--checkpoint", str(checkpoint), "--split", "VAL",
                             "--workers", "0", "--device", "cpu", "--no-progress", "--thresholds-out", str(out),
                             "--operating-score", "0.4"]) == 0
    printed = capsys.readouterr().out
    assert f"{folder} VAL: {len(val)} images" in printed
    saved = json.loads(out.read_text())
    assert saved["split"] == "VAL" and saved["thresholds"]
    for name, score in saved["thresholds"].items():  # every class has right detections here: none is null
        assert score == pytest.approx(0.8), name
        assert saved["per_class"][name]["precision"] == pytest.approx(1.0)
        assert saved["per_class"][name]["recall"] == pytest.approx(1.0)
    operating_table = printed[printed.index("At score >= 0.4:"):]
    row = next(line.split() for line in operating_table.splitlines() if line.startswith("circle "))
    n_circles = sum(int((labels == 1).sum()) for _, _, labels, _ in PascalVOCDataset(folder, "VAL"))
    # At 0.4 the circles' wrong boxes (one per image) are kept: precision n / (n + images), recall 1.
    assert float(row[1]) == pytest.approx(n_circles / (n_circles + len(val)), abs=1e-4)
    assert float(row[2]) == pytest.approx(1.0)
