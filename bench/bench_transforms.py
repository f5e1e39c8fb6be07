"""Benchmark our TRAIN augmentation (utils.transform) against torchvision.transforms.v2's SSD pipeline.

Both pipelines get the same decoded PIL images and boxes in the same run, and both produce what SSD300
trains on: a (3, 300, 300) ImageNet-normalized float tensor plus the surviving boxes and labels.

torchvision's pipeline is its detection reference's "ssd" preset plus the resize and normalization that
SSD300 needs: RandomPhotometricDistort -> RandomZoomOut(side_range (1, 4), mean fill) -> RandomIoUCrop ->
RandomHorizontalFlip -> Resize(300x300) -> SanitizeBoundingBoxes -> ToImage -> ToDtype -> Normalize.
It is timed twice, on PIL input (the reference's default backend) and on uint8 tensor input; the faster
of the two is the reference the ratio is taken against. Two differences in what the pipelines do:
torchvision's RandomPhotometricDistort also permutes the channels with probability 0.5 (Caffe's SSD
recipe leaves that off), and its RandomIoUCrop draws a new minimum IoU until some crop qualifies, where
ours (like Caffe) keeps the whole image after 50 failed trials.

Where the time goes: ours tests all 50 crop trials in one IoU call and resizes uint8 tensors; most of
torchvision's time is its crop search (a Python loop over trials) and PIL resizes of zoomed-out canvases.

    python bench/bench_transforms.py                    # 200 synthetic VOC-sized images, 5 rounds
    python bench/bench_transforms.py --data-folder DIR  # the first --images images of DIR/TRAIN_*.json

Timing is single-threaded (torch.set_num_threads(1)), as in a DataLoader worker, and the rounds of the
pipelines are interleaved so that a busy shared machine slows them alike; the median round is reported.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import read_image_list  # noqa: E402
from images import load_image  # noqa: E402
from utils import IMAGENET_MEAN, IMAGENET_STD, MEAN_FILL_UINT8, transform  # noqa: E402

# Typical Pascal VOC image sizes (width, height).
VOC_SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (486, 500)]


def synthetic_samples(n_images, seed):
    """VOC-sized images of smooth noise with 1-4 random boxes each.

    :param n_images: how many
    :param seed: the random seed
    :return: list of (PIL image, boxes (n, 4) float pixel x1y1x2y2, labels (n,) int64)
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_images):
        width, height = VOC_SIZES[i % len(VOC_SIZES)]
        small = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
        n_objects = int(rng.integers(1, 5))
        x = np.sort(rng.uniform(0, width, size=(n_objects, 2)), axis=1)
        y = np.sort(rng.uniform(0, height, size=(n_objects, 2)), axis=1)
        boxes = torch.tensor(np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], axis=1), dtype=torch.float32)
        boxes[:, 2].clamp_(max=width)
        boxes[:, 3].clamp_(max=height)
        labels = torch.from_numpy(rng.integers(1, 21, size=n_objects)).long()
        samples.append((image, boxes, labels))
    return samples


def folder_samples(data_folder, n_images):
    """The first ``n_images`` images of a data folder's TRAIN lists, decoded.

    :return: list of (PIL image, boxes (n, 4) float pixel x1y1x2y2, labels (n,) int64)
    """
    paths = read_image_list(data_folder, "TRAIN")[:n_images]  # the lists hold paths relative to their folder
    with open(os.path.join(data_folder, "TRAIN_objects.json")) as f:
        objects = json.load(f)[:n_images]
    samples = []
    for path, objs in zip(paths, objects):
        image = load_image(path)
        boxes = torch.tensor(objs["boxes"], dtype=torch.float32).reshape(-1, 4)
        samples.append((image, boxes, torch.tensor(objs["labels"], dtype=torch.int64)))
    return samples


def torchvision_ssd_pipeline():
    """torchvision.transforms.v2's SSD augmentation, ending in a normalized (3, 300, 300) float tensor."""
    return T.Compose([
        T.RandomPhotometricDistort(p=0.5),
        T.RandomZoomOut(fill=list(MEAN_FILL_UINT8), side_range=(1.0, 4.0), p=0.5),
        T.RandomIoUCrop(),
        T.RandomHorizontalFlip(p=0.5),
        T.Resize((300, 300), antialias=True),
        T.SanitizeBoundingBoxes(),
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def run_ours(samples):
    """Push every sample through utils.transform(..., "TRAIN"); return the number of boxes kept."""
    kept = 0
    for image, boxes, labels in samples:
        difficulties = torch.zeros_like(labels, dtype=torch.uint8)
        _, new_boxes, _, _ = transform(image, boxes, labels, difficulties, "TRAIN")
        kept += new_boxes.size(0)
    return kept


def run_torchvision(samples, pipeline, as_tensor):
    """Push every sample through torchvision's pipeline (PIL or uint8 tensor input); return boxes kept."""
    kept = 0
    for image, boxes, labels in samples:
        if as_tensor:
            image = tv_tensors.Image(image)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(image_height(image), image_width(image))),
            "labels": labels,
        }
        _, new_target = pipeline(image, target)
        kept += new_target["boxes"].shape[0]
    return kept


def image_height(image):
    """Height of a PIL image or a (3, H, W) tensor."""
    return image.height if isinstance(image, Image.Image) else image.shape[-2]


def image_width(image):
    """Width of a PIL image or a (3, H, W) tensor."""
    return image.width if isinstance(image, Image.Image) else image.shape[-1]


def time_once(fn, seed):
    """Seconds one call of ``fn`` takes, with Python's and torch's generators seeded first."""
    random.seed(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    """Time the three pipelines and print images per second and the ratio; returns the exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="images per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per pipeline (median reported)")
    parser.add_argument("--data-folder", default=None, help="use the TRAIN images of this data folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = like a DataLoader worker)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.data_folder:
        samples = folder_samples(args.data_folder, args.images)
    else:
        samples = synthetic_samples(args.images, args.seed)
    n = len(samples)
    tv_pipeline = torchvision_ssd_pipeline()
    contenders = {
        "ours (utils.transform)": lambda: run_ours(samples),
        "torchvision v2, PIL input": lambda: run_torchvision(samples, tv_pipeline, as_tensor=False),
        "torchvision v2, tensor input": lambda: run_torchvision(samples, tv_pipeline, as_tensor=True),
    }
    for fn in contenders.values():  # warm-up (first calls allocate, load kernels)
        time_once(fn, args.seed)

    times = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(time_once(fn, args.seed + 1 + r))

    print(f"{n} images of {'folder ' + args.data_folder if args.data_folder else 'synthetic VOC sizes'}, "
          f"{args.rounds} rounds, {args.threads} thread(s), median round:")
    rates = {}
    for name, ts in times.items():
        rates[name] = n / statistics.median(ts)
        print(f"  {name:<30s} {rates[name]:8.1f} images/s")
    ours = rates["ours (utils.transform)"]
    reference_name = max((k for k in rates if k.startswith("torchvision")), key=rates.get)
    print(f"ratio ours / best torchvision ({reference_name}): {ours / rates[reference_name]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
