"""Tiled (sliced) inference for large images, as SAHI does: small objects seen at a usable scale.

SSD300 shrinks every image to 300 x 300 pixels: in a 3000-pixel photo a 30-pixel object becomes 3 pixels, below
what the smallest priors (30 pixels at 300) find. Tiling cuts the image into overlapping ``tile`` x ``tile``
crops, detects in all of them as batches, shifts each crop's boxes back by the crop's offset, optionally adds a
pass over the whole image (for the objects larger than a tile), and merges everything with torchvision's
batched NMS (class-aware, or class-agnostic).

Two entry points, one geometry (:func:`tile_boxes`) and one merge (:func:`merge_detections`):

- :func:`tiled_detect_fn` wraps any ``detect_fn(list of PIL images) -> per-image lists of {"label", "score",
  "box"}`` in pixels: detect.py's, whatever the backend (PyTorch, onnxruntime on a checkpoint's network, or an
  exported ``--onnx`` model); ``detect.py --tile SIZE``;
- ``SSDDetector(..., tile_size=SIZE)`` runs :func:`tile_tensor_images` inside its eval-mode forward.

Tiles: along each side, ``ceil((L - tile) / stride) + 1`` crops starting every ``stride = round(tile x (1 -
overlap))`` pixels, the last one flush with the far edge (so every crop is ``tile`` pixels, none past the image);
a side no longer than ``tile`` is one crop of the whole side.

Bounds (``ssd_support.limits``): crops are cut lazily, ``batch_size`` at a time (:func:`crop_batches`), so memory
holds one batch of crops and the detections, whatever the number of tiles; a tile side below ``MIN_TILE_SIZE`` and
an image of more than ``MAX_TILES_PER_IMAGE`` crops are refused in one line before any crop is cut.
"""

import importlib
import math

from ssd_support.limits import MAX_TILES_PER_IMAGE, MIN_TILE_SIZE

DEFAULT_TILE_OVERLAP = 0.25


def check_tile_settings(tile, overlap):
    """Refuse a tile side below ``MIN_TILE_SIZE`` or an overlap outside [0, 1).

    :param tile: the crop's side, pixels
    :param overlap: fraction of a crop shared with the next one
    :raises ValueError: one line naming the setting
    """
    if tile < MIN_TILE_SIZE:
        raise ValueError(f"tile size must be at least {MIN_TILE_SIZE} pixels (ssd_support.limits.MIN_TILE_SIZE: a "
                         f"smaller crop is upsampled more than ~10x to the network's input), got {tile}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")


def tile_starts(length, tile, overlap=DEFAULT_TILE_OVERLAP):
    """Start offsets of the crops along one side.

    :param length: the side, pixels
    :param tile: the crop's side, pixels
    :param overlap: fraction of a crop shared with the next one, in [0, 1)
    :return: sorted list of int offsets; [0] when ``length <= tile``
    :raises ValueError: for tile < ``MIN_TILE_SIZE`` or overlap outside [0, 1) (:func:`check_tile_settings`)
    """
    check_tile_settings(tile, overlap)
    if length <= tile:
        return [0]
    stride = max(1, int(round(tile * (1 - overlap))))
    count = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(count)})


def tile_boxes(width, height, tile, overlap=DEFAULT_TILE_OVERLAP):
    """The crops of an image, row by row.

    :param width: image width, pixels
    :param height: image height, pixels
    :return: list of (x1, y1, x2, y2) int crop boxes in the image's pixels (x2, y2 exclusive)
    """
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]


def check_tile_count(width, height, tile, overlap=DEFAULT_TILE_OVERLAP, name=None):
    """Refuse an image that the settings cut into more than ``MAX_TILES_PER_IMAGE`` crops (counted, none cut).

    :param width: image width, pixels
    :param height: image height, pixels
    :param name: what the message calls the image (a path, ``images[2]``); None: its size only
    :return: the number of crops (the whole-image pass not counted)
    :raises ValueError: one line naming the image, its size, the crop count and the settings
    """
    count = len(tile_starts(width, tile, overlap)) * len(tile_starts(height, tile, overlap))
    if count > MAX_TILES_PER_IMAGE:
        raise ValueError(f"{name + ': ' if name else ''}a {width}x{height} image cut into {tile}-pixel tiles with "
                         f"overlap {overlap} gives {count:,} tiles, more than the limit of {MAX_TILES_PER_IMAGE:,} "
                         f"per image (ssd_support.limits.MAX_TILES_PER_IMAGE); a larger tile or a smaller overlap "
                         f"gives fewer")
    return count


