"""Weights from elsewhere: torchvision's and NVIDIA's COCO-trained SSD300s as checkpoints of this repository,
and ``--init-from``'s copying of another checkpoint's weights by class name. ``convert_weights.py`` is the
command line of the conversions.

Two of the systems this repository follows publish SSD300s trained on COCO whose layers ours already match:

- ``torchvision_coco``: torchvision's ``ssd300_vgg16`` with ``SSD300_VGG16_Weights.COCO_V1`` (25.1 box AP on COCO
  val2017, torchvision's number). Downloaded with torchvision's weights API into torch's hub cache.
- ``nvidia_coco``: NVIDIA's SSD300 v1.1 with ResNet-50 (DeepLearningExamples), its NGC checkpoint
  ``nvidia_ssdpyt_amp_200703.pt`` (about 25 AP, NVIDIA's number). Downloaded from NGC into the same cache.

``--file PATH`` reads a local copy instead (no network). The output is an ordinary checkpoint ({"model", "config"},
``torch.load(weights_only=True)``-loadable): detect.py, eval.py, export.py, torch.hub, ``ssd300_vgg16(checkpoint=...)``
and ``train.py --init-from`` all take it. What each conversion needs beyond renaming layers:

- labels: COCO's 80 classes become labels 1..80 in category-id order, named as COCO names them (the label map
  ``create_data_lists.py --coco-json`` writes), background 0. torchvision's class head has 91 outputs (category ids
  0..90, ten of them unused "N/A"): those ten rows are dropped, so the softmax runs over 81 outputs instead of 91.
  Their logits were trained towards "never", so this changes the scores very little.
- priors: torchvision's were made by its ``DefaultBoxGenerator`` (scales 0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05,
  centres every 8, 16, 32, 64, 100, 300 pixels), not the paper's; the checkpoint's config names them
  (``config["priors"]``). NVIDIA's are exactly our ResNet-50 SSD300's (its ``dboxes300_coco``, centres clamped to
  the image).
- preprocessing: torchvision's network wants 0-255 values minus a mean, resized without antialiasing; the
  checkpoint's ``config["preprocess"]`` says so and every tool honours it. NVIDIA's wants ours (ImageNet mean/std).
- head layout: NVIDIA's heads are coordinate-major (``conv(x).view(N, 4, -1)``: channel ``c * n_defaults + d``, the
  priors of a map default box by default box); ours are location-major, prior by prior (channel ``d * 4 + c``).
  The output channels are permuted once, here.

Fine-tuning (``init_from_checkpoint``, ``train.py --init-from``) copies such weights into a network for other classes,
matching classes by name with ``LABEL_ALIASES`` for the COCO/VOC spellings.

``torchvision_ssd_to_ssd300_state_dict`` maps torchvision's ``ssd300_vgg16`` layer names to ours (both ways usable).
"""

import os
import pickle
import warnings

import torch

from model import SSD300_VGG16, VGG16_CONV_INDICES, build_ssd
from ssd_support.checkpoints import (apply_checkpoint_config, check_network_config, checkpoint_weights,
                                    configured_network, ema_message, network_config, read_checkpoint)
from utils import make_label_map


SOURCES = ("torchvision_coco", "nvidia_coco")

