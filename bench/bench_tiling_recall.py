"""Tiled inference on a large image with small objects: recall without and with tiles (ssd_support/tiling.py).

Toy shapes (the quickstart's classes, ``ssd_support/toy_data.py``'s colours) of ``--object-side`` pixels pasted on
``--canvas`` x ``--canvas`` backgrounds: in the whole image shrunk to 300 pixels they are a few pixels wide, in a
300-pixel tile they are the size the toy model was trained on. Detected as ``detect.py`` does (``detect_batch``
on the checkpoint's network; ``--tile``: ``tiling.tiled_detect_fn``), score above ``--min-score``; an object is
found when a detection of its class overlaps it with IoU >= 0.5.

    python bench/bench_tiling_recall.py --checkpoint checkpoints/toy/ssd300_iter_000064.pt
"""

import argparse
import os
import random
import sys
import time

import torch
from PIL import ImageDraw
from torchvision.ops import box_iou

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detect import detect_batch  # noqa: E402
from ssd_support.checkpoints import load_model_from_checkpoint  # noqa: E402
from ssd_support.tiling import tiled_detect_fn  # noqa: E402
from ssd_support.toy_data import TOY_CLASSES, _draw_shape, _toy_background  # noqa: E402


def large_canvas(seed, side, object_side, per_row):
    """A ``side`` x ``side`` toy background with per_row x per_row shapes of ``object_side`` pixels, one per cell
    of a grid, at a random place in its cell. :return: (PIL image, [(class name, [x1, y1, x2, y2])])"""
    rng = random.Random(seed)
    image = _toy_background(rng, side, side)
    draw, objects, cell = ImageDraw.Draw(image), [], side // per_row
    for row in range(per_row):
        for column in range(per_row):
            name = rng.choice(sorted(TOY_CLASSES))
            x1 = column * cell + rng.randint(0, cell - object_side)
            y1 = row * cell + rng.randint(0, cell - object_side)
            box = [x1, y1, x1 + object_side, y1 + object_side]
            _draw_shape(draw, name, box, rng)
            objects.append((name, box))
    return image, objects


def recall(found, objects):
    """Fraction of ``objects`` matched by a detection of their class with IoU >= 0.5."""
    hits = 0
    for name, box in objects:
        same = [d["box"] for d in found if d["label"] == name]
        hits += bool(same) and box_iou(torch.tensor([box], dtype=torch.float32),
                                       torch.tensor(same, dtype=torch.float32)).max().item() >= 0.5
    return hits / len(objects)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--canvas", type=int, default=1200, help="side of the large images, pixels")
    parser.add_argument("--object-side", type=int, default=100, help="side of the pasted shapes, pixels")
    parser.add_argument("--per-row", type=int, default=3, help="shapes per row and column")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--tile", type=int, default=300)
    parser.add_argument("--tile-overlap", type=float, default=0.25)
    parser.add_argument("--min-score", type=float, default=0.2)
    args = parser.parse_args(argv)
    model, label_map = load_model_from_checkpoint(args.checkpoint)
    model.eval()
    canvases = [large_canvas(seed, args.canvas, args.object_side, args.per_row) for seed in range(args.images)]

    def plain(images):
        return detect_batch(images, model, label_map, min_score=args.min_score)

    runs = {"whole image": plain,
            f"tiles {args.tile}, overlap {args.tile_overlap}": tiled_detect_fn(plain, args.tile, args.tile_overlap),
            f"tiles {args.tile}, overlap {args.tile_overlap} + whole image":
                tiled_detect_fn(plain, args.tile, args.tile_overlap, full_image=True)}
    print(f"{args.checkpoint}: {args.images} images {args.canvas} x {args.canvas}, {args.per_row ** 2} shapes of "
          f"{args.object_side} px each, score > {args.min_score}, recall at IoU 0.5 (class-aware)")
    for name, run in runs.items():
        start = time.perf_counter()
        found = [run([image])[0] for image, _ in canvases]
        seconds = time.perf_counter() - start
        rates = [recall(f, objects) for f, (_, objects) in zip(found, canvases)]
        n_found = sum(len(f) for f in found)
        print(f"  {name:40s} recall {sum(rates) / len(rates):.3f}  ({n_found} detections, "
              f"{seconds / len(canvases):.1f} s per image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
