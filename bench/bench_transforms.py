"""Benchmark the TRAIN data pipeline, JPEG decoding included: ours, torchvision.transforms.v2's, decoding alone.

Every contender reads the same JPEG files (VOC-sized photos written to a temporary folder, or the TRAIN images
of --data-folder) and produces what train.py's data loader workers hand the training loop: a (3, 300, 300) uint8
image plus the surviving boxes and labels (train.py normalizes the images on the GPU, a batch at a time: the float
work is nothing there, and the loader passes a quarter of the bytes). The contenders:

- decode only          -- images.load_image (Pillow: PIL.Image.open(path), EXIF applied, RGB), the floor every
                          pipeline on PIL images pays;
- decode only, tensor  -- datasets.load_image_tensor, as the dataset reads (images.load_image_array: libjpeg-turbo
                          through torchvision.io.decode_jpeg straight into an array: the same pixels, without Pillow's copy);
- ours                 -- tensor decode + ssd_support.fast_augment.augment_train(..., normalized=False) (one
                          resample of the composed zoom-out + crop window, photometric distortions on the 300x300
                          result), as train.py's loader runs it (PascalVOCDataset's default);
- ours, normalized on the CPU -- the same, ending in the normalized float image (normalized=True, the default of
                          augment_train), as a loader that does not normalize on the GPU would run it;
- ours, reference      -- Pillow decode + utils.transform(..., "TRAIN", normalized=False), the paper's chain: the
                          same draws applied step by step on whole images (train.py --reference-augment;
                          tests/test_fast_augment.py checks that the two agree);
- torchvision v2       -- decode + its detection reference's "ssd" preset plus the resize SSD300 needs:
                          RandomPhotometricDistort -> RandomZoomOut(side_range (1, 4), mean fill) ->
                          RandomIoUCrop -> RandomHorizontalFlip -> Resize(300x300) -> SanitizeBoundingBoxes ->
                          ToImage (uint8: normalized on the GPU as ours), on PIL input (Pillow decode) and on uint8
                          tensor input
                          (tensor decode, as ours); the faster of the two is the reference the ratio is taken
                          against. (It also permutes the channels with
                          probability 0.5, which Caffe's SSD recipe leaves off, and its RandomIoUCrop draws a new
                          minimum IoU until some crop qualifies, where ours keeps the whole image after 50 trials.)

It also times what each loader worker does next with 32 of our images, stacking them into a batch (collate):
torch.stack into a channel-by-channel batch, and datasets.stack_images, which stacks them as they are stored
(pixel by pixel: a channels-last batch), in milliseconds per image.

    python bench/bench_transforms.py                    # 200 VOC-sized JPEGs written to a temporary folder
    python bench/bench_transforms.py --data-folder DIR  # the first --images images of DIR/TRAIN_*.json

Timing is single-threaded (torch.set_num_threads(1), cv2.setNumThreads(1)), as in a DataLoader worker, so images/s is per core. Both
the wall clock and this process's CPU time are measured: on a machine shared with other jobs the CPU time is the
steadier figure of what one core delivers. The contenders take turns every --chunk images (each round: the first
chunk through every contender, then the next chunk, ...), so that a busy moment of the machine, which lasts
seconds, slows them alike; the median round is reported, and every ratio is taken within this one run.
"""

import argparse
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import load_image_tensor, read_image_list, stack_images  # noqa: E402
from ssd_support.images import load_image  # noqa: E402
from ssd_support.toy_data import photo_like_pixels  # noqa: E402
from ssd_support.fast_augment import augment_train  # noqa: E402
from utils import MEAN_FILL_UINT8, transform  # noqa: E402

# Typical Pascal VOC image sizes (width, height).
VOC_SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (486, 500)]


