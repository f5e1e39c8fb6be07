"""The per-class score thresholds file: written by ``eval.py --thresholds-out``, read by ``detect.py --thresholds``.

One module owns the format, so the writer and the reader cannot drift apart::

    {"thresholds": {class name: score or null}, "criterion": ..., "checkpoint": ..., "data_folder": ...,
     "split": ..., "per_class": {class name: {"score", "precision", "recall", "f1"}}}

A plain ``{class name: score}`` object is read too. ``class_min_scores`` turns the file and ``--classes`` into the
per-class floors that ``SSD.detect_objects`` (and the ONNX detector) take.
"""

import json

from ssd_support.files import read_json, write_atomically


def write_thresholds(path, thresholds, checkpoint, data_folder, split):
    """Write --thresholds-out: {"thresholds": {class: score}, "per_class": {...}, where they came from}.

    ``detect.py --thresholds FILE`` reads the "thresholds" dict. A class none of whose detections was right on
    the split (best F1 0) gets null there, and detect.py does not report it: any threshold would only give
    false positives. Classes without objects in the split are left out (they keep detect.py's --min-score).
    """
    document = {"thresholds": {name: t["score"] for name, t in thresholds.items()},
                "criterion": "the score maximising F1 (detections kept at score >= it)",
                "checkpoint": checkpoint, "data_folder": data_folder, "split": split, "per_class": thresholds}
    write_atomically(path, lambda file: json.dump(document, file, indent=2))



def load_thresholds(path):
    """Read per-class minimum scores: eval.py --thresholds-out's file ({"thresholds": {class: score}, ...}), or
    a plain {class: score} JSON object. A null score (eval.py found no threshold at which any detection of the
    class was right) means the class is not reported at all.

    :return: {class name: float, inf for null}
    :raises ValueError: one line naming the file, when it is missing, not JSON or not such a mapping
    """
    try:
        document = read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    thresholds = document.get("thresholds", document) if isinstance(document, dict) else None
    if not isinstance(thresholds, dict) or not all(
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            for value in thresholds.values()):
        raise ValueError(f"{path}: expected {{class: score or null}} (or eval.py --thresholds-out's file)")
    return {name: float("inf") if value is None else float(value) for name, value in thresholds.items()}


def class_min_scores(label_map, classes=None, thresholds=None):
    """Per-class score floors for ``detect_objects``: --classes and --thresholds in one list.

    :param label_map: {class name: label}, background 0, labels 1..n-1
    :param classes: names of the classes to keep (None: all), in any letter case
    :param thresholds: {class name: minimum score} (None: none; other classes keep --min-score alone), in any
        letter case
    :return: None when neither is given, else a list of n-1 floats, one per object class in label order: 0 (no
        floor), the class's threshold, or inf for a class left out
    :raises ValueError: naming the unknown class names and the known ones
    """
    if classes is None and thresholds is None:
        return None
    known = {name for name, label in label_map.items() if label != 0}
    # Names as people type them (Dog, dog): matched without regard to letter case, as create_data_lists does.
    classes = None if classes is None else {name.lower() for name in classes}
    thresholds = {name.lower(): score for name, score in (thresholds or {}).items()}
    for option, names in (("--classes", classes or ()), ("--thresholds", thresholds)):
        unknown = sorted(set(names) - {name.lower() for name in known})
        if unknown:
            raise ValueError(f"{option}: unknown class(es) {', '.join(unknown)}; the model knows "
                             f"{', '.join(sorted(known))}")
    floors = [0.0] * (max(label_map.values()))
    for name, label in label_map.items():
        if label == 0:
            continue
        if classes is not None and name.lower() not in classes:
            floors[label - 1] = float("inf")
        elif name.lower() in thresholds:
            floors[label - 1] = thresholds[name.lower()]
    return floors
