"""Look at the data before training: counts, box shapes and how well the network's priors cover the objects.

``create_data_lists.py`` calls :func:`write_data_statistics` once the lists are written; it writes, beside them,

- ``statistics.json``: per split and class the images, objects and difficult objects (``split_statistics`` of
  ssd_support/data_lists.py, passed in), the box shapes as fractions of the image, and the **prior coverage**;
- ``statistics.png``: objects and coverage per class, a width x height scatter, size and aspect-ratio histograms
  and a heat map of the box centres, with the network's prior scales and aspect ratios drawn over them.

Prior coverage. Every image is resized to the network's square input (300x300 for SSD300), which keeps a box's
coordinates as fractions of the image: an object covering [x1, y1, x2, y2] / [W, H, W, H] of a W x H image covers
the same fractions of the network's input (its aspect ratio, though, is that of the resized image). The matcher
(``utils.MultiBoxLoss``) makes a prior positive for an object when their IoU is at least 0.5, and also gives
every object its single best prior whatever their IoU. An object is *covered* when its best IoU with any prior is
at least 0.5: it then has one or more well-fitting priors to learn from; an object below that is still matched,
but to that one poorly fitting prior only. A class under 90% (``WELL_COVERED``)
is named in the printed summary, with the median size and aspect ratio of its poorly covered objects against the
smallest prior scale and the priors' aspect ratios: the scale or ratio that would fit them.

Which priors. The report describes the network the user will train (:func:`coverage_network`, create_data_lists.py's
flags): the VGG16 SSD300 by default, ``--base resnet50`` (NVIDIA's priors: 21 to 315 pixels, centres every 8, 16,
32, 64, 100, 300 pixels), ``--image-size 512``, or ``--priors-from CHECKPOINT``, the checkpoint to fine-tune from
(train.py --init-from gives the new network that checkpoint's priors: convert_weights.py --from torchvision_coco
writes torchvision's COCO priors, 0.07 to 1.05 of the side, into its config), read safely through
``ssd_support.checkpoints.read_checkpoint``. The same objects are measured against the priors of every other
network the project trains (:func:`alternative_networks`), so that the advice for a poorly covered class names,
with its measured coverage, each network that covers more of it ("the ResNet-50 SSD300 (--base resnet50) covers
100% of the class's objects"); objects smaller than every network's smallest prior get the n x n tiling
(:func:`tiled_boxes`, n in TILE_COUNTS) that covers most of them, measured against the network's own priors. A
class without objects is neither covered nor poorly covered: it is named as such.

The best IoU of each object with the priors (:func:`best_prior_overlaps`) does not compare it with all 8732
(SSD300) or 24,564 (SSD512) priors. The priors of one feature map and one shape differ only in their centres,
which lie on a grid (a product of x centres and y centres); the overlap of two boxes of fixed sizes along one axis
can only shrink as their centres move apart, so the best prior of that map and shape is the one whose centre is the
nearest grid point in x and in y. One candidate per map and shape (32 for SSD300) gives exactly the best IoU that
``torchvision.ops.box_iou`` against every prior gives (:func:`best_prior_overlaps_all_pairs`, the definition; the
tests hold the two equal on random boxes for every network). On 40,000 random boxes (VOC07+12 has about 40,000
objects) bench/bench_prior_coverage.py measured, in one thread of a shared 2-core machine, 0.05-0.06 s for SSD300
against 7.9-8.0 s for box_iou with every prior in chunks (143x and 155x in two runs), and 0.07 s against 23-29 s for
SSD512 (341x, 416x); the largest IoU difference 5e-7 (float32 rounding).
"""

import os
import sys
from typing import NamedTuple, Optional

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou

import model
from ssd_support.checkpoints import check_network_config, checkpoint_weights, configured_network, read_checkpoint
from ssd_support.files import label_map_path, has_split, images_list_path, objects_list_path, SPLITS
from ssd_support.files import STATISTICS_JSON, STATISTICS_PNG, read_json, write_atomically, write_json_atomically
from ssd_support.images import image_size as upright_image_size
from ssd_support.weights import TORCHVISION_COCO_PRIORS

COVERAGE_IOU = 0.5  # utils.MultiBoxLoss's threshold: a prior at this IoU or more with an object is a positive
WELL_COVERED = 0.9  # a class whose coverage is under this share is named in the summary
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # of the box shapes in statistics.json
# Object-prior pairs per box_iou call in best_prior_overlaps_all_pairs: box_iou makes a few (n, m, 2) temporaries,
# so 2**22 pairs keep it near 100 MB.
PAIRS_PER_CHUNK = 2 ** 22
FIGURE_SIZE = (15, 9)  # inches; at FIGURE_DPI: a 1200 x 720 PNG, readable and 100-200 KB
FIGURE_DPI = 80
MAX_SCATTER_POINTS = 10000  # a larger data set is drawn as a seeded sample of this many objects (the scatter only)


BASE_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet-50"}  # model.CONFIGS' bases, as the report names them
TILE_COUNTS = range(2, 9)  # n x n tiles tried for objects smaller than every network's smallest prior


class CoverageNetwork(NamedTuple):
    """A network whose priors the objects are measured against, named as the report names it."""

    config: model.SSDConfig  # its priors: model.create_prior_boxes(config)
    base: Optional[str]  # "vgg16" / "resnet50"
    name: str  # "VGG16 SSD300", "ResNet-50 SSD300", "VGG16 SSD300 with the priors of PATH", ...
    options: str  # how to train it: "--base resnet50", "--image-size 512", "train.py --init-from ...", ...
    priors_from: Optional[str] = None  # the checkpoint whose priors these are (--priors-from)


