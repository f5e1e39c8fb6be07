"""Look at a detector's errors (eval.py --plots DIR): a precision-recall plot per class (save_pr_curves), a confusion
matrix, precision / recall / F1 against the score, and the images with the most errors drawn with their ground truth
and detections.

Every count here is taken at one operating score (eval.py --operating-score, 0.5 by default): the detections
scoring at least that, matched to the objects as the Pascal VOC devkit matches them (utils' precision-recall
curves, the AP's matching), so that the confusion matrix's diagonal holds the devkit's true positives at that
score and its rows and columns add up to the precision and recall eval.py prints for it.
"""

import csv
import json
import os
import re

import numpy as np
import torch
from torchvision.ops import box_iou

from ssd_support.files import write_atomically
from utils import average_precision

# The operating score when --operating-score is not given: a detection counts at score >= 0.5 (the usual
# "deployed" threshold of the confusion matrices of mmdetection and Ultralytics is 0.25-0.3; SSD's softmax
# scores are lower than their sigmoid ones, and detect.py draws from 0.2).
OPERATING_SCORE = 0.5
# The VOC criterion: a detection finds an object when their IoU is above 0.5.
MATCH_IOU = 0.5
# How many of the worst images predictions/ draws.
N_PREDICTION_IMAGES = 16
BACKGROUND = "background"  # the confusion matrix's last row: detections that find no object
MISSED = "missed"  # its last column: objects no detection finds

# What happens to each detection scoring >= the operating score (match_image's codes).
TRUE_POSITIVE, IGNORED, WRONG_CLASS, ON_BACKGROUND = 0, 1, 2, 3
# ... and to each object.
FOUND, DIFFICULT, CONFUSED, NOT_FOUND = 0, 1, 2, 3

GROUND_TRUTH_COLOUR = "#00a000"  # green: the annotation
DETECTION_COLOUR = "#e6194b"  # red: what the network says


def operating_score_argument(text):
    """argparse ``type`` of --operating-score (eval.py, train.py): a class score, a number in [0, 1].

    :raises argparse.ArgumentTypeError: otherwise (argparse then prints usage and the one line, exit 2)
    """
    import argparse

    try:
        score = float(text)
    except ValueError:
        score = float("nan")
    if not 0.0 <= score <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"a class score is a number between 0 and 1, got {text!r}")
    return score


def _iou(boxes_a, boxes_b):
    """IoU of every pair, float64 (n, m); boxes fractional x1y1x2y2. A pair with a zero-area union gets 0, as in
    utils' precision-recall curves (torchvision's box_iou gives 0 / 0 = NaN there)."""
    return torch.nan_to_num(box_iou(boxes_a.double().reshape(-1, 4), boxes_b.double().reshape(-1, 4)), nan=0.0)


