"""COCO average precision through pycocotools, for eval.py --metric coco|all.

COCO's AP is the interpolated precision averaged over 101 recall points (0, 0.01, ..., 1), then over ten IoU
thresholds, 0.50, 0.55, ..., 0.95 (a match needs IoU >= the threshold); AP50 and AP75 are single thresholds;
APs / APm / APl count only small (area <= 32^2 pixels), medium (32^2 to 96^2) and large (>= 96^2) objects: pycocotools'
ranges are closed at both ends, so an object of exactly 32^2 (or 96^2) pixels counts in both neighbouring sizes.

pycocotools is the reference implementation, so it is called rather than re-written: the functions below only
turn this repository's per-image tensors into the COCO format it reads. The Pascal VOC mAP, the paper's metric, stays in utils.py (``calculate_mAP``).
"""

import contextlib
import copy
import io

import numpy as np
import torch

from utils import VOC_LABELS, make_label_map


# The COCO rules allow at most 100 detections per image. COCOeval's own cap is per image *and class*, so the
# per-image limit is applied here, keeping each image's best-scoring detections.
COCO_MAX_DETECTIONS_PER_IMAGE = 100

# pycocotools' summary order (COCOeval.stats) and the names this repository gives the twelve numbers.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _fractional_to_coco_boxes(boxes, image_size):
    """Fractional x1y1x2y2 boxes of one image to COCO's [x, y, width, height] in that image's pixels.

    :param boxes: a tensor (n, 4), fractional x1y1x2y2
    :param image_size: (width, height) of the original image, in pixels
    :return: a float64 numpy array (n, 4) of [x, y, w, h] pixel boxes
    """
    width, height = image_size
    pixels = boxes.detach().cpu().double().reshape(-1, 4).numpy() * np.array([width, height, width, height])
    return np.concatenate([pixels[:, :2], pixels[:, 2:] - pixels[:, :2]], axis=1)