# torchvision's COCO SSD300 (torchvision/models/detection/ssd.py, SSD300_VGG16_Weights.COCO_V1).
TORCHVISION_COCO_FILE = "ssd300_vgg16_coco-b556d3b4.pth"
TORCHVISION_COCO_PRIORS = {"scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                           "steps": [8, 16, 32, 64, 100, 300],
                           "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]], "clip_centres": False}
# image_mean / image_std of torchvision's ssd300_vgg16 builder: on [0, 1] input, (x - mean) * 255, the 0-255
# Caffe-style input its VGG16 features were trained on. Its transform resizes without antialiasing.
TORCHVISION_COCO_PREPROCESS = {"mean": [0.48235, 0.45882, 0.40784], "std": [1 / 255, 1 / 255, 1 / 255],
                               "antialias": False}

# NVIDIA's SSD300 v1.1 checkpoint on NGC, the file torch.hub's "nvidia_ssd" entry point downloads.
NVIDIA_COCO_URL = ("https://api.ngc.nvidia.com/v2/models/nvidia/ssd_pyt_ckpt_amp/versions/20.06.0/files/"
                   "nvidia_ssdpyt_amp_200703.pt")
NVIDIA_COCO_FILE = "nvidia_ssdpyt_amp_200703.pt"
# Its ResNet-50 is torchvision's, cut after children()[:7]: conv1, bn1, relu, maxpool, layer1, layer2, layer3.
NVIDIA_BASE_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3"}
# Default boxes per location on its six maps (4, 6, 6, 6, 4, 4): ours for the same aspect ratios.
NVIDIA_MAP_NAMES = ("conv4_x", "extra1", "extra2", "extra3", "extra4", "extra5")

# The same class under its COCO and its Pascal VOC spelling: one table, used to match classes by name when
# fine-tuning COCO weights on VOC-style label maps (and back). Keys and values compare lower-cased.
LABEL_ALIASES = {
    "airplane": "aeroplane",
    "motorcycle": "motorbike",
    "couch": "sofa",
    "tv": "tvmonitor",
    "dining table": "diningtable",
    "potted plant": "pottedplant",
}


class WeightsError(ValueError):
    """A weights file that cannot be read or converted, or weights that cannot be downloaded: one line, naming
    the file (or what to download and where to put it)."""


def coco_category_names():
    """torchvision's list of COCO names by category id: index 0 "__background__", unused ids "N/A" (91 entries).

    :return: list of 91 str (torchvision's ``_COCO_CATEGORIES``, through its public weights metadata)
    """
    from torchvision.models.detection import SSD300_VGG16_Weights  # here: no torchvision work at import time

    return list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])


def coco_label_map():
    """COCO's 80 classes as labels 1..80 in category-id order, background 0: what ``create_data_lists.py
    --coco-json`` writes for an instances file, and what both converted detectors predict.

    :return: {"background": 0, "person": 1, "bicycle": 2, ..., "toothbrush": 80}
    """
    return make_label_map(name for name in coco_category_names()[1:] if name != "N/A")


def class_key(name):
    """The name a class is matched by across label maps: lower-case, COCO spellings turned into VOC's.

    :param name: a class name, e.g. "Airplane"
    :return: e.g. "aeroplane"
    """
    name = name.strip().lower()
    return LABEL_ALIASES.get(name, name)


# -------------------------------------------------------------------------------------------------------------
# Reading and downloading
# -------------------------------------------------------------------------------------------------------------


def load_weights_file(path, allow_pickle=False):
    """Read a ``torch.save``d file, without unpickling arbitrary objects unless asked to.

    :param path: the file
    :param allow_pickle: when the file holds more than tensors and plain data (``weights_only=True`` refuses it),
        load it with full unpickling, after a warning: unpickling runs whatever code the file names, so only for
        files from a source you trust
    :return: what the file holds
    :raises WeightsError: missing or unreadable file, or one that needs unpickling without ``allow_pickle``
    """
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not allow_pickle:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise WeightsError(f"{path}: holds more than weights, and loading it needs full unpickling, which runs "
                               f"code named in the file ({reason[:120]}); if you trust it, pass --allow-pickle "
                               f"(allow_pickle=True)") from None
    except Exception as error:  # truncated, not a torch file at all, ...
        raise WeightsError(f"{path}: not a readable weights file ({type(error).__name__}: "
                           f"{str(error).strip().splitlines()[0] if str(error).strip() else ''})") from None
    warnings.warn(f"{path}: unpickling the whole file (--allow-pickle); this runs any code the file names, so use it "
                  "only for files from a source you trust", stacklevel=2)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise WeightsError(f"{path}: not a readable weights file ({type(error).__name__})") from None


def cache_path(file_name):
    """Where a downloaded weights file is kept: torch's hub cache, ``<torch.hub.get_dir()>/checkpoints``.

    :param file_name: the file's name
    :return: its path there
    """
    return os.path.join(torch.hub.get_dir(), "checkpoints", file_name)