def match_image(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties, min_score,
                iou_threshold=MATCH_IOU):
    """What each detection scoring >= ``min_score`` of one image is, and what became of each object.

    First, class by class, as the VOC devkit does: a class's detections in descending score order (a stable
    sort: equal scores keep their input order) each take the object of their class they overlap most (difficult
    ones included); IoU > ``iou_threshold`` with a difficult object: ignored; with an object not yet found: a true
    positive; otherwise (no overlap, or a duplicate of a found object) a false positive. Then the false positives,
    all classes together in descending score order, each take the object of *another* class they overlap most
    among the non-difficult objects not found and not yet taken this way: IoU > ``iou_threshold`` makes it a
    wrong-class detection of that object (a confusion), anything else a detection on background. So every object
    is found, difficult, confused with one detection of another class, or not found at all.

    :param det_boxes: (n, 4) detected boxes, fractional x1y1x2y2
    :param det_labels: (n,) their labels (1..K)
    :param det_scores: (n,) their scores
    :param true_boxes: (m, 4) objects, fractional x1y1x2y2
    :param true_labels: (m,) their labels
    :param true_difficulties: (m,) 1/True for difficult objects
    :param min_score: the operating score: detections scoring below it are left out
    :param iou_threshold: a match needs an IoU strictly above this
    :return: (kept (k,) int64 indices of the detections scoring >= min_score, in input order; det_outcome (k,)
        int64: TRUE_POSITIVE, IGNORED, WRONG_CLASS or ON_BACKGROUND; det_object (k,) int64: the object a true
        positive or wrong-class detection found, -1 otherwise; object_outcome (m,) int64: FOUND, DIFFICULT,
        CONFUSED or NOT_FOUND)
    """
    det_labels = det_labels.reshape(-1).long().cpu()
    det_scores = det_scores.reshape(-1).double().cpu()
    true_labels = true_labels.reshape(-1).long().cpu()
    difficult = true_difficulties.reshape(-1).bool().cpu().numpy()
    kept = torch.nonzero(det_scores >= min_score).reshape(-1)
    iou = _iou(det_boxes.cpu()[kept], true_boxes.cpu()).numpy()  # (k, m)
    labels, objects = det_labels[kept].numpy(), true_labels.numpy()
    scores = det_scores[kept].numpy()
    order = np.argsort(-scores, kind="stable")  # one order for both passes: within a class, the devkit's

    det_outcome = np.full(len(kept), ON_BACKGROUND, dtype=np.int64)
    det_object = np.full(len(kept), -1, dtype=np.int64)
    object_outcome = np.where(difficult, DIFFICULT, NOT_FOUND).astype(np.int64)
    # Pass 1, the devkit's: each detection against the objects of its own class.
    for d in order:
        same = np.flatnonzero(objects == labels[d])
        if not len(same):
            continue
        j = same[np.argmax(iou[d, same])]  # argmax: a tie goes to the first object, as in the devkit
        if iou[d, j] <= iou_threshold:
            continue
        if difficult[j]:
            det_outcome[d] = IGNORED
        elif object_outcome[j] == NOT_FOUND:
            det_outcome[d], det_object[d], object_outcome[j] = TRUE_POSITIVE, j, FOUND
    # Pass 2: the devkit's false positives against the objects of other classes that are still unfound.
    for d in order:
        if det_outcome[d] != ON_BACKGROUND:
            continue
        others = np.flatnonzero((objects != labels[d]) & (object_outcome == NOT_FOUND))
        if not len(others):
            continue
        j = others[np.argmax(iou[d, others])]
        if iou[d, j] > iou_threshold:
            det_outcome[d], det_object[d], object_outcome[j] = WRONG_CLASS, j, CONFUSED
    return kept, det_outcome, det_object, object_outcome