def build_coco_ground_truth(true_boxes, true_labels, true_difficulties, image_sizes, label_map=None):
    """The ground truth as a COCO-format data set (the dict an instances_*.json file holds), built in memory.

    Image ids are 1..N in the order given and object ids count from 1 (COCOeval takes a matched object id of 0
    for "no match"). Category ids are the labels. Difficult objects become crowd objects (iscrowd 1), which
    COCOeval ignores as VOC ignores difficult ones: finding one is neither right nor wrong, missing one is no
    miss. The area of an object is its box area; COCO's official files take it from the segmentation mask,
    so APs / APm / APl (which bin objects by area) can differ slightly from the official evaluation, while
    AP, AP50 and AP75 do not depend on the area at all.

    :param true_boxes: list of N tensors (m_i, 4), fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), labels 1..n_classes-1
    :param true_difficulties: list of N tensors (m_i,), 1/True for difficult (crowd) objects
    :param image_sizes: list of N (width, height) pairs, each image's own size in pixels
    :param label_map: {class name: label} with "background": 0; the 20 VOC classes when None
    :return: {"info": {...}, "images": [{"id", "width", "height"}], "annotations": [{"id", "image_id", "category_id",
        "bbox" [x, y, w, h] pixels, "area", "iscrowd"}], "categories": [{"id", "name"}]}
    """
    if label_map is None:
        label_map = make_label_map(VOC_LABELS)
    if not len(true_boxes) == len(true_labels) == len(true_difficulties) == len(image_sizes):
        raise ValueError(f"true_boxes, true_labels, true_difficulties and image_sizes must have one entry per "
                         f"image; got {len(true_boxes)}, {len(true_labels)}, {len(true_difficulties)} and "
                         f"{len(image_sizes)}")
    images, annotations = [], []
    for index, (boxes, labels, difficulties, size) in enumerate(zip(true_boxes, true_labels, true_difficulties,
                                                                    image_sizes)):
        images.append({"id": index + 1, "width": int(size[0]), "height": int(size[1])})
        for box, label, difficult in zip(_fractional_to_coco_boxes(boxes, size).tolist(),
                                         labels.reshape(-1).tolist(), difficulties.reshape(-1).tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": int(label),
                                "bbox": box, "area": box[2] * box[3], "iscrowd": int(bool(difficult))})
    categories = [{"id": label, "name": name} for name, label in sorted(label_map.items(), key=lambda item: item[1])
                  if label != 0]
    # "info": pycocotools 2.0.9 and 2.0.10 copy it in loadRes (KeyError: 'info' after the whole evaluation without
    # it); 2.0.8 and 2.0.11 take its absence. An instances file has one, so the in-memory set gets one too.
    info = {"description": "ground truth built by coco_eval.build_coco_ground_truth from a data folder's lists"}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def build_coco_detections(det_boxes, det_labels, det_scores, image_sizes,
                          max_per_image=COCO_MAX_DETECTIONS_PER_IMAGE):
    """Detections in the COCO results format (what a detections json file holds), image ids 1..N.

    :param det_boxes: list of N tensors (n_i, 4), fractional x1y1x2y2
    :param det_labels: list of N tensors (n_i,), their labels
    :param det_scores: list of N tensors (n_i,), their scores
    :param image_sizes: list of N (width, height) pairs, each image's own size in pixels
    :param max_per_image: keep only each image's best-scoring detections, this many (None: all)
    :return: list of {"image_id", "category_id", "bbox" [x, y, w, h] pixels, "score"}
    """
    if not len(det_boxes) == len(det_labels) == len(det_scores) == len(image_sizes):
        raise ValueError(f"det_boxes, det_labels, det_scores and image_sizes must have one entry per image; got "
                         f"{len(det_boxes)}, {len(det_labels)}, {len(det_scores)} and {len(image_sizes)}")
    results = []
    for index, (boxes, labels, scores, size) in enumerate(zip(det_boxes, det_labels, det_scores, image_sizes)):
        scores = scores.detach().cpu().double().reshape(-1)
        # A stable sort keeps equal scores in their input order, as everywhere in this section.
        order = torch.sort(scores, descending=True, stable=True).indices[:max_per_image]
        coco_boxes = _fractional_to_coco_boxes(boxes, size)[order.numpy()]
        for box, label, score in zip(coco_boxes.tolist(), labels.reshape(-1)[order].tolist(), scores[order].tolist()):
            results.append({"image_id": index + 1, "category_id": int(label), "bbox": box, "score": score})
    return results