def write_synthetic_jpegs(folder, n_images, seed):
    """Write VOC-sized JPEGs (quality 90, about 100 kB each, like VOC's photos) with 1-4 random boxes each.

    The pictures are toy_data.photo_like_pixels: JPEG has detail to decode at every scale, as in a photo.

    :param folder: where to write img_NNNN.jpg
    :param n_images: how many
    :param seed: the random seed
    :return: list of (path, boxes (n, 4) float pixel x1y1x2y2, labels (n,) int64)
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_images):
        width, height = VOC_SIZES[i % len(VOC_SIZES)]
        path = os.path.join(folder, f"img_{i:04d}.jpg")
        Image.fromarray(photo_like_pixels(rng, height, width)).save(path, quality=90)
        n_objects = int(rng.integers(1, 5))
        x = np.sort(rng.uniform(0, width, size=(n_objects, 2)), axis=1)
        y = np.sort(rng.uniform(0, height, size=(n_objects, 2)), axis=1)
        boxes = torch.tensor(np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], axis=1), dtype=torch.float32)
        boxes[:, 2].clamp_(max=width)
        boxes[:, 3].clamp_(max=height)
        labels = torch.from_numpy(rng.integers(1, 21, size=n_objects)).long()
        samples.append((path, boxes, labels))
    return samples


def folder_samples(data_folder, n_images):
    """The first ``n_images`` images of a data folder's TRAIN lists (paths, not decoded: decoding is timed).

    :return: list of (path, boxes (n, 4) float pixel x1y1x2y2, labels (n,) int64)
    """
    paths = read_image_list(data_folder, "TRAIN")[:n_images]  # the lists hold paths relative to their folder
    with open(os.path.join(data_folder, "TRAIN_objects.json")) as f:
        objects = json.load(f)[:n_images]
    # read_image_list already resolved the paths against the data folder
    return [(path, torch.tensor(objs["boxes"], dtype=torch.float32).reshape(-1, 4),
             torch.tensor(objs["labels"], dtype=torch.int64))
            for path, objs in zip(paths, objects)]


def torchvision_ssd_pipeline():
    """torchvision.transforms.v2's SSD augmentation, ending in a (3, 300, 300) uint8 tensor, as ours."""
    return T.Compose([
        T.RandomPhotometricDistort(p=0.5),
        T.RandomZoomOut(fill=list(MEAN_FILL_UINT8), side_range=(1.0, 4.0), p=0.5),
        T.RandomIoUCrop(),
        T.RandomHorizontalFlip(p=0.5),
        T.Resize((300, 300), antialias=True),
        T.SanitizeBoundingBoxes(),
        T.ToImage(),
    ])


def run_decode(samples, decode):
    """Decode every file with ``decode``; return the number of rows (so that the work cannot be skipped)."""
    return sum(image_height(decode(path)) for path, _, _ in samples)


def run_ours(samples, chain, decode):
    """Decode every file with ``decode`` and push it through ``chain`` (fast_augment.augment_train or the
    reference, utils.transform's TRAIN chain); return the number of boxes kept."""
    kept = 0
    for path, boxes, labels in samples:
        difficulties = torch.zeros_like(labels, dtype=torch.uint8)
        _, new_boxes, _, _ = chain(decode(path), boxes, labels, difficulties)
        kept += new_boxes.size(0)
    return kept


def run_torchvision(samples, pipeline, as_tensor):
    """Decode every file and push it through torchvision's pipeline (PIL or uint8 tensor input); return boxes kept."""
    kept = 0
    for path, boxes, labels in samples:
        image = tv_tensors.Image(load_image_tensor(path)) if as_tensor else load_image(path)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(image_height(image), image_width(image))),
            "labels": labels,
        }
        _, new_target = pipeline(image, target)
        kept += new_target["boxes"].shape[0]
    return kept


def time_batching(samples, chain, batch_size=32, repeats=20):
    """Milliseconds per image of stacking a batch of ``chain``'s outputs, as collate does in each loader worker:
    torch.stack (a channel-by-channel batch) and datasets.stack_images (as the images are stored).

    :return: (torch.stack ms per image, stack_images ms per image), the best of ``repeats``
    """
    images = []
    for path, boxes, labels in (samples * batch_size)[:batch_size]:
        images.append(chain(load_image_tensor(path), boxes, labels, torch.zeros_like(labels, dtype=torch.uint8))[0])
    best = []
    for stack in (torch.stack, stack_images):
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            stack(images)
            seconds.append(time.perf_counter() - start)
        best.append(min(seconds) / batch_size * 1000)
    return tuple(best)


def image_height(image):
    """Height of a PIL image or a (3, H, W) tensor."""
    return image.height if isinstance(image, Image.Image) else image.shape[-2]


def image_width(image):
    """Width of a PIL image or a (3, H, W) tensor."""
    return image.width if isinstance(image, Image.Image) else image.shape[-1]