def analyse_errors(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties, label_map,
                   min_score=OPERATING_SCORE, iou_threshold=MATCH_IOU):
    """The confusion matrix and each image's errors at one operating score (:func:`match_image`, image by image).

    :param det_boxes: list of N tensors (n_i, 4), detected boxes, fractional x1y1x2y2, one per image
    :param det_labels: list of N tensors (n_i,), their labels
    :param det_scores: list of N tensors (n_i,), their scores
    :param true_boxes: list of N tensors (m_i, 4), objects, fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), their labels
    :param true_difficulties: list of N tensors (m_i,), 1/True for difficult objects
    :param label_map: {class name: label}, background 0
    :param min_score: the operating score
    :param iou_threshold: a match needs an IoU strictly above this (0.5)
    :return: {"classes": K names in label order, "matrix": int64 array (K + 1, K + 1): row i < K the objects of
        class i (difficult ones left out), row K "background"; column j < K the detections of class j, column K
        "missed"; so matrix[i, j] counts class-i objects detected as class j (for i != j: objects their own class
        did not find), matrix[K, j] class-j false positives that are no such wrong-class detection (on no
        object, or a second detection of an object already found), matrix[i, K] class-i objects nothing finds,
        matrix[K, K] is 0; row i sums to the class's non-difficult objects, column j to its detections less the
        ignored ones (those on difficult objects); "false_positives", "misses": int64 arrays (N,), per image the
        detections that are wrong (wrong class or background) and the non-difficult objects its own class does
        not find (confused or missed); "min_score"}
    :raises ValueError: when the lists differ in length, or a label is not in the label map
    """
    n_images = len(true_boxes)
    for name, per_image in (("det_boxes", det_boxes), ("det_labels", det_labels), ("det_scores", det_scores),
                            ("true_labels", true_labels), ("true_difficulties", true_difficulties)):
        if len(per_image) != n_images:
            raise ValueError(f"{name} has {len(per_image)} images but true_boxes has {n_images}")
    in_order = sorted((label, name) for name, label in label_map.items() if label != 0)
    classes = [name for _, name in in_order]
    index_of = {label: k for k, (label, _) in enumerate(in_order)}  # label -> row / column
    n_classes = len(classes)
    matrix = np.zeros((n_classes + 1, n_classes + 1), dtype=np.int64)
    false_positives = np.zeros(n_images, dtype=np.int64)
    misses = np.zeros(n_images, dtype=np.int64)
    for i in range(n_images):
        kept, det_outcome, det_object, object_outcome = match_image(
            det_boxes[i], det_labels[i], det_scores[i], true_boxes[i], true_labels[i], true_difficulties[i],
            min_score, iou_threshold)
        labels = det_labels[i].reshape(-1).long().cpu()[kept].tolist()
        objects = true_labels[i].reshape(-1).long().cpu().tolist()
        for label in set(labels) | set(objects):
            if label not in index_of:
                raise ValueError(f"image {i}: label {label} is not in the label map ({sorted(index_of)})")
        for label, outcome, j in zip(labels, det_outcome.tolist(), det_object.tolist()):
            if outcome in (TRUE_POSITIVE, WRONG_CLASS):
                matrix[index_of[objects[j]], index_of[label]] += 1
            elif outcome == ON_BACKGROUND:
                matrix[n_classes, index_of[label]] += 1
        for label, outcome in zip(objects, object_outcome.tolist()):
            if outcome == NOT_FOUND:
                matrix[index_of[label], n_classes] += 1
        false_positives[i] = np.count_nonzero((det_outcome == WRONG_CLASS) | (det_outcome == ON_BACKGROUND))
        misses[i] = np.count_nonzero((object_outcome == CONFUSED) | (object_outcome == NOT_FOUND))
    return {"classes": classes, "matrix": matrix, "false_positives": false_positives, "misses": misses,
            "min_score": min_score}