def coco_evaluate(coco_ground_truth, coco_detections, label_map=None):
    """Run pycocotools' COCOeval (bounding boxes) on a ground-truth data set and detections, both in memory.

    :param coco_ground_truth: the dict :func:`build_coco_ground_truth` returns (an instances json's content)
    :param coco_detections: a list of {"image_id", "category_id", "bbox", "score"} (a results json's content)
    :param label_map: {class name: label}, to name the per-class results (default: the category names)
    :return: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl": float
        (NaN where COCOeval has nothing to average, e.g. no small object), "per_class": {class name: {"AP",
        "AP50", "AP75"}} for the classes that have a non-crowd object}
    :raises ImportError: with the install command, when pycocotools is missing
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("COCO AP needs pycocotools: pip install pycocotools") from None

    names = {category["id"]: category["name"] for category in coco_ground_truth["categories"]}
    if label_map is not None:
        names.update({label: name for name, label in label_map.items()})
    # pycocotools prints progress and its summary table; the caller decides what to print.
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = copy.deepcopy(coco_ground_truth)  # pycocotools adds keys to what it is given
        ground_truth.createIndex()
        known_images = set(ground_truth.getImgIds())
        detections = [dict(d) for d in coco_detections if d["image_id"] in known_images]
        if detections:
            results = ground_truth.loadRes(detections)
        else:  # loadRes cannot take an empty list; an empty results set scores AP 0 for every class
            results = COCO()
            results.dataset = {"images": list(ground_truth.dataset["images"]), "annotations": [],
                               "categories": list(ground_truth.dataset["categories"])}
            results.createIndex()
        evaluator = COCOeval(ground_truth, results, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    # COCOeval writes -1 where there is nothing to average; NaN says "undefined" without looking like a score.
    summary = {name: (float(value) if value >= 0 else float("nan"))
               for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    # precision: (IoU thresholds 10, recall points 101, classes K, area ranges 4, max detections 3); area "all"
    # is index 0 and 100 detections the last; -1 marks a class without objects.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    iou_thresholds = evaluator.params.iouThrs
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        curves = precision[:, :, k]
        if (curves > -1).any():
            at_50 = curves[np.isclose(iou_thresholds, 0.5)][0]
            at_75 = curves[np.isclose(iou_thresholds, 0.75)][0]
            per_class[names[category_id]] = {"AP": float(curves[curves > -1].mean()),
                                              "AP50": float(at_50[at_50 > -1].mean()),
                                              "AP75": float(at_75[at_75 > -1].mean())}
    summary["per_class"] = per_class
    return summary


def coco_average_precision(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties,
                           image_sizes, label_map=None, max_per_image=COCO_MAX_DETECTIONS_PER_IMAGE):
    """The COCO metrics (AP at IoU 0.50:0.95, AP50, AP75, by object size, average recall) through pycocotools.

    Same inputs as :func:`calculate_mAP` plus each image's size: the fractional boxes are scaled back to the
    pixels of their own image, because COCO's size ranges (small <= 32x32 pixels <= medium <= 96x96 <= large,
    closed at both ends as pycocotools has them: an area of exactly 32x32 is small and medium) are in
    original-image pixels. Difficult objects are COCO crowd objects (see :func:`build_coco_ground_truth`).

    :param det_boxes: list of N tensors (n_i, 4), detected boxes, fractional x1y1x2y2, one tensor per image
    :param det_labels: list of N tensors (n_i,), their labels
    :param det_scores: list of N tensors (n_i,), their scores
    :param true_boxes: list of N tensors (m_i, 4), ground-truth boxes, fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), their labels
    :param true_difficulties: list of N tensors (m_i,), 1/True for difficult (crowd) objects
    :param image_sizes: list of N (width, height) pairs in pixels
    :param label_map: {class name: label} with "background": 0; the 20 VOC classes when None
    :param max_per_image: at most this many detections per image, the best-scoring (COCO's rule: 100)
    :return: the dict :func:`coco_evaluate` returns ("AP", "AP50", "AP75", "APs", ..., "per_class")
    :raises ImportError: when pycocotools is not installed
    """
    ground_truth = build_coco_ground_truth(true_boxes, true_labels, true_difficulties, image_sizes, label_map)
    detections = build_coco_detections(det_boxes, det_labels, det_scores, image_sizes, max_per_image)
    return coco_evaluate(ground_truth, detections, label_map)


def format_coco_table(coco_results, label_map):
    """The COCO results eval.py prints: the summary numbers, then AP, AP50 and AP75 of every class.

    :param coco_results: the "coco" dict of eval.evaluate's results
    :param label_map: {class name: label}; every class but the background gets a row ("n/a" without objects)
    :return: the table, a str
    """
    def number(value):
        """A metric to 4 decimals; n/a where COCOeval had nothing to average (e.g. no small object)."""
        return "   n/a" if value != value else f"{value:6.4f}"  # NaN is the only value not equal to itself

    lines = ["COCO  AP (IoU .50:.95)  AP50    AP75    APs     APm     APl     AR100",
             f"      {number(coco_results['AP']):>18}  " + "  ".join(
                 number(coco_results[key]) for key in ("AP50", "AP75", "APs", "APm", "APl", "AR100"))]
    names = [name for name, label in sorted(label_map.items(), key=lambda item: item[1]) if label != 0]
    width = max([len(name) for name in names] + [len("class")])
    lines += ["", f"{'class':<{width}}  {'AP':>6}  {'AP50':>6}  {'AP75':>6}", "-" * (width + 26)]
    for name in names:
        if name in coco_results["per_class"]:
            aps = coco_results["per_class"][name]
            lines.append(f"{name:<{width}}  " + "  ".join(number(aps[key]) for key in ("AP", "AP50", "AP75")))
        else:
            lines.append(f"{name:<{width}}  {'n/a':>6}  {'n/a':>6}  {'n/a':>6}   (no non-crowd test object)")
    return "\n".join(lines)