def download(url, file_name, progress=True, hash_prefix=None):
    """The local copy of a published weights file, downloaded on first use into ``cache_path(file_name)``.

    :param url: where it is published
    :param file_name: its name in the cache
    :param progress: show torch's download progress bar
    :param hash_prefix: the start of the file's SHA-256, checked after downloading (torchvision's file names
        carry it: ``ssd300_vgg16_coco-b556d3b4.pth``)
    :return: the local path
    :raises WeightsError: one line saying what to download and where to put it, when it cannot be downloaded
    """
    path = cache_path(file_name)
    if os.path.isfile(path):
        return path
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(url, path, hash_prefix=hash_prefix, progress=progress)
    except Exception as error:  # offline (URLError), proxy, disk, ...: the same advice in every case
        raise WeightsError(f"cannot download {file_name} ({type(error).__name__}); download {url} and put it at "
                           f"{path}, or pass convert_weights.py --file PATH") from None
    return path


# -------------------------------------------------------------------------------------------------------------
# The two conversions
# -------------------------------------------------------------------------------------------------------------


def torchvision_ssd_to_ssd300_state_dict(tv_state_dict):
    """Convert the state_dict of torchvision's ``ssd300_vgg16`` into an ``SSD300`` state_dict.

    The two networks are the same layers under other names (torchvision nests VGG16's modules in
    Sequentials); this maps them by name, so weights trained with either can be used by the other.
    The priors are not part of torchvision's state_dict: the ``SSD300`` priors are kept.

    :param tv_state_dict: ``torchvision.models.detection.ssd300_vgg16(...).state_dict()``
    :return: dict of the ``SSD300`` parameters (no ``priors_cxcy``; load with ``strict=False``)
    """
    names = {f"base.{name}": f"backbone.features.{index}" for name, index in VGG16_CONV_INDICES.items()
             if index < 23}  # up to conv4_3; conv5_x sits in torchvision's first "extra" block
    names.update({"base.conv5_1": "backbone.extra.0.1", "base.conv5_2": "backbone.extra.0.3",
                  "base.conv5_3": "backbone.extra.0.5", "base.conv6": "backbone.extra.0.7.1",
                  "base.conv7": "backbone.extra.0.7.3"})
    for block, conv in enumerate(("conv8", "conv9", "conv10", "conv11"), start=1):
        names[f"aux_convs.{conv}_1"] = f"backbone.extra.{block}.0"
        names[f"aux_convs.{conv}_2"] = f"backbone.extra.{block}.2"
    for i, fmap in enumerate(SSD300_VGG16.feature_maps):
        names[f"pred_convs.loc_{fmap.name}"] = f"head.regression_head.module_list.{i}"
        names[f"pred_convs.cl_{fmap.name}"] = f"head.classification_head.module_list.{i}"

    state_dict = {}
    for ours, theirs in names.items():
        state_dict[f"{ours}.weight"] = tv_state_dict[f"{theirs}.weight"]
        state_dict[f"{ours}.bias"] = tv_state_dict[f"{theirs}.bias"]
    state_dict["rescale_factors"] = tv_state_dict["backbone.scale_weight"].view(1, -1, 1, 1)
    return state_dict


def _check_keys(state_dict, required, what, where):
    """Raise WeightsError naming the first of ``required`` missing from a state_dict."""
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{where}: expected {what} (a state_dict), got {type(state_dict).__name__}")
    for key in required:
        if key not in state_dict:
            raise WeightsError(f"{where}: not {what} (no {key!r})")


def _load_into_network(network, state_dict, where):
    """Load a converted state_dict (everything but the priors), raising WeightsError on any mismatch."""
    try:
        missing, unexpected = network.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # a shape mismatch; PyTorch's first line is only a header
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise WeightsError(f"{where}: the converted weights do not fit: {lines[-1]}") from None
    missing = [key for key in missing if key != "priors_cxcy"]
    if missing or unexpected:
        raise WeightsError(f"{where}: the converted weights do not fit (missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]})")