def write_confusion_matrix_csv(path, analysis):
    """Write the confusion matrix as CSV: a header "ground truth \\ detected", the class names, "missed"; then one
    row per class and a "background" row, whose "missed" cell is empty (not a cell: nothing is both).

    :param path: the CSV file
    :param analysis: :func:`analyse_errors`'s dict
    """
    classes, matrix = analysis["classes"], analysis["matrix"]

    def write(file):
        """The rows, through the csv module (class names may hold commas or quotes)."""
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["ground truth \\ detected", *classes, MISSED])
        for k, name in enumerate(classes):
            writer.writerow([name, *matrix[k].tolist()])
        writer.writerow([BACKGROUND, *matrix[len(classes), :len(classes)].tolist(), ""])

    write_atomically(path, write)


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported when a figure is drawn (never at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_confusion_matrix_png(path, analysis):
    """Draw the confusion matrix: each cell's colour is its share of its row (of the class's objects; of all the
    background detections for the last row), its count written in it (up to 30 classes; beyond, colours only).

    :param path: the PNG file
    :param analysis: :func:`analyse_errors`'s dict
    """
    plt = _pyplot()
    classes, matrix = analysis["classes"], analysis["matrix"]
    n = len(classes) + 1
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(max(4.0, 0.45 * n + 2.0), 24.0)
    figure, axes = plt.subplots(figsize=(side + 1.0, side))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(n), [*classes, MISSED], rotation=90 if n > 6 else 0, fontsize=8)
    axes.set_yticks(range(n), [*classes, BACKGROUND], fontsize=8)
    axes.set(xlabel="detected as", ylabel="ground truth",
             title=f"Confusion matrix at score >= {analysis['min_score']:g}, IoU > {MATCH_IOU:g}")
    if n <= 31:
        for i in range(n):
            for j in range(n):
                if i == n - 1 and j == n - 1:
                    continue
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if shares[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def score_curves(curves, class_scores, thresholds):
    """Precision, recall and F1 of each class, and their means over the classes, for detections scoring >= each
    threshold.

    :param curves: {class: (precision (n_c,), recall (n_c,), n_positives)}, utils' precision-recall curves: point
        i is "the detections of the class down to its i-th best"
    :param class_scores: {class: the class's detection scores, descending (n_c,)}, in the same order
    :param thresholds: float array (T,) of scores
    :return: {class: {"precision", "recall", "f1": float64 arrays (T,)}} for the classes of ``curves``, plus
        "all classes": the mean of the classes' values at each threshold (as eval.py's --operating-score table
        averages them); a threshold that keeps no detection of a class gives it 0, 0, 0
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    result = {}
    for name, (precision, recall, _) in curves.items():
        scores = np.asarray(class_scores[name], dtype=np.float64)
        n_kept = np.searchsorted(-scores, -thresholds, side="right")  # scores >= t, scores descending
        index = np.maximum(n_kept - 1, 0)
        p = np.where(n_kept > 0, np.asarray(precision, dtype=np.float64)[index] if len(scores) else 0.0, 0.0)
        r = np.where(n_kept > 0, np.asarray(recall, dtype=np.float64)[index] if len(scores) else 0.0, 0.0)
        f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=p + r > 0)
        result[name] = {"precision": p, "recall": r, "f1": f1}
    if result:
        result["all classes"] = {key: np.mean([value[key] for value in result.values()], axis=0)
                                 for key in ("precision", "recall", "f1")}
    return result


def save_f1_curve_png(path, curves, class_scores, operating_score=OPERATING_SCORE):
    """Draw precision, recall and F1 against the score threshold (0 to 1), one thin line per class and a thick one
    for the mean over the classes, the operating score marked.

    :param path: the PNG file
    :param curves: {class: (precision, recall, n_positives)} (eval.score_detections)
    :param class_scores: {class: descending scores} (eval.sorted_class_scores)
    :param operating_score: drawn as a dashed vertical line
    """
    plt = _pyplot()
    thresholds = np.linspace(0.0, 1.0, 201)
    values = score_curves(curves, class_scores, thresholds)
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for panel, key in zip(axes, ("precision", "recall", "f1")):
        for name, value in values.items():
            if name == "all classes":
                continue
            panel.plot(thresholds, value[key], linewidth=0.8, alpha=0.6, label=name if len(values) <= 11 else None)
        if "all classes" in values:
            best = int(np.argmax(values["all classes"][key]))
            label = "all classes" + (f" (best {values['all classes'][key][best]:.2f} at {thresholds[best]:.2f})"
                                     if key == "f1" else "")
            panel.plot(thresholds, values["all classes"][key], color="black", linewidth=2.5, label=label)
        panel.axvline(operating_score, color="grey", linestyle="--", linewidth=1)
        panel.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="score threshold", title="F1" if key == "f1" else key)
        panel.grid(alpha=0.3)
    axes[0].set_ylabel("value at score >= threshold")
    axes[2].legend(loc="lower left", fontsize=7)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def worst_images(analysis, n=N_PREDICTION_IMAGES):
    """The images with the most errors (false positives + misses), most first; equal counts in image order.
    Images without an error are left out, so fewer than ``n`` may come back.

    :param analysis: :func:`analyse_errors`'s dict
    :param n: how many at most
    :return: list of image indices
    """
    errors = analysis["false_positives"] + analysis["misses"]
    order = np.argsort(-errors, kind="stable")
    return [int(i) for i in order[:n] if errors[i] > 0]


def draw_prediction_image(image, true_boxes, true_labels, det_boxes, det_labels, det_scores, label_map):
    """One image with its ground truth (green, class names) and its detections (red, class and score) drawn by
    the project's box drawer (ssd_support.drawing.draw_detections).

    :param image: a PIL RGB image, the original
    :param true_boxes: (m, 4) objects, fractional x1y1x2y2
    :param true_labels: (m,) their labels
    :param det_boxes: (k, 4) the detections to draw, fractional x1y1x2y2
    :param det_labels: (k,) their labels
    :param det_scores: (k,) their scores
    :param label_map: {class name: label}
    :return: the annotated copy (a PIL image)
    """
    from ssd_support.drawing import draw_detections  # imported here: PIL drawing only when drawing

    names = {label: name for name, label in label_map.items()}
    scale = torch.tensor([image.size[0], image.size[1]] * 2, dtype=torch.float64)

    def as_drawn(boxes, labels, scores):
        """The {"label", "score", "box" in pixels} dicts draw_detections takes."""
        pixels = (boxes.cpu().double().reshape(-1, 4) * scale).tolist()
        return [{"label": names.get(int(label), str(int(label))), "score": score, "box": box}
                for box, label, score in zip(pixels, labels.reshape(-1).tolist(), scores)]

    truth = as_drawn(true_boxes, true_labels, [None] * len(true_labels.reshape(-1)))
    found = as_drawn(det_boxes, det_labels, det_scores.reshape(-1).tolist())
    annotated = draw_detections(image, truth, label_map, colour=GROUND_TRUTH_COLOUR)
    return draw_detections(annotated, found, label_map, colour=DETECTION_COLOUR)


def save_prediction_images(folder, analysis, collected, image_paths, label_map, n=N_PREDICTION_IMAGES):
    """Draw the ``n`` images with the most errors into ``folder`` and list them in ``folder/index.json``.

    Each image shows every object (difficult ones too) and the detections scoring >= the analysis's operating
    score. The files are named "<rank>_<image file stem>.jpg" (rank 01 the worst).

    :param folder: output folder (created)
    :param analysis: :func:`analyse_errors`'s dict
    :param collected: eval.collect_detections' dict (per image "det_boxes", ..., "true_difficulties")
    :param image_paths: the evaluated image files, in the same order
    :param label_map: {class name: label}
    :param n: how many images at most
    :return: the files written, index.json last
    :raises images.UnreadableImageError: naming the file, when an image cannot be read
    """
    from ssd_support.images import load_image

    os.makedirs(folder, exist_ok=True)
    written, index = [], []
    for rank, i in enumerate(worst_images(analysis, n), start=1):
        keep = collected["det_scores"][i].reshape(-1) >= analysis["min_score"]
        drawn = draw_prediction_image(load_image(image_paths[i]), collected["true_boxes"][i],
                                      collected["true_labels"][i], collected["det_boxes"][i][keep],
                                      collected["det_labels"][i][keep], collected["det_scores"][i][keep], label_map)
        name = f"{rank:02d}_{os.path.splitext(os.path.basename(image_paths[i]))[0]}.jpg"
        path = os.path.join(folder, name)
        write_atomically(path, lambda file: drawn.save(file, format="JPEG", quality=90), binary=True)
        written.append(path)
        index.append({"file": name, "image": image_paths[i], "errors": int(analysis["false_positives"][i]
                                                                            + analysis["misses"][i]),
                      "false_positives": int(analysis["false_positives"][i]), "misses": int(analysis["misses"][i])})
    document = {"operating_score": analysis["min_score"], "iou_threshold": MATCH_IOU,
                "ground_truth_colour": GROUND_TRUTH_COLOUR, "detection_colour": DETECTION_COLOUR, "images": index}
    index_path = os.path.join(folder, "index.json")
    write_atomically(index_path, lambda file: json.dump(document, file, indent=2))
    written.append(index_path)
    return written


def save_error_plots(folder, collected, curves, class_scores, label_map, image_paths,
                     operating_score=OPERATING_SCORE):
    """Everything eval.py --plots adds to the precision-recall curves: confusion_matrix.csv / .png, f1_curve.png
    and predictions/ (:func:`save_prediction_images`).

    :param folder: the --plots folder (created)
    :param collected: eval.collect_detections' dict
    :param curves: {class: (precision, recall, n_positives)} (eval.score_detections)
    :param class_scores: {class: descending scores} (eval.sorted_class_scores)
    :param label_map: {class name: label}
    :param image_paths: the evaluated image files, in loader order
    :param operating_score: detections count at score >= this
    :return: (the analysis dict of :func:`analyse_errors`, the files written)
    """
    os.makedirs(folder, exist_ok=True)
    analysis = analyse_errors(collected["det_boxes"], collected["det_labels"], collected["det_scores"],
                              collected["true_boxes"], collected["true_labels"], collected["true_difficulties"],
                              label_map, operating_score)
    csv_path, png_path = os.path.join(folder, "confusion_matrix.csv"), os.path.join(folder, "confusion_matrix.png")
    write_confusion_matrix_csv(csv_path, analysis)
    save_confusion_matrix_png(png_path, analysis)
    f1_path = os.path.join(folder, "f1_curve.png")
    save_f1_curve_png(f1_path, curves, class_scores, operating_score)
    written = [csv_path, png_path, f1_path]
    written += save_prediction_images(os.path.join(folder, "predictions"), analysis, collected, image_paths,
                                      label_map)
    return analysis, written


def plot_file_stem(name, used):
    """A file-name-safe, unique stem for a class name, which may hold any character ("person/rider", "a:b", "..").

    Letters (any script), digits, "-", "_" and "." are kept, anything else becomes "_"; a stem already taken
    (two names made the same) gets "_2", "_3", ... and names that are all dots become "_".

    :param name: the class name
    :param used: the set of stems given so far (updated)
    :return: the stem
    """
    stem = re.sub(r"[^\w.-]", "_", name).strip() or "_"
    stem = "_" if set(stem) == {"."} else stem
    candidate, number = stem, 2
    while candidate.lower() in used:  # lower(): two names differing only in case clash on Windows and macOS
        candidate, number = f"{stem}_{number}", number + 1
    used.add(candidate.lower())
    return candidate


def save_pr_curves(curves, folder):
    """Write one precision-recall plot per class: the raw curve, its envelope and both APs in the title.

    :param curves: {class: (precision, recall, n_positives)} from eval.score_detections
    :param folder: output folder (created if needed); files are named pr_<class>.png, the class name made safe for
        a file name (:func:`plot_file_stem`: "person/rider" gives pr_person_rider.png)
    :return: the list of files written
    """
    import matplotlib  # imported here: plotting is optional and must not choose a backend at import time

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    written, used = [], set()
    for name, (precision, recall, n_positives) in curves.items():
        figure, axes = plt.subplots(figsize=(5, 4))
        axes.plot(recall, precision, color="tab:blue", linewidth=1, label="precision")
        if len(recall):
            # The area AP counts each recall step (r_{i-1}, r_i] at the best precision at recall >= r_i.
            envelope = np.maximum.accumulate(np.asarray(precision)[::-1])[::-1]
            axes.step(np.r_[0.0, recall], np.r_[envelope[0], envelope], where="pre", color="tab:orange",
                      linewidth=1, label="envelope (area AP)")
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
                 title=f"{name} ({n_positives} objects): AP11 {average_precision(precision, recall, True):.3f}, "
                       f"area {average_precision(precision, recall, False):.3f}")
        axes.title.set_fontsize(9)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower left", fontsize=8)
        path = os.path.join(folder, f"pr_{plot_file_stem(name, used)}.png")
        figure.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def write_plots(folder, collected, curves, class_scores, label_map, image_paths, operating_score=None):
    """eval.py --plots: the PR curves, then the confusion matrix, F1 curves and worst images, one line each.

    A generator, so that the PR curves' line is printed before the error plots are made (and fail, if they do).

    :param folder: where the plots go
    :param collected, curves, class_scores, label_map, image_paths: as :func:`save_error_plots` takes them
    :param operating_score: the score of the confusion matrix and the error images (None: OPERATING_SCORE)
    :return: an iterator of the lines to print
    :raises OSError, ValueError: when a plot cannot be written
    """
    written = save_pr_curves(curves, folder)
    yield f"{len(written)} precision-recall plots written to {folder}"
    operating_score = OPERATING_SCORE if operating_score is None else operating_score
    analysis, _ = save_error_plots(folder, collected, curves, class_scores, label_map, image_paths, operating_score)
    n_errors = int(np.count_nonzero(analysis["false_positives"] + analysis["misses"]))
    yield (f"confusion_matrix.png / .csv and f1_curve.png (at score >= {operating_score}) and the "
           f"{min(N_PREDICTION_IMAGES, n_errors)} images with the most errors (predictions/) written to {folder}")
