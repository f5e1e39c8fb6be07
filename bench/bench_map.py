"""Benchmark utils.calculate_mAP against a plain reimplementation of the VOC devkit's per-detection loop.

The problem is synthetic but VOC07-test sized: 4,952 images, ~2.4 objects per image (~10% difficult),
~150 detections per image (what min_score 0.01 / top_k 200 gives), 20 classes, seeded. Detections are a mix of
jittered copies of the objects (some with the wrong class, some duplicates) and random boxes; scores are rounded
to 3 decimals so that many tie, which exercises the tie-breaking rule as well.

    python bench/bench_map.py                 # full size
    python bench/bench_map.py --images 500    # quicker

It prints both times, their ratio, and the largest AP difference for both metrics (exit status 1 if the APs
differ by more than 1e-6). tests/test_eval_map.py imports :func:`reference_voc_eval` from here.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import VOC_LABELS, calculate_mAP, make_label_map  # noqa: E402


def reference_voc_ap(recall, precision, use_07_metric):
    """voc_ap() of py-faster-rcnn's voc_eval.py, with the 11 thresholds built exactly.

    (The devkit's np.arange(0., 1.1, 0.1) gives 0.30000000000000004; we use i / 10 in both implementations.)

    :param recall: recall after each detection, float array (n,)
    :param precision: precision after each detection, float array (n,)
    :param use_07_metric: 11-point AP when True, area under the precision envelope when False
    :return: the AP, a float
    """
    if use_07_metric:
        ap = 0.0
        for t in [i / 10 for i in range(11)]:
            if np.sum(recall >= t) == 0:
                p = 0
            else:
                p = np.max(precision[recall >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def reference_voc_eval(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties, label_map):
    """The devkit's algorithm written as py-faster-rcnn's voc_eval() writes it: one Python loop per detection.

    Three documented departures from that file, the same ones utils.calculate_mAP makes: continuous IoU (no "+1",
    our boxes are fractional), a stable sort by descending score (np.argsort's default quicksort leaves ties in
    an unspecified order), and exact 11-point thresholds.

    :param det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties: lists of per-image
        tensors, as calculate_mAP takes them
    :param label_map: {class name: label}, background 0
    :return: ({class: 11-point AP}, {class: area AP}), classes without non-difficult objects left out
    """
    n_images = len(true_boxes)
    det_boxes = [b.cpu().double().numpy().reshape(-1, 4) for b in det_boxes]
    det_labels = [lab.cpu().numpy() for lab in det_labels]
    det_scores = [s.cpu().double().numpy() for s in det_scores]
    true_boxes = [b.cpu().double().numpy().reshape(-1, 4) for b in true_boxes]
    true_labels = [lab.cpu().numpy() for lab in true_labels]
    true_difficulties = [d.cpu().numpy().astype(bool) for d in true_difficulties]

    aps_07, aps_area = {}, {}
    for name, c in sorted(label_map.items(), key=lambda item: item[1]):
        if c == 0:
            continue
        class_recs = {}
        npos = 0
        for i in range(n_images):
            mask = true_labels[i] == c
            difficult = true_difficulties[i][mask]
            class_recs[i] = {"bbox": true_boxes[i][mask], "difficult": difficult, "det": [False] * int(mask.sum())}
            npos += int((~difficult).sum())
        if npos == 0:
            continue

        image_ids, confidence, boxes = [], [], []
        for i in range(n_images):
            mask = det_labels[i] == c
            image_ids.extend([i] * int(mask.sum()))
            confidence.append(det_scores[i][mask])
            boxes.append(det_boxes[i][mask])
        image_ids = np.array(image_ids, dtype=np.int64)
        confidence = np.concatenate(confidence)
        BB = np.concatenate(boxes)

        sorted_ind = np.argsort(-confidence, kind="stable")
        BB = BB[sorted_ind, :]
        image_ids = image_ids[sorted_ind]

        nd = len(image_ids)
        tp = np.zeros(nd)
        fp = np.zeros(nd)
        for d in range(nd):
            R = class_recs[image_ids[d]]
            bb = BB[d, :]
            ovmax = -np.inf
            BBGT = R["bbox"]
            if BBGT.size > 0:
                ixmin = np.maximum(BBGT[:, 0], bb[0])
                iymin = np.maximum(BBGT[:, 1], bb[1])
                ixmax = np.minimum(BBGT[:, 2], bb[2])
                iymax = np.minimum(BBGT[:, 3], bb[3])
                iw = np.maximum(ixmax - ixmin, 0.0)
                ih = np.maximum(iymax - iymin, 0.0)
                inters = iw * ih
                uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (BBGT[:, 2] - BBGT[:, 0]) * (BBGT[:, 3] - BBGT[:, 1]) - inters
                overlaps = inters / uni
                ovmax = np.max(overlaps)
                jmax = np.argmax(overlaps)
            if ovmax > 0.5:
                if not R["difficult"][jmax]:
                    if not R["det"][jmax]:
                        tp[d] = 1.0
                        R["det"][jmax] = True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0

        fp = np.cumsum(fp)
        tp = np.cumsum(tp)
        rec = tp / float(npos)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps_07[name] = reference_voc_ap(rec, prec, True)
        aps_area[name] = reference_voc_ap(rec, prec, False)
    return aps_07, aps_area


def _random_boxes(rng, n, min_size=0.05, max_size=0.6):
    """n random fractional boxes x1y1x2y2 inside [0, 1], float array (n, 4)."""
    size = rng.uniform(min_size, max_size, (n, 2))
    top_left = rng.uniform(0, 1, (n, 2)) * (1 - size)
    return np.concatenate([top_left, top_left + size], axis=1)


def make_synthetic_problem(n_images=4952, objects_per_image=2.4, dets_per_image=150, n_classes=20,
                           difficult_rate=0.1, seed=0):
    """A seeded, VOC07-test-sized detection problem for calculate_mAP.

    :param n_images: number of images
    :param objects_per_image: mean number of objects per image (each image has at least one)
    :param dets_per_image: mean number of detections per image
    :param n_classes: number of object classes (labels 1..n_classes)
    :param difficult_rate: probability that an object is marked difficult
    :param seed: random seed
    :return: the six per-image lists calculate_mAP takes (torch tensors: float32 boxes and scores, int64 labels,
        uint8 difficulties)
    """
    rng = np.random.default_rng(seed)
    det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties = [], [], [], [], [], []
    for _ in range(n_images):
        n_objects = 1 + rng.poisson(objects_per_image - 1)
        gt_boxes = _random_boxes(rng, n_objects)
        gt_labels = rng.integers(1, n_classes + 1, n_objects)
        true_boxes.append(torch.from_numpy(gt_boxes).float())
        true_labels.append(torch.from_numpy(gt_labels).long())
        true_difficulties.append(torch.from_numpy(rng.random(n_objects) < difficult_rate).to(torch.uint8))

        # Near-object detections: ~4 per object (so duplicates happen), jittered, 80% with the right class.
        n_near = rng.poisson(4, n_objects)
        source = np.repeat(np.arange(n_objects), n_near)
        jitter = rng.normal(0, 0.04, (len(source), 4))
        near_boxes = np.clip(gt_boxes[source] + jitter, 0, 1)
        near_boxes[:, 2:] = np.maximum(near_boxes[:, 2:], near_boxes[:, :2] + 1e-3)
        near_labels = np.where(rng.random(len(source)) < 0.8, gt_labels[source],
                               rng.integers(1, n_classes + 1, len(source)))
        near_scores = rng.uniform(0.05, 1.0, len(source))
        # Background detections: random boxes, random classes, low scores.
        n_far = max(rng.poisson(dets_per_image) - len(source), 0)
        far_boxes = _random_boxes(rng, n_far, 0.02, 0.9)
        far_labels = rng.integers(1, n_classes + 1, n_far)
        far_scores = rng.uniform(0.01, 0.4, n_far)

        det_boxes.append(torch.from_numpy(np.concatenate([near_boxes, far_boxes])).float())
        det_labels.append(torch.from_numpy(np.concatenate([near_labels, far_labels])).long())
        # Rounded to 3 decimals so that ties are common (and the tie rule matters).
        det_scores.append(torch.from_numpy(np.round(np.concatenate([near_scores, far_scores]), 3)).float())
    return det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties


def main(argv=None):
    """Time calculate_mAP (both metrics) and the reference loop on the same problem; compare their APs.

    :param argv: command-line arguments (None: sys.argv)
    :return: exit status, 0 when the APs agree to 1e-6
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4952, help="number of images (VOC07 test: 4952)")
    parser.add_argument("--dets-per-image", type=int, default=150, help="mean detections per image")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of calculate_mAP (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    label_map = make_label_map(VOC_LABELS)
    problem = make_synthetic_problem(args.images, dets_per_image=args.dets_per_image, seed=args.seed)
    n_dets = sum(len(s) for s in problem[2])
    n_objects = sum(len(lab) for lab in problem[4])
    print(f"problem: {args.images} images, {n_objects} objects, {n_dets} detections, 20 classes (seed {args.seed})")

    times_07, times_area = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours_07, map_07 = calculate_mAP(*problem, use_07_metric=True, label_map=label_map)
        times_07.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours_area, map_area = calculate_mAP(*problem, use_07_metric=False, label_map=label_map)
        times_area.append(time.perf_counter() - start)

    start = time.perf_counter()
    ref_07, ref_area = reference_voc_eval(*problem, label_map)
    ref_time = time.perf_counter() - start

    assert ours_07.keys() == ref_07.keys() and ours_area.keys() == ref_area.keys(), "different classes evaluated"
    diff_07 = max(abs(ours_07[k] - ref_07[k]) for k in ref_07)
    diff_area = max(abs(ours_area[k] - ref_area[k]) for k in ref_area)
    ours = min(times_07) + min(times_area)
    print(f"calculate_mAP 11-point (best of {args.repeats}): {min(times_07):.3f} s  (mAP {map_07:.4f})")
    print(f"calculate_mAP area     (best of {args.repeats}): {min(times_area):.3f} s  (mAP {map_area:.4f})")
    print(f"reference devkit loop, both metrics in one pass: {ref_time:.3f} s")
    print(f"speed-up (reference vs our two calls): {ref_time / ours:.1f}x")
    print(f"largest AP difference: 11-point {diff_07:.2e}, area {diff_area:.2e}")
    if max(diff_07, diff_area) > 1e-6:
        print("FAIL: APs differ from the reference")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