def network_config(image_size=300, base="vgg16"):
    """The ``SSDConfig`` of a base at an input size: SSD300 or SSD512 with VGG16, SSD300 with ResNet-50.

    :param image_size: 300 or 512
    :param base: "vgg16" or "resnet50"
    :return: model.SSDConfig (model.CONFIGS)
    :raises ValueError: for a pair that does not exist (model.ssd_config's message)
    """
    return model.ssd_config(base, image_size)


def _training_options(base, image_size):
    """The train.py / create_data_lists.py options of a base and input size, the defaults left out."""
    options = ([f"--base {base}"] if base != "vgg16" else []) + ([f"--image-size {image_size}"]
                                                                  if image_size != 300 else [])
    return " ".join(options) or "--base vgg16 --image-size 300"


def coverage_network(base=None, image_size=None, priors_from=None):
    """The network the user will train, whose priors the coverage describes (create_data_lists.py's --base,
    --image-size and --priors-from).

    :param base: "vgg16" or "resnet50"; None: the checkpoint's, or vgg16
    :param image_size: 300 or 512; None: the checkpoint's, or 300
    :param priors_from: a checkpoint to fine-tune from (train.py's or convert_weights.py's; train.py --init-from
        gives the new network its priors): read safely (ssd_support.checkpoints.read_checkpoint,
        ``torch.load(weights_only=True)``); its config names the base, the input size and any priors of its own
        (model.config_with_priors), checked against its weights as every loader does
        (ssd_support.checkpoints.check_network_config). None: the base's own priors
    :return: CoverageNetwork
    :raises ValueError: one line: a pair that does not exist; naming the checkpoint, a file that is not a readable
        SSD checkpoint or one that every loader refuses (check_network_config), or a --base / --image-size other
        than its own
    """
    if priors_from is None:
        base, image_size = base or "vgg16", image_size or 300
        config = network_config(image_size, base)
        return CoverageNetwork(config, base, f"{BASE_NAMES[base]} SSD{image_size}",
                               _training_options(base, image_size))
    checkpoint = read_checkpoint(priors_from)
    stored = checkpoint["config"]
    # Checked as every loader checks it (train.py --init-from refuses what fails): its values, its weights' shapes,
    # finite weights, and its priors_cxcy those its config describes, whose coverage is reported here.
    check_network_config(priors_from, stored, *checkpoint_weights(checkpoint))
    their_base, their_size = configured_network(stored)
    if (base or their_base, image_size or their_size) != (their_base, their_size):
        raise ValueError(f"{priors_from}: holds an SSD{their_size} with base {their_base}, not the "
                         f"SSD{image_size or their_size} with base {base or their_base} asked for (leave out --base "
                         f"and --image-size, or pass --base {their_base} --image-size {their_size})")
    try:
        config = network_config(their_size, their_base)
        if stored.get("priors") is not None:
            config = model.config_with_priors(config, stored["priors"])
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{priors_from}: {error}") from None
    return CoverageNetwork(config, their_base, f"{BASE_NAMES[their_base]} SSD{their_size} with the priors of "
                           f"{priors_from}", f"train.py --init-from {priors_from}", priors_from)


def alternative_networks():
    """The networks this project trains, each with its own priors: model.CONFIGS' (the VGG16 SSD300 and SSD512, the
    ResNet-50 SSD300, whose priors are NVIDIA's COCO ones) and the VGG16 SSD300 with torchvision's COCO priors
    (ssd_support.weights.TORCHVISION_COCO_PRIORS: convert_weights.py --from torchvision_coco, then train.py
    --init-from its checkpoint).

    :return: list of CoverageNetwork
    """
    networks = [coverage_network(base, image_size) for base, image_size in model.CONFIGS]
    networks.append(CoverageNetwork(model.config_with_priors(model.SSD300_VGG16, TORCHVISION_COCO_PRIORS), "vgg16",
                                    "VGG16 SSD300 with torchvision's COCO priors",
                                    "convert_weights.py --from torchvision_coco, then train.py --init-from it"))
    return networks


def _network_of_config(config):
    """A CoverageNetwork for a bare SSDConfig (the callers from before --base / --priors-from)."""
    key = next((key for key, known in model.CONFIGS.items() if known == config), None)
    if key is not None:
        return coverage_network(*key)
    return CoverageNetwork(config, None, f"SSD{config.image_size}", "")


def prior_shapes(config):
    """Each feature map's prior scales and aspect ratios, as the config gives them (and create_prior_boxes uses).

    :param config: model.SSDConfig
    :return: list, one per map, of {"name", "size" (locations a side), "scale" s_k, "extra_scale" sqrt(s_k s_k+1)
        (the extra square prior), "aspect_ratios" [1, r, 1/r, ...] (width / height)}; scales are fractions of the
        input side
    """
    scales = [fmap.scale for fmap in config.feature_maps] + [config.last_scale]
    shapes = []
    for k, fmap in enumerate(config.feature_maps):
        ratios = [1.0]
        for ratio in fmap.aspect_ratios:
            ratios += [float(ratio), 1.0 / ratio]
        shapes.append({"name": fmap.name, "size": fmap.size, "scale": fmap.scale,
                       "extra_scale": (scales[k] * scales[k + 1]) ** 0.5, "aspect_ratios": ratios})
    return shapes