def convert_torchvision_coco(tv_state_dict, where="torchvision weights"):
    """torchvision's COCO ``ssd300_vgg16`` state_dict as a checkpoint of this repository.

    The layers are renamed (``ssd_support.weights.torchvision_ssd_to_ssd300_state_dict``); the class head keeps the background
    and the 80 COCO classes and drops the ten unused "N/A" category ids (91 -> 81 outputs per prior; torchvision's
    head is already prior by prior, channel ``prior * 91 + category id``, as ours).

    :param tv_state_dict: ``torchvision.models.detection.ssd300_vgg16(num_classes=91).state_dict()``
    :param where: the file it came from, for error messages
    :return: {"model": SSD300 state_dict (81 classes, torchvision's priors), "config": its config, naming the
        priors (``TORCHVISION_COCO_PRIORS``) and the preprocessing (``TORCHVISION_COCO_PREPROCESS``)}
    :raises WeightsError: when the state_dict is not that of torchvision's SSD300 with 91 outputs
    """
    _check_keys(tv_state_dict, ("backbone.scale_weight", "backbone.features.0.weight",
                                "head.classification_head.module_list.0.weight"), "torchvision's ssd300_vgg16", where)
    names = coco_category_names()
    keep = [category for category, name in enumerate(names) if name != "N/A"]  # background + 80 classes
    state_dict = torchvision_ssd_to_ssd300_state_dict(tv_state_dict)
    for fmap in SSD300_VGG16.feature_maps:
        for suffix in ("weight", "bias"):
            key = f"pred_convs.cl_{fmap.name}.{suffix}"
            rows = state_dict[key]
            if rows.shape[0] % len(names):
                raise WeightsError(f"{where}: class head {key} has {rows.shape[0]} outputs, not a multiple of "
                                   f"{len(names)} (torchvision's COCO categories)")
            rows = rows.reshape(-1, len(names), *rows.shape[1:])  # (priors per location, 91, ...)
            state_dict[key] = rows[:, keep].reshape(-1, *rows.shape[2:]).clone()

    # The priors are set before the weights are loaded, so that priors_cxcy and the spec saved agree.
    network = build_ssd(len(keep), base="vgg16", image_size=300)
    network.use_priors(TORCHVISION_COCO_PRIORS)
    network.preprocess_config = dict(TORCHVISION_COCO_PREPROCESS)
    _load_into_network(network, state_dict, where)
    return {"model": network.state_dict(), "config": network_config(network, coco_label_map())}


def _nvidia_to_ours(state_dict, where):
    """Rename NVIDIA's keys and turn its coordinate-major heads into our prior-by-prior ones.

    :return: (our state_dict without priors, n_classes)
    """
    ours = {}
    n_classes = None
    for key, value in state_dict.items():
        parts = key.split(".")
        if key.startswith("feature_extractor.feature_extractor.") and parts[2] in NVIDIA_BASE_CHILDREN:
            ours[".".join(["base", NVIDIA_BASE_CHILDREN[parts[2]], *parts[3:]])] = value
        elif parts[0] == "additional_blocks":
            ours[".".join(["aux_convs.blocks", *parts[1:]])] = value
        elif parts[0] in ("loc", "conf") and len(parts) == 3:
            n_values = 4 if parts[0] == "loc" else None
            fmap = NVIDIA_MAP_NAMES[int(parts[1])]
            n_defaults = 4 if fmap in ("conv4_x", "extra4", "extra5") else 6
            if n_values is None:
                n_values = value.shape[0] // n_defaults
                n_classes = n_values
            # Their channel c * n_defaults + d holds value c of default box d; ours is d * n_values + c.
            value = value.reshape(n_values, n_defaults, *value.shape[1:]).transpose(0, 1)
            prefix = "loc" if parts[0] == "loc" else "cl"
            ours[f"pred_convs.{prefix}_{fmap}.{parts[2]}"] = value.reshape(-1, *value.shape[2:]).clone()
        elif not key.startswith("feature_extractor."):
            raise WeightsError(f"{where}: unexpected key {key!r} for NVIDIA's SSD300")
    if n_classes is None:
        raise WeightsError(f"{where}: no class head (conf.*) in NVIDIA's SSD300 weights")
    return ours, n_classes


