"""torch.hub entry points: load a trained SSD, as a torchvision-style detector, in one line.

    import torch
    model = torch.hub.load("path/to/this/repository", "ssd300", source="local",
                           checkpoint="checkpoints/ssd300_iter_120000.pt").eval()
    model = torch.hub.load("path/to/this/repository", "ssd300", source="local", weights="COCO_V1").eval()
    predictions = model([image])  # image: (3, H, W) float in [0, 1]; boxes come back in its pixels

(``weights="COCO_V1"``: torchvision's COCO SSD300 for ``ssd300``, NVIDIA's for ``ssd300_resnet50``, downloaded
on first use and converted by convert_weights.py; or a converted checkpoint, ``checkpoint=...``.)

(or ``torch.hub.load("OWNER/REPO", "ssd300", checkpoint=...)`` from a GitHub copy, where
``torch.hub.list`` and ``torch.hub.help`` show the entry points and their docstrings). Each entry point
returns a ``detector.SSDDetector``.
"""

import os
import sys

# torch.hub checks that these modules import before it loads an entry point; cv2 (pip: opencv-python-headless) runs
# the photometric augmentations of utils.py, which the networks' module imports.
dependencies = ["torch", "torchvision", "cv2"]

_REPO_DIR = os.path.dirname(os.path.realpath(__file__))


def _builders():
    """This repository's ``ssd_support.detector`` module, checked to be this repository's.

    torch.hub imports a repository's modules by their plain names (``ssd_support``, ``model``, ``utils``). When the calling
    program has already imported modules of those names from somewhere else, Python would hand those back;
    say so rather than fail in an obscure way.
    """
    for name in ("ssd_support", "model", "utils"):
        module = sys.modules.get(name)
        location = os.path.dirname(os.path.realpath(getattr(module, "__file__", None) or "")) if module else None
        if name == "ssd_support" and location:
            location = os.path.dirname(location)  # the package's folder is inside the repository
        if module is not None and location != _REPO_DIR:
            raise ImportError(f"a module named {name!r} is already imported from {location or 'elsewhere'}; "
                              f"torch.hub cannot load this repository's {name} beside it (load the model "
                              "first, or in a fresh process)")
    from ssd_support import detector

    return detector


def ssd300(checkpoint=None, **kwargs):
    """SSD300 with the paper's VGG16 base, as a torchvision-style detector.

    Input: a list of (3, H, W) float images in [0, 1], any sizes. In eval mode it returns, per image, a dict
    of "boxes" (n, 4) x1y1x2y2 in that image's pixels, "labels" (n,) and "scores" (n,), best first; in
    training mode, given targets [{"boxes": (n, 4) pixels, "labels": (n,)}], the losses
    {"bbox_regression", "classification"}. ``model.label_map`` maps class names to labels. The model comes
    back in training mode, as torchvision's do: call ``.eval()`` to detect.

    :param checkpoint: path of a checkpoint written by train.py or convert_weights.py (None: a new network, to
        train, or the ``weights``)
    :param kwargs: as ``detector.ssd300_vgg16``: ``weights`` ("COCO_V1": torchvision's COCO SSD300, converted),
        ``num_classes``, ``weights_backbone`` (VGG16_Weights, default IMAGENET1K_V1, downloaded; None for random),
        ``trainable_backbone_layers`` (0-5),
        ``score_thresh=0.01``, ``nms_thresh=0.45``, ``detections_per_img=200``, ``topk_candidates=400``
    :return: a ``detector.SSDDetector``
    """
    return _builders().ssd300_vgg16(checkpoint=checkpoint, **kwargs)


def ssd300_resnet50(checkpoint=None, **kwargs):
    """SSD300 with NVIDIA's ResNet-50 base (SSD300 v1.1), as a torchvision-style detector.

    Same input and output as ``ssd300``.

    :param checkpoint: path of a checkpoint written by ``train.py --base resnet50`` or ``convert_weights.py --from
        nvidia_coco`` (None: a new network, or the ``weights``)
    :param kwargs: as ``detector.ssd300_resnet50``: ``weights`` ("COCO_V1": NVIDIA's COCO SSD300, converted;
        ``allow_pickle=True`` if its file needs unpickling), ``num_classes``, ``weights_backbone``
        (ResNet50_Weights, default IMAGENET1K_V1), ``trainable_backbone_layers``, ``score_thresh``, ``nms_thresh``,
        ``detections_per_img``, ``topk_candidates``
    :return: a ``detector.SSDDetector``
    """
    return _builders().ssd300_resnet50(checkpoint=checkpoint, **kwargs)


def ssd512(checkpoint=None, **kwargs):
    """SSD512 (512x512 input, VGG16 base), as a torchvision-style detector.

    Same input and output as ``ssd300``.

    :param checkpoint: path of a checkpoint written by ``train.py --image-size 512`` (None: a new network)
    :param kwargs: as ``detector.ssd512_vgg16`` (the arguments of ``ssd300``)
    :return: a ``detector.SSDDetector``
    """
    return _builders().ssd512_vgg16(checkpoint=checkpoint, **kwargs)