def _prior_grids(priors_cxcy, config):
    """Cut the priors into their feature maps, each a grid of locations with the same shapes at every location.

    Relies on create_prior_boxes' order (location-major, row by row, one map after the other); the centres are read
    from the priors themselves, so a ``step`` or clamped centres (NVIDIA's) are taken as they are.

    :param priors_cxcy: (n_priors, 4) the priors, fractional (cx, cy, w, h)
    :param config: the model.SSDConfig they were made from
    :return: list of (first prior index, map size k, shapes per location, x centres (k,), y centres (k,))
    :raises ValueError: when the priors are not the config's
    """
    grids, offset = [], 0
    for fmap in config.feature_maps:
        n_shapes = model.priors_per_location(fmap)
        n = fmap.size ** 2 * n_shapes
        block = priors_cxcy[offset:offset + n].reshape(fmap.size, fmap.size, n_shapes, 4)
        grids.append((offset, fmap.size, n_shapes, block[0, :, 0, 0].contiguous(), block[:, 0, 0, 1].contiguous()))
        offset += n
    if offset != len(priors_cxcy):
        raise ValueError(f"{len(priors_cxcy)} priors, but the config makes {offset}")
    return grids


def _nearest(centres, values):
    """Index of the nearest of sorted ``centres`` (k,) to each of ``values`` (n,): (n,) int64."""
    if len(centres) == 1:
        return torch.zeros(len(values), dtype=torch.int64)
    right = torch.searchsorted(centres, values).clamp(1, len(centres) - 1)
    left = right - 1
    return torch.where(values - centres[left] <= centres[right] - values, left, right)


