"""A detector's operating points: the precision, recall and F1 of the detections scoring at least a score
(eval.py --operating-score, train.py's VAL evaluation), and per class the score that maximises F1
(eval.py --thresholds-out, which detect.py --thresholds reads).

All are read off the VOC precision-recall curves (ssd_support.voc_map), whose point i is "keep the i + 1
best-scoring detections of the class", so they use the AP's matching.
"""

import numpy as np

from ssd_support.score_thresholds import write_thresholds


def sorted_class_scores(collected, label_map):
    """Each class's detection scores in the order of its precision-recall curve: descending.

    ``utils.precision_recall_curves`` has one curve point per detection of a class, in descending score order,
    so point i of the curve is "keep the detections scoring at least scores[i]".

    :param collected: the dict eval.collect_detections returns
    :param label_map: {class name: label}, background 0
    :return: {class name: float64 array (n_c,) of scores, descending}
    """
    labels = np.concatenate([lab.numpy().reshape(-1) for lab in collected["det_labels"]] or [np.zeros(0, int)])
    scores = np.concatenate([s.double().numpy().reshape(-1) for s in collected["det_scores"]] or [np.zeros(0)])
    return {name: -np.sort(-scores[labels == label]) for name, label in label_map.items() if label != 0}


def _point(precision, recall, index):
    """(precision, recall, F1) at curve point ``index`` (-1: no detection kept, all three 0)."""
    if index < 0:
        return 0.0, 0.0, 0.0
    p, r = float(precision[index]), float(recall[index])
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def best_f1_thresholds(curves, class_scores):
    """Per class, the score threshold that maximises F1 on the evaluated split, with its precision and recall.

    Only the last point of a run of equal scores is a possible operating point (a threshold keeps all the
    detections of one score or none). A detector used at "score >= threshold" (detect.py --thresholds) then
    has this precision and recall on this split; pick thresholds on a VAL split, not on TEST.

    :param curves: {class: (precision, recall, n_positives)} from eval.score_detections
    :param class_scores: :func:`sorted_class_scores`'s dict
    :return: {class: {"score", "precision", "recall", "f1", "n_positives"}}; "score" is None for a class whose
        best F1 is 0 (no detection is right), for which no threshold helps
    """
    result = {}
    for name, (precision, recall, n_positives) in curves.items():
        scores = class_scores[name]
        best = (0.0, None, 0.0, 0.0)  # f1, score, precision, recall
        for index in range(len(scores)):
            if index + 1 < len(scores) and scores[index + 1] == scores[index]:
                continue  # not the end of a run of ties
            p, r, f1 = _point(precision, recall, index)
            if f1 > best[0]:
                best = (f1, float(scores[index]), p, r)
        result[name] = {"score": best[1], "precision": best[2], "recall": best[3], "f1": best[0],
                        "n_positives": n_positives}
    return result


def operating_point(curves, class_scores, score):
    """Per class, the precision, recall and F1 of the detections scoring at least ``score``.

    :param curves: {class: (precision, recall, n_positives)} from eval.score_detections
    :param class_scores: :func:`sorted_class_scores`'s dict
    :param score: the operating score, e.g. 0.4
    :return: {class: {"precision", "recall", "f1", "n_detections"}} (all 0 where no detection is kept)
    """
    result = {}
    for name, (precision, recall, _) in curves.items():
        n_kept = int(np.count_nonzero(class_scores[name] >= score))
        p, r, f1 = _point(precision, recall, n_kept - 1)
        result[name] = {"precision": p, "recall": r, "f1": f1, "n_detections": n_kept}
    return result


def format_operating_point(points, score):
    """The table --operating-score prints: precision, recall and F1 per class at one score, and their means."""
    width = max([len(name) for name in points] + [len("class")])
    lines = [f"At score >= {score}:", f"{'class':<{width}}  precision  recall      F1  detections",
             "-" * (width + 40)]
    for name, point in points.items():
        lines.append(f"{name:<{width}}  {point['precision']:9.4f}  {point['recall']:6.4f}  {point['f1']:6.4f}  "
                     f"{point['n_detections']:10d}")
    if points:
        means = operating_point_means(points)
        lines += ["-" * (width + 40), f"{'mean':<{width}}  {means['precision']:9.4f}  {means['recall']:6.4f}  "
                                      f"{means['f1']:6.4f}"]
    return "\n".join(lines)


def operating_point_means(points):
    """The means over classes of :func:`operating_point`'s precision, recall and F1.

    :return: {"precision", "recall", "f1"}: floats (0.0 when there is no class)
    """
    return {key: float(np.mean([point[key] for point in points.values()])) if points else 0.0
            for key in ("precision", "recall", "f1")}


def report_operating_points(collected, curves, label_map, operating_score=None, thresholds_out=None,
                            checkpoint=None, data_folder=None, split="TEST"):
    """eval.py --operating-score (print the table) and --thresholds-out (write the best-F1 thresholds).

    :param collected: eval.collect_detections' dict; ``curves``: its {class: (precision, recall, n_positives)}
    :param label_map: {class name: label}, background 0
    :param operating_score: print the precision, recall and F1 of each class at this score, or None
    :param thresholds_out: write the best-F1 thresholds to this JSON file (score_thresholds.write_thresholds), or
        None; ``checkpoint``, ``data_folder`` and ``split`` are recorded in it
    """
    if operating_score is None and thresholds_out is None:
        return
    class_scores = sorted_class_scores(collected, label_map)
    if operating_score is not None:
        print(format_operating_point(operating_point(curves, class_scores, operating_score),
                                     operating_score))
    if thresholds_out:
        thresholds = best_f1_thresholds(curves, class_scores)
        write_thresholds(thresholds_out, thresholds, checkpoint, data_folder, split)
        print(f"per-class thresholds (best F1 on {split}) written to {thresholds_out}"
              + ("; choosing them on TEST tunes on the test set" if split == "TEST" else ""))
