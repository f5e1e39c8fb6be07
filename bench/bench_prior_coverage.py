"""Benchmark the prior coverage of ssd_support/data_statistics.py: the best IoU of every object with the priors.

``best_prior_overlaps`` (what create_data_lists.py runs: one candidate prior per feature map and shape, the one
whose centre is nearest) against ``best_prior_overlaps_all_pairs`` (torchvision.ops.box_iou with every prior, in
chunks: the definition), on 40,000 seeded random boxes (VOC07+12 has about 40,000 objects), for SSD300's 8732 and
SSD512's 24,564 priors.

    python bench/bench_prior_coverage.py
    python bench/bench_prior_coverage.py --objects 10000

It prints both times, their ratio (measured in this one run) and the largest difference of the best IoUs (exit
status 1 above 1e-6; tests/test_data_statistics.py checks the same on smaller problems).
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import model  # noqa: E402
from ssd_support.data_statistics import best_prior_overlaps, best_prior_overlaps_all_pairs  # noqa: E402


def random_boxes(n, seed=0):
    """``n`` boxes, fractional (x1, y1, x2, y2): sides log-uniform in [0.01, 1], centres uniform, clipped to the
    image, as objects of a photo data set spread over sizes. (n, 4) float32."""
    generator = torch.Generator().manual_seed(seed)
    sides = torch.exp(torch.empty(n, 2).uniform_(torch.log(torch.tensor(0.01)).item(), 0.0, generator=generator))
    centres = torch.rand(n, 2, generator=generator)
    return torch.cat([centres - sides / 2, centres + sides / 2], dim=1).clamp(0.0, 1.0)


def main():
    """Time both functions for SSD300 and SSD512 and print the ratio; exit status 1 if they disagree."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=40000, help="random boxes (default 40000)")
    args = parser.parse_args()
    boxes = random_boxes(args.objects)
    print(f"{args.objects} boxes, {torch.get_num_threads()} thread(s)")
    worst = 0.0
    for image_size in (300, 512):
        config = model.ssd_config("vgg16", image_size)
        priors = model.create_prior_boxes(config)
        for function in (best_prior_overlaps, best_prior_overlaps_all_pairs):  # warm-up: first-call set-up costs
            function(boxes[:100], priors, *([config] if function is best_prior_overlaps else []))
        start = time.perf_counter()
        fast, _ = best_prior_overlaps(boxes, priors, config)
        fast_seconds = time.perf_counter() - start
        start = time.perf_counter()
        reference, _ = best_prior_overlaps_all_pairs(boxes, priors)
        reference_seconds = time.perf_counter() - start
        difference = (fast - reference).abs().max().item()
        worst = max(worst, difference)
        print(f"SSD{image_size} ({len(priors)} priors): nearest-centre candidates {fast_seconds:.3f} s, box_iou with "
              f"every prior {reference_seconds:.2f} s, ratio {reference_seconds / fast_seconds:.0f}x; "
              f"coverage {(fast >= 0.5).float().mean().item():.4f}; largest IoU difference {difference:.2g}")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
