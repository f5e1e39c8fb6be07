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
"""

import math

DEFAULT_TILE_OVERLAP = 0.25


def tile_starts(length, tile, overlap=DEFAULT_TILE_OVERLAP):
    """Start offsets of the crops along one side.

    :param length: the side, pixels
    :param tile: the crop's side, pixels
    :param overlap: fraction of a crop shared with the next one, in [0, 1)
    :return: sorted list of int offsets; [0] when ``length <= tile``
    :raises ValueError: for tile < 1 or overlap outside [0, 1)
    """
    if tile < 1:
        raise ValueError(f"tile size must be at least 1 pixel, got {tile}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
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
    :return: ``tiled(list of PIL images) -> same structure as detect_fn``, boxes in each original image's pixels
    """
    tile_starts(tile, tile, overlap)  # checks tile and overlap now, not at the first image

    def tiled(images):
        crops, owners = [], []  # every crop of every image, and (image index, x offset, y offset) of each
        for index, image in enumerate(images):
            for x1, y1, x2, y2 in tile_boxes(image.width, image.height, tile, overlap):
                crops.append(image.crop((x1, y1, x2, y2)))
                owners.append((index, x1, y1))
            if full_image and (image.width > tile or image.height > tile):
                crops.append(image)
                owners.append((index, 0, 0))
        found = [[] for _ in images]
        for start in range(0, len(crops), batch_size):
            batch_results = detect_fn(crops[start:start + batch_size])
            for (index, dx, dy), detections in zip(owners[start:start + batch_size], batch_results):
                for detection in detections:
                    x1, y1, x2, y2 = detection["box"]
                    found[index].append(dict(detection, box=[x1 + dx, y1 + dy, x2 + dx, y2 + dy]))
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


def tile_tensor_images(images, tile, overlap=DEFAULT_TILE_OVERLAP, full_image=False):
    """The crops of a list of image tensors, for ``SSDDetector``'s tiled forward.

    :param images: N (C, H_i, W_i) tensors
    :return: (crops: list of (C, h, w) tensor views, owners: list of (image index, x offset, y offset))
    """
    crops, owners = [], []
    for index, image in enumerate(images):
        height, width = image.shape[-2:]
        for x1, y1, x2, y2 in tile_boxes(width, height, tile, overlap):
            crops.append(image[:, y1:y2, x1:x2])
            owners.append((index, x1, y1))
        if full_image and (width > tile or height > tile):
            crops.append(image)
            owners.append((index, 0, 0))
    return crops, owners


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