def time_once(fn, seed):
    """(wall seconds, CPU seconds of this process) of one call of ``fn``, Python's and torch's generators seeded first."""
    random.seed(seed)
    torch.manual_seed(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    """Time the contenders and print images/s (wall and CPU time) and the ratios; returns the exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="images per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender (median reported)")
    parser.add_argument("--chunk", type=int, default=10, help="images per turn of a contender")
    parser.add_argument("--data-folder", default=None, help="use the TRAIN images of this data folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = like a DataLoader worker)")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the slow reference chain")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if args.data_folder:
            samples = folder_samples(args.data_folder, args.images)
            source = f"folder {args.data_folder}"
        else:
            samples = write_synthetic_jpegs(folder, args.images, args.seed)
            size = sum(os.path.getsize(path) for path, _, _ in samples) / len(samples) / 1000
            source = f"VOC-sized synthetic JPEGs, {size:.0f} kB on average"
        n = len(samples)
        tv_pipeline = torchvision_ssd_pipeline()
        train = functools.partial(augment_train, normalized=False)
        train_normalized = augment_train
        reference = functools.partial(transform, split="TRAIN", normalized=False)
        contenders = {  # each takes a list of samples
            "decode only": functools.partial(run_decode, decode=load_image),
            "decode only, tensor": functools.partial(run_decode, decode=load_image_tensor),
            "ours (fast_augment)": functools.partial(run_ours, chain=train, decode=load_image_tensor),
            "ours, normalized on the CPU": functools.partial(run_ours, chain=train_normalized,
                                                             decode=load_image_tensor),
            "ours, reference chain": functools.partial(run_ours, chain=reference, decode=load_image),
            "torchvision v2, PIL input": functools.partial(run_torchvision, pipeline=tv_pipeline, as_tensor=False),
            "torchvision v2, tensor input": functools.partial(run_torchvision, pipeline=tv_pipeline, as_tensor=True),
        }
        if args.skip_reference:
            del contenders["ours, reference chain"]
        for fn in contenders.values():  # warm-up (first calls allocate, load kernels, fill the file cache)
            time_once(functools.partial(fn, samples), args.seed)

        stack_ms, stack_as_stored_ms = time_batching(samples, train)
        times = {name: [] for name in contenders}
        chunks = [samples[i:i + args.chunk] for i in range(0, n, args.chunk)]
        for r in range(args.rounds):
            round_times = {name: [0.0, 0.0] for name in contenders}
            for c, chunk in enumerate(chunks):
                for name, fn in contenders.items():
                    wall_seconds, cpu_seconds = time_once(functools.partial(fn, chunk), args.seed + 1 + r * n + c)
                    round_times[name][0] += wall_seconds
                    round_times[name][1] += cpu_seconds
            for name in contenders:
                times[name].append(round_times[name])

    print(f"{n} images ({source}), decoding included, {args.rounds} rounds, {args.threads} thread(s), "
          f"median round, torch {torch.__version__}:")
    print(f"  {'':30s} {'images/s (wall)':>16s} {'images/s (CPU time)':>20s}")
    wall, cpu = {}, {}
    for name, ts in times.items():
        wall[name] = n / statistics.median(t[0] for t in ts)
        cpu[name] = n / statistics.median(t[1] for t in ts)
        print(f"  {name:<30s} {wall[name]:16.1f} {cpu[name]:20.1f}")
    ours = "ours (fast_augment)"
    reference_name = max((k for k in cpu if k.startswith("torchvision")), key=cpu.get)
    print("ratios (wall / CPU time):")
    print(f"  ours / best torchvision ({reference_name}): {wall[ours] / wall[reference_name]:.2f}x / "
          f"{cpu[ours] / cpu[reference_name]:.2f}x")
    if "ours, reference chain" in cpu:
        print(f"  ours / ours reference chain: {wall[ours] / wall['ours, reference chain']:.2f}x / "
              f"{cpu[ours] / cpu['ours, reference chain']:.2f}x")
    print(f"  ours / decode only: {wall[ours] / wall['decode only']:.2f}x / {cpu[ours] / cpu['decode only']:.2f}x")
    print(f"batching ours (collate, in the loader worker), ms per image, batch 32: torch.stack {stack_ms:.3f}, "
          f"datasets.stack_images (as stored, channels-last) {stack_as_stored_ms:.3f}")
    normalized = "ours, normalized on the CPU"
    print(f"  ours normalized on the CPU / ours: {wall[normalized] / wall[ours]:.2f}x / {cpu[normalized] / cpu[ours]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
