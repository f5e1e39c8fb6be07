"""Benchmark the vectorised VOC mAP (ssd_support.voc_map, what eval.py runs) against utils.calculate_mAP, the
devkit's per-detection loop the lesson reads.

The problem is synthetic but VOC07-test sized: 4,952 images, ~2.4 objects per image (~10% difficult),
~150 detections per image (what min_score 0.01 / top_k 200 gives), 20 classes, seeded. Detections are a mix of
jittered copies of the objects (some with the wrong class, some duplicates) and random boxes; scores are rounded
to 3 decimals so that many tie, which exercises the tie-breaking rule as well.

    python bench/bench_map.py                 # full size
    python bench/bench_map.py --images 500    # quicker

It prints both times for both metrics, their ratios (measured in this one run), and the largest AP difference
(exit status 1 if the APs differ by more than 1e-12; tests/test_voc_map.py checks the same on small problems).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssd_support import voc_map  # noqa: E402
from utils import VOC_LABELS, calculate_mAP, make_label_map  # noqa: E402


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
    """Time voc_map.calculate_mAP and utils.calculate_mAP (both metrics) on the same problem; compare their APs.

    :param argv: command-line arguments (None: sys.argv)
    :return: exit status, 0 when the APs agree to 1e-12
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4952, help="number of images (VOC07 test: 4952)")
    parser.add_argument("--dets-per-image", type=int, default=150, help="mean detections per image")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the vectorised one (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    label_map = make_label_map(VOC_LABELS)
    problem = make_synthetic_problem(args.images, dets_per_image=args.dets_per_image, seed=args.seed)
    n_dets = sum(len(s) for s in problem[2])
    n_objects = sum(len(lab) for lab in problem[4])
    print(f"problem: {args.images} images, {n_objects} objects, {n_dets} detections, 20 classes (seed {args.seed})")

    largest_difference = 0.0
    for use_07, metric in ((True, "11-point"), (False, "area")):
        fast_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fast, fast_mean = voc_map.calculate_mAP(*problem, use_07_metric=use_07, label_map=label_map)
            fast_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference, reference_mean = calculate_mAP(*problem, use_07_metric=use_07, label_map=label_map)
        reference_time = time.perf_counter() - start
        assert fast.keys() == reference.keys(), "different classes evaluated"
        difference = max([abs(fast[k] - reference[k]) for k in reference] + [abs(fast_mean - reference_mean)])
        largest_difference = max(largest_difference, difference)
        print(f"{metric:>8s}: voc_map {min(fast_times):.3f} s (best of {args.repeats}), utils.calculate_mAP "
              f"{reference_time:.3f} s: {reference_time / min(fast_times):.1f}x; mAP {fast_mean:.4f}, "
              f"largest AP difference {difference:.1e}")
    if largest_difference > 1e-12:
        print("FAIL: the APs differ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