def _paired_iou(boxes_1, boxes_2):
    """IoU of each box with its partner: boxes_1 (..., 4) and boxes_2 (..., 4), (x1, y1, x2, y2) -> (...)."""
    top_left = torch.maximum(boxes_1[..., :2], boxes_2[..., :2])
    bottom_right = torch.minimum(boxes_1[..., 2:], boxes_2[..., 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_1 = (boxes_1[..., 2] - boxes_1[..., 0]) * (boxes_1[..., 3] - boxes_1[..., 1])
    area_2 = (boxes_2[..., 2] - boxes_2[..., 0]) * (boxes_2[..., 3] - boxes_2[..., 1])
    return intersection / (area_1 + area_2 - intersection)


def best_prior_overlaps(boxes, priors_cxcy, config):
    """The best IoU of each object with any prior, and that prior, from one candidate per feature map and shape.

    Exactly what :func:`best_prior_overlaps_all_pairs` gives (see the module's docstring for why), without the
    (n_objects, n_priors) matrix.

    :param boxes: (n, 4) objects, (x1, y1, x2, y2) as fractions of the image (= of the network's square input)
    :param priors_cxcy: (n_priors, 4) the priors of ``config`` (model.create_prior_boxes), fractional (cx, cy, w, h)
    :param config: the model.SSDConfig of the priors
    :return: (best IoU (n,) float32, index of the best prior (n,) int64); (0,) tensors for no boxes
    """
    boxes = boxes.float().reshape(-1, 4)
    priors_xy = box_convert(priors_cxcy.float(), "cxcywh", "xyxy")
    centre_x, centre_y = ((boxes[:, 0] + boxes[:, 2]) / 2).contiguous(), ((boxes[:, 1] + boxes[:, 3]) / 2).contiguous()
    best = torch.full((len(boxes),), -1.0)
    best_index = torch.zeros(len(boxes), dtype=torch.int64)
    for offset, size, n_shapes, x_centres, y_centres in _prior_grids(priors_cxcy.float(), config):
        location = _nearest(y_centres, centre_y) * size + _nearest(x_centres, centre_x)
        candidates = offset + location[:, None] * n_shapes + torch.arange(n_shapes)  # (n, n_shapes)
        overlaps, which = _paired_iou(boxes[:, None, :], priors_xy[candidates]).max(dim=1)
        better = overlaps > best
        best = torch.where(better, overlaps, best)
        best_index = torch.where(better, candidates.gather(1, which[:, None])[:, 0], best_index)
    return best.clamp(min=0.0), best_index


def best_prior_overlaps_all_pairs(boxes, priors_cxcy, pairs_per_chunk=PAIRS_PER_CHUNK):
    """The definition of :func:`best_prior_overlaps`: torchvision.ops.box_iou of every object with every prior.

    :param boxes: (n, 4) objects, fractional (x1, y1, x2, y2)
    :param priors_cxcy: (n_priors, 4) fractional (cx, cy, w, h)
    :param pairs_per_chunk: objects x priors per box_iou call (bounds the memory)
    :return: (best IoU (n,), index of the best prior (n,))
    """
    boxes = boxes.float().reshape(-1, 4)
    priors_xy = box_convert(priors_cxcy.float(), "cxcywh", "xyxy")
    chunk = max(1, pairs_per_chunk // len(priors_xy))
    best, best_index = [torch.zeros(0)], [torch.zeros(0, dtype=torch.int64)]
    for start in range(0, len(boxes), chunk):
        overlaps, index = box_iou(boxes[start:start + chunk], priors_xy).max(dim=1)
        best.append(overlaps)
        best_index.append(index)
    return torch.cat(best), torch.cat(best_index)


def read_lists(data_folder):
    """The lists create_data_lists.py wrote: every split that is there (TRAIN, VAL, TEST), and the label map.

    :param data_folder: the lists' folder
    :return: ({split: (image paths resolved against the folder, objects as in *_objects.json)}, label map)
    :raises FileNotFoundError: naming label_map.json when it is missing
    :raises ValueError: naming the list whose image and object lists differ in length
    """
    path = label_map_path(data_folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (run create_data_lists.py to make the data lists)")
    label_map = read_json(path)
    lists = {}
    for split in SPLITS:
        if not has_split(data_folder, split):
            continue
        images = [os.path.normpath(os.path.join(data_folder, image))
                  for image in read_json(images_list_path(data_folder, split))]
        objects = read_json(objects_list_path(data_folder, split))
        if len(images) != len(objects):
            raise ValueError(f"{objects_list_path(data_folder, split)}: {len(objects)} entries for "
                             f"{len(images)} images in {images_list_path(data_folder, split)}")
        lists[split] = (images, objects)
    return lists, label_map


def box_fractions(images, objects, image_sizes=None):
    """Every object's box as fractions of its image, with its label.

    :param images: image paths of one split
    :param objects: their objects, as in *_objects.json (boxes in pixels, 0-based edges)
    :param image_sizes: (width, height) of each image in pixels; None: read from the image headers (upright, as
        images.load_image reads them)
    :return: (boxes (n, 4) float64 fractional (x1, y1, x2, y2), labels (n,) int64)
    :raises ssd_support.images.UnreadableImageError: naming an image that cannot be read
    """
    boxes, labels = [], []
    for index, (path, image_objects) in enumerate(zip(images, objects)):
        if not image_objects["labels"]:
            continue
        width, height = upright_image_size(path) if image_sizes is None else image_sizes[index]
        scale = torch.tensor([width, height, width, height], dtype=torch.float64)
        boxes.append(torch.tensor(image_objects["boxes"], dtype=torch.float64).reshape(-1, 4) / scale)
        labels.append(torch.tensor(image_objects["labels"], dtype=torch.int64))
    if not boxes:
        return torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(boxes), torch.cat(labels)


def _median(values):
    """The median of a 1-D tensor as a float (the lower middle for an even count, torch.median's), None if empty."""
    return float(values.median()) if len(values) else None


def _share(part, whole):
    """part / whole, None when whole is 0 (JSON null: no objects, no coverage)."""
    return part / whole if whole else None


def shape_measures(boxes):
    """Width, height, scale sqrt(w h) and aspect ratio w / h of fractional boxes, as the network sees them.

    :param boxes: (n, 4) fractional (x1, y1, x2, y2)
    :return: {"width", "height", "scale", "aspect_ratio", "centre_x", "centre_y"}, each (n,) float64; width, height,
        scale and centres are fractions of the (square) network input, the prior scales' unit
    """
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return {"width": width, "height": height, "scale": (width * height).sqrt(), "aspect_ratio": width / height,
            "centre_x": (boxes[:, 0] + boxes[:, 2]) / 2, "centre_y": (boxes[:, 1] + boxes[:, 3]) / 2}


def tiled_boxes(boxes, tiles):
    """Each object as the network sees it when its image is cut into tiles x tiles equal tiles, each resized to the
    network's input: the tile holding the object's centre, the box clipped to that tile (an object across a tile
    border keeps only its part in that tile, as non-overlapping tiles would cut it).

    :param boxes: (n, 4) fractional (x1, y1, x2, y2) of the whole image
    :param tiles: tiles per side
    :return: (n, 4) fractional (x1, y1, x2, y2) of its tile: the box ``tiles`` times larger, same aspect ratio
    """
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    origins = (centres * tiles).floor().clamp(0, tiles - 1)  # (n, 2) the tile's column and row
    return (boxes * tiles - origins.repeat(1, 2)).clamp(0.0, 1.0)


def _smallest_scale(config):
    """The smallest prior scale s_k of a config, a fraction of the input side."""
    return min(fmap.scale for fmap in config.feature_maps)


def fitting_advice(median_scale, median_ratio, config, better=None, tiles=None):
    """What would fit a class's poorly covered objects, in a few words.

    :param median_scale: their median sqrt(w h), a fraction of the input side
    :param median_ratio: their median w / h
    :param config: the network's model.SSDConfig
    :param better: the other networks whose priors cover more of the class's objects than this one's, most first:
        [{"network" (its name), "options" (how to train it), "coverage"}] (measured: :func:`compute_statistics`)
    :param tiles: None, or the measured coverage of the class's poorly covered objects by this network when every
        image is cut into tiles: {"network", "tiles" (per side), "coverage"}
    :return: a phrase naming the scale or aspect ratio they would need against the priors' range, then the better
        network and the tiles, with their coverage
    """
    scales = [fmap.scale for fmap in config.feature_maps]
    largest = (scales[-1] * config.last_scale) ** 0.5  # the last map's extra square prior
    ratios = [r for fmap in config.feature_maps for r in fmap.aspect_ratios]
    widest = max(ratios, default=1)
    side = config.image_size
    if median_scale < min(scales):
        advice = (f"a prior scale near {median_scale:.3g} ({median_scale * side:.1f} px at {side}x{side}) would fit "
                  f"them; the smallest is {min(scales):.3g} ({min(scales) * side:.0f} px)")
    elif median_scale > largest:
        advice = f"a prior scale near {median_scale:.3g} would fit them; the largest is {largest:.3g}"
    elif median_ratio > widest or median_ratio < 1 / widest:
        advice = (f"a prior aspect ratio near {median_ratio:.3g} (w/h) would fit them; the priors' go from "
                  f"1/{widest:g} to {widest:g}")
    else:
        advice = "within the priors' scales and aspect ratios: they fall between the prior scales or centres"
    if better:
        advice += "; " + ", ".join(f"the {other['network']} ({other['options']}) covers {100 * other['coverage']:.0f}%"
                                   for other in better) + " of the class's objects"
    if tiles is not None:
        advice += (f"; smaller than every network's smallest prior: cut into {tiles['tiles']} x {tiles['tiles']} "
                   f"tiles (objects {tiles['tiles']} times larger in the input), the {tiles['network']} covers "
                   f"{100 * tiles['coverage']:.0f}% of those not covered")
    return advice


def _coverage_entry(objects, covered):
    """{"objects", "covered", "coverage"} of a group of objects."""
    return {"objects": int(objects), "covered": int(covered), "coverage": _share(int(covered), int(objects))}


def _same_priors(config_1, config_2):
    """Whether two configs make the same priors (then one of them is no alternative to the other)."""
    priors_1, priors_2 = model.create_prior_boxes(config_1), model.create_prior_boxes(config_2)
    return priors_1.shape == priors_2.shape and torch.equal(priors_1, priors_2)


def compute_statistics(lists, label_map, split_counts, config, image_sizes=None, alternatives=None):
    """Everything statistics.json holds, and the per-object values the figure draws.

    :param lists: {split: (image paths, objects)} (:func:`read_lists`)
    :param label_map: {name: label}, "background" 0
    :param split_counts: {split: ssd_support.data_lists.split_statistics(objects, label_map)}, the counts printed and
        stored per split and class
    :param config: the network the report describes: a CoverageNetwork (:func:`coverage_network`), or a bare
        model.SSDConfig (its priors: model.create_prior_boxes)
    :param image_sizes: {split: [(width, height), ...]} in pixels, or None to read the image headers
    :param alternatives: the other networks measured for the advice (CoverageNetwork list; default
        :func:`alternative_networks`, those with the same priors as ``config`` left out)
    :return: (statistics, objects): statistics is the JSON document described in :func:`write_data_statistics`;
        objects is {"split" (n,) split index into the statistics' "splits" order, "label" (n,), "best_iou" (n,),
        and the :func:`shape_measures`, "config" the network's SSDConfig} for the figure
    """
    network = config if isinstance(config, CoverageNetwork) else _network_of_config(config)
    config = network.config
    if alternatives is None:
        alternatives = [other for other in alternative_networks() if not _same_priors(other.config, config)]
    priors = model.create_prior_boxes(config)
    classes = [name for name in label_map if name != "background"]
    split_names = list(lists)
    statistics = {
        "network": {"name": f"SSD{config.image_size}", "description": network.name, "base": network.base,
                    "image_size": config.image_size, "priors_from": network.priors_from, "priors": len(priors),
                    "iou_threshold": COVERAGE_IOU, "feature_maps": prior_shapes(config)},
        "well_covered": WELL_COVERED,
        "splits": {},
    }
    parts = {"split": [], "label": [], "best_iou": [], "boxes": []}
    for index, split in enumerate(split_names):
        images, objects = lists[split]
        boxes, labels = box_fractions(images, objects, None if image_sizes is None else image_sizes[split])
        best_iou, _ = best_prior_overlaps(boxes, priors, config)
        covered = best_iou >= COVERAGE_IOU
        counts = {**split_counts[split], "per_class": {name: dict(entry) for name, entry in
                                                       split_counts[split]["per_class"].items()}}
        counts.update({key: value for key, value in _coverage_entry(len(labels), covered.sum()).items()
                       if key != "objects"})
        for name in classes:
            of_class = labels == label_map[name]
            entry = _coverage_entry(of_class.sum(), (covered & of_class).sum())
            counts["per_class"][name].update(covered=entry["covered"], coverage=entry["coverage"])
        statistics["splits"][split] = counts
        parts["split"].append(torch.full((len(labels),), index))
        parts["label"].append(labels)
        parts["best_iou"].append(best_iou.double())
        parts["boxes"].append(boxes)

    boxes = torch.cat(parts["boxes"]) if parts["boxes"] else torch.zeros(0, 4, dtype=torch.float64)
    per_object = {key: torch.cat(parts[key]) if parts[key] else torch.zeros(0)
                  for key in ("split", "label", "best_iou")}
    per_object.update(shape_measures(boxes))
    per_object["boxes"] = boxes
    # Every object against every alternative's priors: a few hundredths of a second each for 40,000 objects.
    others = [(other, best_prior_overlaps(boxes, model.create_prior_boxes(other.config), other.config)[0].double()
               >= COVERAGE_IOU) for other in alternatives]
    statistics["alternatives"] = [
        {"network": other.name, "options": other.options, "priors": len(model.create_prior_boxes(other.config)),
         **_coverage_entry(len(covered), covered.sum())} for other, covered in others]
    statistics["all_splits"] = _all_splits_coverage(per_object, classes, label_map, network, others)
    statistics["poorly_covered_classes"] = [
        {"class": name, "objects": entry["objects"], "coverage": entry["coverage"],
         "poorly_covered": entry["poorly_covered"]["objects"],
         **{key: entry["poorly_covered"][key] for key in ("median_scale", "median_aspect_ratio", "advice",
                                                          "better_networks", "tiles")}}
        for name, entry in statistics["all_splits"]["per_class"].items()
        if entry["coverage"] is not None and entry["coverage"] < WELL_COVERED]
    statistics["classes_without_objects"] = [name for name, entry in statistics["all_splits"]["per_class"].items()
                                             if entry["objects"] == 0]
    quantiles = torch.tensor(QUANTILES, dtype=torch.float64)
    statistics["box_shapes"] = {"quantiles": list(QUANTILES), **{
        key: (per_object[key].quantile(quantiles).tolist() if len(boxes) else None)
        for key in ("width", "height", "scale", "aspect_ratio")}}
    per_object["split_names"] = split_names
    per_object["class_names"] = classes
    per_object["config"] = config
    return statistics, per_object


def _tiled_coverage(boxes, network):
    """The best coverage of ``boxes`` by ``network`` over the tilings of TILE_COUNTS: {"network", "tiles",
    "coverage"} (the fewest tiles among equals)."""
    priors = model.create_prior_boxes(network.config)
    best = None
    for tiles in TILE_COUNTS:
        covered = best_prior_overlaps(tiled_boxes(boxes, tiles), priors, network.config)[0] >= COVERAGE_IOU
        coverage = float(covered.double().mean())
        if best is None or coverage > best["coverage"]:
            best = {"network": network.name, "tiles": tiles, "coverage": coverage}
    return best


def _all_splits_coverage(per_object, classes, label_map, network, others):
    """Coverage over the objects of all splits together, per class, with what fits the poorly covered ones: the
    other networks that cover more of the class (``others``: [(CoverageNetwork, covered (n,) bool)]), and tiles
    when its poorly covered objects are smaller than every network's smallest prior."""
    covered = per_object["best_iou"] >= COVERAGE_IOU
    result = _coverage_entry(len(covered), covered.sum())
    result["per_class"] = {}
    smallest = min(_smallest_scale(other.config) for other in [network] + [other for other, _ in others])
    for name in classes:
        of_class = per_object["label"] == label_map[name]
        entry = _coverage_entry(of_class.sum(), (covered & of_class).sum())
        entry["median_best_iou"] = _median(per_object["best_iou"][of_class])
        entry["other_networks"] = {other.name: _coverage_entry(of_class.sum(), (other_covered & of_class).sum())
                                   ["coverage"] for other, other_covered in others}
        poor = of_class & ~covered
        median_scale = _median(per_object["scale"][poor])
        median_ratio = _median(per_object["aspect_ratio"][poor])
        better, tiles = [], None
        if median_scale is not None:
            better = sorted(({"network": other.name, "options": other.options,
                              "coverage": entry["other_networks"][other.name]} for other, _ in others
                             if entry["other_networks"][other.name] > entry["coverage"]),
                            key=lambda other: -other["coverage"])  # stable: the order of alternative_networks
            best_coverage = max([entry["coverage"]] + list(entry["other_networks"].values()))
            if best_coverage < WELL_COVERED and median_scale < smallest:
                tiles = _tiled_coverage(per_object["boxes"][poor], network)
        entry["poorly_covered"] = {"objects": int(poor.sum()), "median_scale": median_scale,
                                   "median_aspect_ratio": median_ratio, "better_networks": better, "tiles": tiles,
                                   "advice": None if median_scale is None else
                                   fitting_advice(median_scale, median_ratio, network.config, better, tiles)}
        result["per_class"][name] = entry
    return result


def summary_lines(statistics):
    """The printed summary of the coverage: one line overall, one for the other networks, one per class under
    WELL_COVERED, one naming the classes without objects.

    :param statistics: the statistics.json document (:func:`compute_statistics`)
    :return: list of str
    """
    network, overall = statistics["network"], statistics["all_splits"]
    name = network.get("description", network["name"])
    if overall["coverage"] is None:
        return [f"Prior coverage ({name}): no objects."]
    lines = [f"Prior coverage ({name}, {network['priors']} priors; an object is covered when its best IoU "
             f"with a prior is at least {network['iou_threshold']:g}): {100 * overall['coverage']:.1f}% of "
             f"{overall['objects']} objects, all splits."]
    others = statistics.get("alternatives", [])
    if others:
        lines.append("  the same objects against other networks' priors: " + "; ".join(
            f"{other['network']} ({other['options']}): {100 * other['coverage']:.1f}%" for other in others))
    poor = statistics["poorly_covered_classes"]
    empty = statistics.get("classes_without_objects", [])
    well = f"{100 * statistics['well_covered']:.0f}%"
    if not poor:
        lines.append(f"Every class is at least {well} covered." if not empty else
                     f"Every class with objects is at least {well} covered.")
    for entry in poor:
        lines.append(f"  under {well}: {entry['class']}: "
                     f"{100 * entry['coverage']:.1f}% of {entry['objects']} objects covered; {entry['poorly_covered']} "
                     f"not, of median size {entry['median_scale']:.3g} (sqrt(w h) / image side) and aspect ratio "
                     f"{entry['median_aspect_ratio']:.3g}: {entry['advice']}")
    if empty:
        lines.append(f"  no objects (nothing to cover, nothing to learn): {', '.join(empty)}")
    return lines


def _plot_objects_per_class(axis, statistics, classes, split_names, label_size):
    """Horizontal bars: each class's objects, the splits stacked."""
    positions = np.arange(len(classes))
    left = np.zeros(len(classes))
    for split in split_names:
        counts = np.array([statistics["splits"][split]["per_class"][name]["objects"] for name in classes])
        axis.barh(positions, counts, left=left, label=split)
        left += counts
    axis.set_yticks(positions, classes, fontsize=label_size)
    axis.invert_yaxis()
    axis.set_xlim(0, max(1.0, float(left.max(initial=0))) * 1.25)  # room for the legend
    axis.set_xlabel("objects")
    axis.set_title("Objects per class")
    axis.legend(fontsize=8, loc="upper right")


def _plot_coverage(axis, statistics, classes, label_size):
    """Horizontal bars: each class's prior coverage (all splits), red under well_covered, with its share written."""
    network, per_class = statistics["network"], statistics["all_splits"]["per_class"]
    positions = np.arange(len(classes))
    coverage = np.array([per_class[name]["coverage"] or 0.0 for name in classes])
    # A class without objects is neither covered nor poorly covered: no bar (its "no objects" is written).
    axis.barh(positions, coverage, color=["tab:gray" if per_class[name]["coverage"] is None else "tab:red"
                                          if value < statistics["well_covered"] else "tab:blue"
                                          for name, value in zip(classes, coverage)])
    axis.axvline(statistics["well_covered"], color="black", linestyle="--", linewidth=1,
                 label=f"{100 * statistics['well_covered']:.0f}%")
    if len(classes) <= 30:  # each bar's share and count, where they still fit
        for position, name in zip(positions, classes):
            entry = per_class[name]
            text = ("no objects" if entry["coverage"] is None
                    else f"{100 * entry['coverage']:.0f}% of {entry['objects']}")
            axis.text(0.01, position, text, va="center", fontsize=label_size)
    axis.set_yticks(positions, classes, fontsize=label_size)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel(f"share of objects with a prior at IoU >= {network['iou_threshold']:g}")
    title = f"Prior coverage ({network.get('description', network['name'])}, {network['priors']} priors)"
    axis.set_title(title, fontsize=None if len(title) <= 45 else 8)  # a --priors-from path can be long
    axis.legend(fontsize=8, loc="lower right")


def _plot_widths_and_heights(axis, per_object, network, smallest):
    """Log-log scatter of box width x height (a seeded sample of MAX_SCATTER_POINTS at most), covered objects blue,
    the others red, with the (w, h) of every prior shape (capped at 1, as create_prior_boxes caps them)."""
    width, height = per_object["width"].numpy(), per_object["height"].numpy()
    covered = per_object["best_iou"].numpy() >= network["iou_threshold"]
    shown = np.arange(len(width))
    if len(shown) > MAX_SCATTER_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(len(shown), MAX_SCATTER_POINTS, replace=False))
    for mask, colour, name in ((covered[shown], "tab:blue", "covered"), (~covered[shown], "tab:red", "not covered")):
        axis.scatter(width[shown][mask], height[shown][mask], s=3 if len(shown) > 2000 else 10, alpha=0.5,
                     color=colour, linewidths=0, label=name, rasterized=True)
    prior_sizes = model.create_prior_boxes(per_object["config"])[:, 2:].unique(dim=0).numpy()
    axis.scatter(prior_sizes[:, 0], prior_sizes[:, 1], marker="x", s=25, color="black", label="priors")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlim(smallest * 0.8, 1.1)
    axis.set_ylim(smallest * 0.8, 1.1)
    axis.set_xlabel("box width / image width")
    axis.set_ylabel("box height / image height")
    axis.set_title("Box sizes (in the resized input)")
    axis.legend(fontsize=8, loc="lower right", markerscale=2)


def _plot_sizes(axis, per_object, network, smallest):
    """Histogram of the box sizes sqrt(w h) on a log axis, a line at each map's prior scale s_k."""
    axis.hist(per_object["scale"].numpy(), bins=np.geomspace(smallest * 0.8, 1.1, 50), color="tab:gray")
    for fmap in network["feature_maps"]:
        axis.axvline(fmap["scale"], color="black", linewidth=1)
        axis.text(fmap["scale"], 1.0, fmap["name"], rotation=90, va="top", ha="right", fontsize=7,
                  transform=axis.get_xaxis_transform())
    axis.set_xscale("log")
    axis.set_xlabel("box size sqrt(w h) / image side; lines: prior scales s_k")
    axis.set_ylabel("objects")
    axis.set_title("Box sizes against the prior scales")


def _plot_aspect_ratios(axis, per_object, network):
    """Histogram of the box aspect ratios w / h on a log axis, a line at each of the priors' ratios."""
    from matplotlib.ticker import NullLocator

    ratio = per_object["aspect_ratio"].numpy()
    ratios = sorted({r for fmap in network["feature_maps"] for r in fmap["aspect_ratios"]})
    # The axis spans the priors' ratios and 99% of the boxes'; the rarer extremes are counted in the end bins.
    low = min([ratios[0] / 2] + ([float(np.quantile(ratio, 0.005))] if len(ratio) else []))
    high = max([ratios[-1] * 2] + ([float(np.quantile(ratio, 0.995))] if len(ratio) else []))
    axis.hist(np.clip(ratio, low, high), bins=np.geomspace(low, high, 50), color="tab:gray")
    for r in ratios:
        axis.axvline(r, color="black", linewidth=1)
    axis.set_xscale("log")
    axis.set_xticks(ratios, [f"{r:g}" if r >= 1 else f"1/{1 / r:g}" for r in ratios])
    axis.xaxis.set_minor_locator(NullLocator())  # the log axis' own minor labels would cover the ratios
    axis.set_xlabel("aspect ratio w / h in the resized input; lines: the priors' ratios")
    axis.set_ylabel("objects")
    axis.set_title("Box shapes against the prior aspect ratios")


def _plot_centres(figure, axis, per_object):
    """Heat map of the box centres, 32 x 32 cells over the image, y downwards as in the image."""
    heat, _, _ = np.histogram2d(per_object["centre_y"].numpy(), per_object["centre_x"].numpy(), bins=32,
                                range=[[0, 1], [0, 1]])
    image = axis.imshow(heat, extent=(0, 1, 1, 0), cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=axis, label="objects")
    axis.set_xlabel("centre x / image width")
    axis.set_ylabel("centre y / image height")
    axis.set_title("Box centres")


def plot_statistics(statistics, per_object, path):
    """Draw statistics.png: objects and coverage per class, width x height, sizes, aspect ratios, centres.

    The prior scales (model.SSDConfig's s_k) and aspect ratios are drawn over the box shapes. The figure is
    FIGURE_SIZE inches at FIGURE_DPI (1200 x 720 pixels), written atomically.

    :param statistics: the statistics.json document
    :param per_object: the per-object values of :func:`compute_statistics`
    :param path: the PNG file to write
    """
    # Imported here, as eval.py does: only writing the figure needs matplotlib. Figure + the Agg canvas, not
    # pyplot: no global backend is chosen and no figure is left open.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3)
    network, classes = statistics["network"], per_object["class_names"]
    label_size = max(4, min(9, 360 // max(1, len(classes))))  # 80 COCO classes still fit their bar charts
    # The size axes start below both the smallest prior and the smallest box side, so that neither is cut off.
    width, height = per_object["width"], per_object["height"]
    smallest = min([network["feature_maps"][0]["scale"] / 2]
                   + ([float(width.min()), float(height.min())] if len(width) else []))

    _plot_objects_per_class(axes[0, 0], statistics, classes, per_object["split_names"], label_size)
    _plot_coverage(axes[0, 1], statistics, classes, label_size)
    _plot_widths_and_heights(axes[0, 2], per_object, network, smallest)
    _plot_sizes(axes[1, 0], per_object, network, smallest)
    _plot_aspect_ratios(axes[1, 1], per_object, network)
    _plot_centres(figure, axes[1, 2], per_object)
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=FIGURE_DPI), binary=True)


def write_data_statistics(data_folder, split_statistics, image_size=300, out=None, image_sizes=None, network=None):
    """Write statistics.json and statistics.png beside the lists and print the coverage summary.

    statistics.json (plain JSON, NaN written as null), its keys:

    - ``network``: the network whose priors the coverage describes: {"name" "SSD300"/"SSD512", "description" (as
      the summary names it: "VGG16 SSD300", "ResNet-50 SSD300", "VGG16 SSD512", "... with the priors of PATH"),
      "base", "image_size", "priors_from" (the --priors-from checkpoint, or null), "priors" (8732 / 24564),
      "iou_threshold" 0.5, "feature_maps": [{"name", "size", "scale", "extra_scale", "aspect_ratios"}]}
      (:func:`prior_shapes`);
    - ``alternatives``: [{"network", "options" (how to train it), "priors", "objects", "covered", "coverage"}]: the
      same objects against the priors of every other network the project trains (:func:`alternative_networks`);
    - ``well_covered``: 0.9, the coverage under which a class is named;
    - ``splits``: {split: split_statistics's {"images", "objects", "difficult", "empty_images", "per_class": {class:
      {"images", "objects", "difficult", "covered", "coverage"}}} plus "covered" and "coverage" of the split}, for
      each split the folder has (TRAIN, VAL, TEST); "covered" counts the objects whose best IoU with a prior is at
      least iou_threshold, "coverage" is covered / objects (null without objects);
    - ``all_splits``: {"objects", "covered", "coverage", "per_class": {class: {"objects", "covered", "coverage",
      "median_best_iou", "other_networks": {network: coverage}, "poorly_covered": {"objects", "median_scale",
      "median_aspect_ratio", "better_networks" ([{"network", "options", "coverage"}] of the other networks that
      cover more of the class, most first), "tiles" ({"network", "tiles" per side, "coverage" of these
      objects} when they are smaller than every network's smallest prior; else null), "advice"}}}}, the splits together; scales
      are sqrt(w h) as fractions of the image side, ratios w / h in the resized input;
    - ``poorly_covered_classes``: [{"class", "objects", "coverage", "poorly_covered" (objects not covered),
      "median_scale", "median_aspect_ratio" (of those), "better_networks", "tiles", "advice"}] for each class under
      well_covered (all splits), as printed;
    - ``classes_without_objects``: the classes of the label map with no object in any split (neither covered nor
      poorly covered: their coverage is null);
    - ``box_shapes``: {"quantiles": [0.05, 0.25, 0.5, 0.75, 0.95], "width", "height", "scale", "aspect_ratio": the
      quantiles of each over all objects (fractions of the image; null without objects)}.

    :param data_folder: the folder of the lists (create_data_lists.py's --output)
    :param split_statistics: ssd_support.data_lists.split_statistics, ``(objects, label_map) -> counts``: passed
        in, so that the counts are the ones create_data_lists.py prints
    :param image_size: 300 (SSD300's priors) or 512 (SSD512's), of the VGG16 network; ignored with ``network``
    :param out: where to print the summary (default stdout)
    :param image_sizes: {split: [(width, height), ...]} in pixels, or None to read them from the image headers
    :param network: the network to describe (:func:`coverage_network`: --base, --image-size, --priors-from);
        None: the VGG16 SSD of ``image_size``
    :return: the statistics.json document
    :raises FileNotFoundError, ValueError: naming a list that is missing or inconsistent
    """
    out = out or sys.stdout
    network = network or coverage_network("vgg16", image_size)
    lists, label_map = read_lists(data_folder)
    counts = {split: split_statistics(objects, label_map) for split, (_, objects) in lists.items()}
    statistics, per_object = compute_statistics(lists, label_map, counts, network, image_sizes)
    write_json_atomically(os.path.join(data_folder, STATISTICS_JSON), statistics, indent=1)
    plot_statistics(statistics, per_object, os.path.join(data_folder, STATISTICS_PNG))
    for line in summary_lines(statistics):
        print(line, file=out)
    print(f"Wrote {STATISTICS_JSON} and {STATISTICS_PNG} to {os.path.abspath(data_folder)}", file=out)
    return statistics