def crop_batches(images, sizes, cut, tile, overlap=DEFAULT_TILE_OVERLAP, full_image=False, batch_size=8,
                 names=None):
    """The crops of a list of images, ``batch_size`` at a time, each cut only when its batch is next (a generator).

    Memory holds the batch being used and the one being cut, not every crop. Every image's crop count is checked
    (:func:`check_tile_count`) at the first ``next()``, before any crop is cut.

    :param images: N images of any kind (PIL images, (C, H, W) tensors)
    :param sizes: N (width, height), pixels
    :param cut: ``cut(image, (x1, y1, x2, y2)) -> crop`` (x2, y2 exclusive)
    :param tile: crop side, pixels
    :param overlap: fraction shared by neighbouring crops
    :param full_image: after an image's crops, the image itself (when it is larger than a tile)
    :param batch_size: crops per batch (the last one may hold fewer)
    :param names: N names for the refusal message (None: the images' sizes only)
    :return: generator of (crops: list of at most ``batch_size`` crops, owners: list of (image index, x offset,
        y offset) of each)
    :raises ValueError: an image of more than ``MAX_TILES_PER_IMAGE`` crops, naming it (at the first ``next()``)
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    for index, (width, height) in enumerate(sizes):
        check_tile_count(width, height, tile, overlap, names[index] if names else None)
    crops, owners = [], []
    for index, (image, (width, height)) in enumerate(zip(images, sizes)):
        pieces = [((x1, y1, x2, y2), (index, x1, y1)) for x1, y1, x2, y2 in tile_boxes(width, height, tile, overlap)]
        if full_image and (width > tile or height > tile):
            pieces.append((None, (index, 0, 0)))  # the image itself, not a copy of it
        for box, owner in pieces:
            crops.append(image if box is None else cut(image, box))
            owners.append(owner)
            if len(crops) == batch_size:
                yield crops, owners
                crops, owners = [], []  # new lists: the caller's batch is freed once it lets go of it
    if crops:
        yield crops, owners


def merge_detections(boxes, scores, labels, iou_threshold, top_k, class_agnostic=False):
    """torchvision's batched NMS over the detections of all crops of one image, then the ``top_k`` best.

    :param boxes: (n, 4) float tensor, x1y1x2y2 in the image's pixels
    :param scores: (n,) float tensor
    :param labels: (n,) int64 tensor (any class ids; NMS is per class unless ``class_agnostic``)
    :param iou_threshold: a box overlapping a better one (of its class) by more than this is dropped
    :param top_k: at most this many kept
    :param class_agnostic: one NMS over all classes
    :return: indices (k,) of the kept detections, best first
    """
    import torch
    from torchvision.ops import batched_nms

    groups = torch.zeros_like(labels) if class_agnostic else labels
    return batched_nms(boxes.float(), scores.float(), groups, iou_threshold)[:top_k]


def tiled_detect_fn(detect_fn, tile, overlap=DEFAULT_TILE_OVERLAP, full_image=False, max_overlap=0.5, top_k=200,
                    class_agnostic=False, batch_size=8):
    """Wrap a per-image detector so that it detects tile by tile (detect.py's --tile).

    :param detect_fn: ``detect_fn(list of PIL images) -> list of lists of {"label": str, "score": float,
        "box": [x1, y1, x2, y2] in that image's pixels}``
    :param tile: crop side, pixels
    :param overlap: fraction shared by neighbouring crops
    :param full_image: also detect on the whole image (large objects), merged with the crops'
    :param max_overlap: IoU of the merging NMS
    :param top_k: detections kept per image after the merge
    :param class_agnostic: merge with one NMS over all classes (detect.py --agnostic-nms)
    :param batch_size: crops per ``detect_fn`` call
    :return: ``tiled(list of PIL images) -> same structure as detect_fn``, boxes in each original image's pixels;
        ``detect_fn`` gets at most ``batch_size`` crops a call, cut just before it (:func:`crop_batches`)
    :raises ValueError: here for a tile below ``MIN_TILE_SIZE`` or an overlap outside [0, 1); from ``tiled`` for
        an image of more than ``MAX_TILES_PER_IMAGE`` crops, before any crop is cut (one line)
    :raises ImportError: here, one line, when torchvision (the merging NMS) cannot be imported: detect.py --onnx
        runs without torch, --tile does not
    """
    tile_starts(tile, tile, overlap)  # checks tile and overlap now, not at the first image
    try:
        importlib.import_module("torchvision.ops")  # the merge's NMS: checked now, not after the first crops
    except ImportError:
        raise ImportError("--tile merges the crops' detections with torchvision's NMS, which needs torch and "
                          "torchvision (pip install -r requirements.txt); without them, run without --tile") from None

    def tiled(images):
        found = [[] for _ in images]
        sizes = [image.size for image in images]
        names = [getattr(image, "filename", None) for image in images]  # a path where Pillow still knows it
        for crops, owners in crop_batches(images, sizes, lambda image, box: image.crop(box), tile, overlap,
                                          full_image, batch_size, names if all(names) else None):
            for (index, dx, dy), detections in zip(owners, detect_fn(crops)):
                for detection in detections:
                    x1, y1, x2, y2 = detection["box"]
                    found[index].append(dict(detection, box=[x1 + dx, y1 + dy, x2 + dx, y2 + dy]))
            del crops  # this batch's pixels are freed before the next batch is cut
        return [_merge_dicts(detections, max_overlap, top_k, class_agnostic) for detections in found]

    return tiled


def _merge_dicts(detections, max_overlap, top_k, class_agnostic):
    """:func:`merge_detections` on a list of detection dicts; the kept dicts, best first (boxes rounded to 0.1
    pixel, as detect.py writes them)."""
    import torch

    if not detections:
        return []
    names = sorted({detection["label"] for detection in detections})
    boxes = torch.tensor([detection["box"] for detection in detections], dtype=torch.float64)
    scores = torch.tensor([detection["score"] for detection in detections], dtype=torch.float64)
    labels = torch.tensor([names.index(detection["label"]) for detection in detections])
    keep = merge_detections(boxes, scores, labels, max_overlap, top_k, class_agnostic)
    return [dict(detections[i], box=[round(float(v), 1) for v in detections[i]["box"]]) for i in keep.tolist()]


def crop_tensor(image, box):
    """A view of a (C, H, W) image tensor inside ``box`` = (x1, y1, x2, y2) pixels, x2 and y2 exclusive."""
    x1, y1, x2, y2 = box
    return image[:, y1:y2, x1:x2]


def merge_tensor_detections(crop_detections, owners, n_images, iou_threshold, top_k, class_agnostic=False):
    """Shift each crop's torchvision-style detections by its offset and merge them per image.

    :param crop_detections: one {"boxes": (k, 4) crop pixels, "labels": (k,), "scores": (k,)} per crop
    :param owners: (image index, x offset, y offset) of each crop
    :param n_images: how many images
    :return: n_images {"boxes", "labels", "scores"} dicts in the images' pixels, best first
    """
    import torch

    per_image = [[] for _ in range(n_images)]
    for detections, (index, dx, dy) in zip(crop_detections, owners):
        shift = detections["boxes"].new_tensor([dx, dy, dx, dy])
        per_image[index].append((detections["boxes"] + shift, detections["labels"], detections["scores"]))
    merged = []
    for parts in per_image:
        boxes, labels, scores = (torch.cat(tensors) for tensors in zip(*parts))
        keep = merge_detections(boxes, scores, labels, iou_threshold, top_k, class_agnostic)
        merged.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return merged
