"""ssd_support.score_thresholds: the thresholds file eval.py --thresholds-out writes and detect.py --thresholds
reads."""

import json

from ssd_support import score_thresholds


def test_a_class_never_detected_right_is_null_and_detect_py_drops_it(tmp_path):
    """best F1 0 (no detection of the class was ever right): no threshold helps, so --thresholds-out writes null
    and detect.py --thresholds reports none of that class (it kept --min-score, and an untrained class flooded)."""
    per_class = {"circle": {"score": None, "precision": 0.0, "recall": 0.0, "f1": 0.0, "n_positives": 3},
                 "square": {"score": 0.6, "precision": 1.0, "recall": 0.5, "f1": 2 / 3, "n_positives": 2}}
    path = tmp_path / "thresholds.json"
    score_thresholds.write_thresholds(str(path), per_class, "c.pt", "data", "VAL")
    assert json.loads(path.read_text())["thresholds"] == {"circle": None, "square": 0.6}
    floors = score_thresholds.class_min_scores({"background": 0, "circle": 1, "square": 2, "triangle": 3},
                                               thresholds=score_thresholds.load_thresholds(str(path)))
    assert floors == [float("inf"), 0.6, 0.0]
