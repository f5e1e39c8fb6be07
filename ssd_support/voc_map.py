"""The Pascal VOC mAP, vectorised: what eval.py and train.py's evaluation run.

What it is: ``utils.calculate_mAP``, the VOC devkit's per-detection loop that the lesson reads, computed for all
detections at once (the matching with searchsorted / reduceat, "the first detection of an object wins" with
np.unique): the same rules, the same per-class precision/recall curves, the same APs (tests/test_voc_map.py holds
them equal to 1e-12 on randomized problems with difficult objects, ties and empty classes). The APs come from the
curves through ``utils.average_precision``, the one copy of the 11-point and area rules.

Why it exists: speed. On a VOC07-test-sized problem (742,483 detections) it is about 8 times faster than the loop
(bench/bench_map.py prints the ratio), and eval.py needs the curves themselves for its plots.
"""

import numpy as np
import torch

from utils import VOC_IOU_THRESHOLD, VOC_LABELS, average_precision, check_detection_lists, make_label_map

# numpy rather than torch here: the VOC devkit this module follows is numpy code, and the matching is
# sorting / segment bookkeeping that numpy expresses directly (lexsort, unique, reduceat).


def _concat_per_image(per_image, n_columns, dtype):
    """Concatenate a list of per-image tensors into one numpy array, remembering which image each row is from.

    :param per_image: list of N tensors, one per image, of size (n_i, n_columns) or (n_i,) (any device)
    :param n_columns: 4 for boxes, None for a per-object value (label, score, difficulty)
    :param dtype: numpy dtype of the result (the shapes are checked first, by ``utils.check_detection_lists``)
    :return: (values (sum n_i, n_columns) or (sum n_i,), image index of each row (sum n_i,) int64)
    """
    shape = (-1, n_columns) if n_columns else (-1,)
    parts = []
    for tensor in per_image:
        # .cpu() on each: the images may sit on different devices, and a CUDA tensor cannot become numpy.
        parts.append(tensor.detach().reshape(shape).cpu())
    counts = np.array([part.shape[0] for part in parts], dtype=np.int64)
    if parts:
        values = torch.cat(parts).numpy().astype(dtype, copy=False)  # one cat: far cheaper than N conversions
    else:
        values = np.zeros((0, n_columns) if n_columns else (0,), dtype=dtype)
    return values, np.repeat(np.arange(len(parts), dtype=np.int64), counts)