def convert_nvidia_coco(nvidia_checkpoint, where="NVIDIA weights"):
    """NVIDIA's SSD300 v1.1 (ResNet-50) checkpoint as a checkpoint of this repository.

    Keys: ``feature_extractor.feature_extractor.N.*`` (torchvision's ResNet-50 children 0, 1, 4, 5, 6) -> ``base.*``,
    ``additional_blocks.i.*`` -> ``aux_convs.blocks.i.*`` (the same Sequential), ``loc.i`` / ``conf.i`` -> our
    prediction convolutions with their output channels reordered. Its default boxes (``dboxes300_coco``) are our
    ResNet-50 SSD300's priors and its input is ours (ImageNet mean/std), so the config names neither.

    :param nvidia_checkpoint: what its file holds: a dict with the state_dict under "model" (keys possibly
        prefixed "module." when saved from DistributedDataParallel), or the state_dict itself
    :param where: the file it came from, for error messages
    :return: {"model": state_dict of our ResNet-50 SSD300 with 81 classes, "config": its config}
    :raises WeightsError: when it is not NVIDIA's SSD300 with 81 COCO outputs
    """
    state_dict = nvidia_checkpoint.get("model", nvidia_checkpoint) if isinstance(nvidia_checkpoint, dict) else None
    if isinstance(state_dict, dict):
        state_dict = {key[len("module."):] if key.startswith("module.") else key: value
                      for key, value in state_dict.items()}
    _check_keys(state_dict, ("feature_extractor.feature_extractor.0.weight", "additional_blocks.0.0.weight",
                             "loc.0.weight", "conf.0.weight"), "NVIDIA's SSD300 checkpoint", where)
    ours, n_classes = _nvidia_to_ours(state_dict, where)
    label_map = coco_label_map()
    if n_classes != len(label_map):
        raise WeightsError(f"{where}: class head has {n_classes} outputs per default box, not COCO's "
                           f"{len(label_map)} (background + 80)")
    network = build_ssd(n_classes, base="resnet50", image_size=300)
    _load_into_network(network, ours, where)
    return {"model": network.state_dict(), "config": network_config(network, label_map)}


def converted_checkpoint(source, file=None, allow_pickle=False, progress=True):
    """A published COCO SSD300 as a checkpoint of this repository (a dict), downloaded on first use.

    :param source: "torchvision_coco" or "nvidia_coco"
    :param file: a local copy of the published file (None: download it, or take it from torch's hub cache)
    :param allow_pickle: let a file that holds more than weights be unpickled (NVIDIA's may), with a warning
    :param progress: show the download's progress bar
    :return: {"model": state_dict, "config": config}
    :raises WeightsError: one line (unknown source, unreadable file, no network)
    """
    if source == "torchvision_coco":
        if file is None:
            from torchvision.models.detection import SSD300_VGG16_Weights

            file = download(SSD300_VGG16_Weights.COCO_V1.url, TORCHVISION_COCO_FILE, progress, hash_prefix="b556d3b4")
        return convert_torchvision_coco(load_weights_file(file, allow_pickle), where=file)
    if source == "nvidia_coco":
        if file is None:
            file = download(NVIDIA_COCO_URL, NVIDIA_COCO_FILE, progress)
        return convert_nvidia_coco(load_weights_file(file, allow_pickle), where=file)
    raise WeightsError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def pretrained_network(source, file=None, allow_pickle=False, progress=True):
    """The network of ``converted_checkpoint``, ready to use: what ``ssd300_vgg16(weights="COCO_V1")`` builds on.

    :return: (network in eval mode with its ``preprocess_config``, label map {name: label})
    """
    checkpoint = converted_checkpoint(source, file, allow_pickle, progress)
    config = checkpoint["config"]
    base, image_size = configured_network(config)
    network = apply_checkpoint_config(build_ssd(config["n_classes"], base=base, image_size=image_size), config)
    network.load_state_dict(checkpoint["model"])
    return network.eval(), dict(config["label_map"])


# -------------------------------------------------------------------------------------------------------------
# Fine-tuning: start a new network from another checkpoint's weights
# -------------------------------------------------------------------------------------------------------------