def _pairwise_iou(boxes_a, boxes_b):
    """IoU of boxes_a[k] with boxes_b[k] for every k (element-wise, not all pairs).

    Continuous IoU on fractional coordinates: the devkit's "+1" on widths and heights is for integer
    pixel boxes and would be wrong here. A zero-area union gives IoU 0.

    :param boxes_a: boxes x1y1x2y2, a float array of size (k, 4)
    :param boxes_b: boxes x1y1x2y2, a float array of size (k, 4)
    :return: IoU of each pair, a float array of size (k,)
    """
    inter_w = np.clip(np.minimum(boxes_a[:, 2], boxes_b[:, 2]) - np.maximum(boxes_a[:, 0], boxes_b[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(boxes_a[:, 3], boxes_b[:, 3]) - np.maximum(boxes_a[:, 1], boxes_b[:, 1]), 0, None)
    intersection = inter_w * inter_h
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a + area_b - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _best_overlaps(det_keys, det_boxes, gt_keys, gt_boxes):
    """For every detection, the object of the same image and class it overlaps most (the devkit's ovmax/jmax).

    Equal to the devkit's loop over detections::

        for d in range(n_det):
            same = np.flatnonzero(gt_keys == det_keys[d])  # objects of the detection's image and class
            if len(same):
                iou = _pairwise_iou(det_boxes[[d] * len(same)], gt_boxes[same])
                best_iou[d], best_gt[d] = iou.max(), same[iou.argmax()]

    Instead of the devkit's loop over detections, every (detection, object) pair that shares an image and a
    class is listed at once: objects are sorted by key = class * n_images + image, so the objects a detection
    can match form one contiguous run [start, end) of that order, found with searchsorted.

    :param det_keys: class * n_images + image of each detection, int array (n_det,)
    :param det_boxes: detection boxes, float array (n_det, 4)
    :param gt_keys: class * n_images + image of each object, int array (n_gt,), SORTED (stably)
    :param gt_boxes: object boxes in the same order, float array (n_gt, 4)
    :return: (best IoU (n_det,) float, -inf where the image has no object of that class;
              index into the gt arrays of that object (n_det,) int, -1 where there is none)
    """
    n_det = len(det_keys)
    starts = np.searchsorted(gt_keys, det_keys, side="left")
    counts = np.searchsorted(gt_keys, det_keys, side="right") - starts
    first_pair = np.cumsum(counts) - counts  # where each detection's run of pairs begins
    pair_det = np.repeat(np.arange(n_det), counts)
    pair_gt = np.arange(counts.sum()) + np.repeat(starts - first_pair, counts)
    pair_iou = _pairwise_iou(det_boxes[pair_det], gt_boxes[pair_gt])

    best_iou = np.full(n_det, -np.inf)
    best_gt = np.full(n_det, -1, dtype=np.int64)
    has_candidates = counts > 0
    if has_candidates.any():
        # The runs of the detections that have candidates tile pair_iou exactly, so reduceat gives their maxima.
        best_iou[has_candidates] = np.maximum.reduceat(pair_iou, first_pair[has_candidates])
        # Like np.argmax in the devkit, a tie between objects goes to the first one in annotation order.
        at_max = np.flatnonzero(pair_iou == best_iou[pair_det])
        first_at_max = at_max[np.r_[True, pair_det[at_max][1:] != pair_det[at_max][:-1]]]
        best_gt[pair_det[first_at_max]] = pair_gt[first_at_max]
    return best_iou, best_gt


def precision_recall_curves(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties,
                            label_map=None, iou_threshold=VOC_IOU_THRESHOLD):
    """Precision and recall after each detection, per class, following the Pascal VOC devkit (voc_eval.py).

    Equal to the devkit's loop, for each class (``taken`` marks objects already detected)::

        for d in detections_of_class_by_decreasing_score:
            iou, j = best overlapping object of the class in d's image  (_best_overlaps)
            if iou > 0.5 and difficult[j]: continue              # ignored
            elif iou > 0.5 and not taken[j]: tp[d], taken[j] = 1, True
            else: fp[d] = 1
        recall = cumsum(tp) / n_non_difficult;  precision = cumsum(tp) / (cumsum(tp) + cumsum(fp))

    For each class, detections are taken in descending score order; ties keep the order of the input (earlier
    image first, then the order within the image), i.e. a stable sort. Each detection is compared with the
    objects of that class in its own image and takes the one with the highest IoU (difficult ones included);
    then, exactly as the devkit does:

    - IoU <= 0.5 (or no object): false positive;
    - IoU > 0.5 with a difficult object: ignored, neither true nor false positive (counts stay as they were);
    - IoU > 0.5 with an object no earlier detection took: true positive, and the object is taken;
    - IoU > 0.5 with an object already taken: false positive (a duplicate).

    Recall counts non-difficult objects only. IoU is the continuous IoU of fractional boxes (the devkit's
    "+1" pixel convention is for integer pixel boxes). The devkit loops over detections; here the matching is
    vectorized over all classes at once (see :func:`_best_overlaps`): only "the first detection of an object
    wins" remains, and that is "the first occurrence of each object index" in score order (np.unique).

    :param det_boxes: list of N tensors (n_i, 4), detected boxes, fractional x1y1x2y2, one tensor per image
    :param det_labels: list of N tensors (n_i,), their labels (1..n_classes-1; others are ignored)
    :param det_scores: list of N tensors (n_i,), their scores
    :param true_boxes: list of N tensors (m_i, 4), ground-truth boxes, fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), their labels
    :param true_difficulties: list of N tensors (m_i,), 1/True for objects marked difficult
    :param label_map: {class name: label} with "background": 0; the 20 VOC classes when None
    :param iou_threshold: a match needs an IoU strictly greater than this (0.5 in VOC)
    :return: dict {class name: (precision (n_c,) float64 array, recall (n_c,) float64 array, n_positives)}
             in label order, n_c being the number of detections of the class. Classes without any
             non-difficult object are left out: their recall, hence their AP, is undefined.
    """
    if label_map is None:
        label_map = make_label_map(VOC_LABELS)
    check_detection_lists(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties)
    n_images = len(true_boxes)

    det_box, det_image = _concat_per_image(det_boxes, 4, np.float64)
    det_label, _ = _concat_per_image(det_labels, None, np.int64)
    det_score, _ = _concat_per_image(det_scores, None, np.float64)
    gt_box, gt_image = _concat_per_image(true_boxes, 4, np.float64)
    gt_label, _ = _concat_per_image(true_labels, None, np.int64)
    gt_difficult, _ = _concat_per_image(true_difficulties, None, bool)

    classes = sorted((label, name) for name, label in label_map.items() if label != 0)
    max_label = max((label for label, _ in classes), default=0)

    # Objects sorted by (class, image), stably so that annotation order survives (the devkit's argmax order).
    gt_key = gt_label * n_images + gt_image
    gt_order = np.argsort(gt_key, kind="stable")
    gt_key, gt_box, gt_difficult = gt_key[gt_order], gt_box[gt_order], gt_difficult[gt_order]
    n_positives = np.bincount(gt_label[~gt_difficult[np.argsort(gt_order)]], minlength=max_label + 1)

    # Detections sorted by class, then by descending score; lexsort is stable, which fixes how ties go.
    keep = (det_label > 0) & (det_label <= max_label)
    det_label, det_image, det_box, det_score = det_label[keep], det_image[keep], det_box[keep], det_score[keep]
    det_order = np.lexsort((-det_score, det_label))
    det_label, det_image, det_box = det_label[det_order], det_image[det_order], det_box[det_order]

    best_iou, best_gt = _best_overlaps(det_label * n_images + det_image, det_box, gt_key, gt_box)
    matched = best_iou > iou_threshold
    # best_gt is -1 where matched is False, and a split may have no object at all: look up matched ones only.
    ignored = np.zeros_like(matched)
    ignored[matched] = gt_difficult[best_gt[matched]]
    candidates = np.flatnonzero(matched & ~ignored)
    # Objects are unique across classes (one index each), so "first in this class" = "first overall".
    _, first = np.unique(best_gt[candidates], return_index=True)
    true_positive = np.zeros(len(det_label), dtype=bool)
    true_positive[candidates[first]] = True
    false_positive = ~true_positive & ~ignored

    class_starts = np.searchsorted(det_label, np.arange(max_label + 2), side="left")
    curves = {}
    for label, name in classes:
        if n_positives[label] == 0:
            continue
        segment = slice(class_starts[label], class_starts[label + 1])
        tp = np.cumsum(true_positive[segment], dtype=np.float64)
        fp = np.cumsum(false_positive[segment], dtype=np.float64)
        recall = tp / n_positives[label]
        # As in the devkit: an ignored detection before any TP/FP gives 0 / eps = precision 0.
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        curves[name] = (precision, recall, int(n_positives[label]))
    return curves


def average_precisions_from_curves(curves, use_07_metric=True):
    """The per-class APs and their mean, from the output of :func:`precision_recall_curves`.

    :param curves: {class name: (precision, recall, n_positives)}
    :param use_07_metric: True for 11-point AP (VOC2007), False for area AP (VOC2010+)
    :return: ({class name: AP}, mean AP over those classes; NaN when there is no class at all)
    """
    aps = {name: average_precision(precision, recall, use_07_metric)
           for name, (precision, recall, _) in curves.items()}
    mean_ap = float(np.mean(list(aps.values()))) if aps else float("nan")
    return aps, mean_ap


def calculate_mAP(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties,
                  use_07_metric=True, label_map=None):
    """``utils.calculate_mAP``, vectorised: the same arguments, the same APs (to rounding, 1e-12).

    See :func:`precision_recall_curves` for the matching rules (score order with ties broken by input order,
    IoU > 0.5, difficult objects ignored, duplicates are false positives, continuous IoU on fractional boxes)
    and :func:`average_precision` for the two metrics.

    :param det_boxes: list of N tensors (n_i, 4), detected boxes, fractional x1y1x2y2, one tensor per image
    :param det_labels: list of N tensors (n_i,), their labels
    :param det_scores: list of N tensors (n_i,), their scores
    :param true_boxes: list of N tensors (m_i, 4), ground-truth boxes, fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), their labels
    :param true_difficulties: list of N tensors (m_i,), 1/True for difficult objects
    :param use_07_metric: True (default) for the VOC2007 11-point AP the paper reports, False for area AP
    :param label_map: {class name: label} with "background": 0; the 20 VOC classes when None
    :return: ({class name: AP} in label order, mean AP). A class with no non-difficult object has no AP: it
        is absent from the dict and left out of the mean. A class with objects but no detection has AP 0.
    """
    curves = precision_recall_curves(det_boxes, det_labels, det_scores, true_boxes, true_labels,
                                     true_difficulties, label_map=label_map)
    return average_precisions_from_curves(curves, use_07_metric)