def init_from_checkpoint(model, path, label_map, log=print):
    """Copy another checkpoint's weights into ``model``, a new network for the classes of ``label_map``.

    Every tensor whose name and shape match is copied. The class head is copied row by row: the background and
    each class found in both label maps (matched by ``class_key``: case and the COCO/VOC spellings of
    ``LABEL_ALIASES`` do not matter); a class the checkpoint does not know keeps the model's fresh initialization.
    The model also takes the checkpoint's priors and preprocessing (the weights were trained with them).

    :param model: an ``SSD`` of the same base and input size as the checkpoint's (any number of classes)
    :param path: a checkpoint of this repository (train.py's, or convert_weights.py's); of a ``train.py --ema`` run,
        its EMA weights are taken (``checkpoints.checkpoint_weights``; ``log`` says so in one line)
    :param label_map: {class name: label} of ``model``, background 0
    :param log: where the one-paragraph summary goes (``print``; None for silence)
    :return: {"copied": names of the tensors copied whole, "class_rows": {our class: its class in the checkpoint},
        "new_classes": our classes initialised afresh, "initialised": tensors left as they were}
    :raises ValueError: one line naming the file, for an unreadable checkpoint or one of another network
    """
    checkpoint = read_checkpoint(path)
    # A train.py --ema run's averaged weights, as detect.py, eval.py and export.py take them: its best.pt was chosen
    # by their VAL mAP.
    config, (source, which) = checkpoint["config"], checkpoint_weights(checkpoint)
    check_network_config(path, config, source, which)  # before its label map picks rows of its class heads
    if which == "ema model" and log is not None:
        log(ema_message(path, checkpoint))
    base, image_size = configured_network(config)
    if (base, image_size) != (model.base_name, model.image_size):
        raise ValueError(f"{path}: holds an SSD{image_size} with base {base}, but this network is an "
                         f"SSD{model.image_size} with base {model.base_name} (pass --base {base} --image-size "
                         f"{image_size})")
    apply_checkpoint_config(model, config)

    # Our label -> the checkpoint's label, for the rows of the class head (the background always).
    their_labels = {class_key(name): label for name, label in config["label_map"].items()}
    row_map, class_rows, new_classes = {0: 0}, {}, []
    for name, label in sorted(label_map.items(), key=lambda item: item[1]):
        if label == 0:
            continue
        their_name = next((n for n in config["label_map"] if class_key(n) == class_key(name)), None)
        if their_name is None:
            new_classes.append(name)
        else:
            row_map[label] = their_labels[class_key(name)]
            class_rows[name] = their_name

    copied, initialised = [], []
    own = model.state_dict()
    with torch.no_grad():
        for name, tensor in own.items():
            theirs = source.get(name)
            if theirs is not None:
                theirs = theirs.to(tensor.device)  # the model may already be on its GPU
            if name.startswith("pred_convs.cl_") and theirs is not None:
                n_ours, n_theirs = model.n_classes, int(config["n_classes"])
                ours_view = tensor.view(-1, n_ours, *tensor.shape[1:])
                theirs_view = theirs.view(-1, n_theirs, *theirs.shape[1:])
                if ours_view.shape[0] != theirs_view.shape[0] or ours_view.shape[2:] != theirs_view.shape[2:]:
                    initialised.append(name)
                    continue
                for our_label, their_label in row_map.items():
                    ours_view[:, our_label] = theirs_view[:, their_label]
                copied.append(name + f" (rows of {len(row_map)} classes)")
            elif theirs is not None and theirs.shape == tensor.shape:
                tensor.copy_(theirs)
                if name != "priors_cxcy":
                    copied.append(name)
            else:
                initialised.append(name)
    if log is not None:
        renamed = [f"{ours} (from {theirs})" if ours != theirs else ours for ours, theirs in class_rows.items()]
        log(f"--init-from {path}: copied {len(copied)} of {len(own) - 1} tensors (class heads row by row)"
            + (f"; initialised afresh: {', '.join(initialised)}" if initialised else "") + ".\n"
            f"  class rows copied: background, {', '.join(renamed) or 'no class'}\n"
            f"  new classes (fresh rows): {', '.join(new_classes) or 'none'}")
    return {"copied": copied, "class_rows": class_rows, "new_classes": new_classes, "initialised": initialised}
