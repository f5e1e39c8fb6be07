"""SSDDetector: any of this repository's SSD networks behind torchvision's detection interface.

torchvision's detection models share one calling convention: a list of [0, 1] images of any sizes in;
in training mode a dict of losses out, in eval mode one dict of boxes (in each image's own pixels),
labels and scores per image. ``SSDDetector`` gives our networks (``model.SSD300``, ``SSD512``, the
ResNet-50 SSD300) that convention, and ``ssd300_vgg16``, ``ssd300_resnet50`` and ``ssd512_vgg16`` build one
with torchvision's argument names and defaults, so code written for
``torchvision.models.detection.ssd300_vgg16`` runs unchanged with ours. ``freeze_backbone_stages``
implements ``trainable_backbone_layers``.

This is a product layer around the lesson: the network itself is in model.py, the loss in utils.py.
"""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from model import EVAL_CANDIDATES_PER_CLASS, EVAL_MIN_SCORE, EVAL_NMS_IOU, EVAL_TOP_K, build_ssd, create_prior_boxes
from ssd_support.checkpoints import load_model_from_checkpoint
from ssd_support.tiling import DEFAULT_TILE_OVERLAP, crop_batches, crop_tensor, merge_tensor_detections, tile_starts
from utils import MultiBoxLoss, preprocess_settings


# Stages of each base that ``trainable_backbone_layers`` counts, first to last; the first
# (5 - trainable_backbone_layers) are frozen. VGG16: its five convolution blocks, as torchvision's
# ``_vgg_extractor``. ResNet-50: torchvision's ResNet stages, layer4 included although NVIDIA's base stops
# at layer3 (so 1 and 0 both freeze the whole base), as in torchvision's ``_resnet_fpn_extractor``.
BACKBONE_STAGES = {
    "vgg16": (("conv1_",), ("conv2_",), ("conv3_",), ("conv4_",), ("conv5_",)),
    "resnet50": (("conv1.", "bn1."), ("layer1.",), ("layer2.",), ("layer3.",), ("layer4.",)),
}
# torchvision's defaults for trainable_backbone_layers with backbone weights: 4 for its SSD (VGG16),
# 3 for its ResNet-50 detectors.
DEFAULT_TRAINABLE_LAYERS = {"vgg16": 4, "resnet50": 3}


class TargetError(ValueError, AssertionError):
    """A bad ``targets`` argument. A ValueError; also an AssertionError, which is what torchvision's
    detectors raise (through ``torch._assert``) for the same mistakes, so code that catches either works."""


class SSDDetector(nn.Module):
    """An SSD network behind torchvision's detection interface (``torchvision.models.detection.SSD``).

    Input: a list of (3, H, W) float images in [0, 1], any sizes (or an (N, 3, H, W) tensor; grey (1, H, W)
    and RGBA (4, H, W) images are taken too, see ``resize_and_normalize``). Each is
    resized to the network's square input (bilinear, as torchvision's SSD transform with a fixed size;
    antialiased when shrinking, as train.py and detect.py resize) and normalized with ``image_mean`` /
    ``image_std``.

    - Training mode, with ``targets``, a list of {"boxes": (n, 4) x1y1x2y2 in the image's pixels,
      "labels": (n,) int64}: returns {"bbox_regression": loss, "classification": loss}, the two terms of
      ``MultiBoxLoss`` (sum them and call ``backward``).
    - Eval mode: returns one {"boxes": (n, 4) x1y1x2y2 in the image's own pixels, "labels": (n,),
      "scores": (n,)} per image, best first.
    """

    def __init__(self, network, score_thresh=EVAL_MIN_SCORE, nms_thresh=EVAL_NMS_IOU, detections_per_img=EVAL_TOP_K,
                 topk_candidates=EVAL_CANDIDATES_PER_CLASS, image_mean=None, image_std=None, label_map=None,
                 antialias=None, tile_size=None, tile_overlap=DEFAULT_TILE_OVERLAP, tile_full_image=False,
                 tile_batch_size=8):
        """
        :param network: an ``SSD`` (``SSD300``, ``SSD512``, or from ``build_ssd``)
        :param score_thresh: a class score above this makes a candidate detection
        :param nms_thresh: NMS drops a box overlapping a better one of its class by more than this IoU
        :param detections_per_img: detections kept per image, the best
        :param topk_candidates: candidates kept per class and image before NMS, the best
        :param image_mean: per-channel mean of the normalization (default: the network's ``preprocess_config``,
            which a converted COCO checkpoint sets, else ImageNet's, what our bases expect)
        :param image_std: per-channel std of the normalization (default: the network's, else ImageNet's)
        :param label_map: {class name: label}, kept as ``.label_map`` (None when unknown)
        :param antialias: low-pass filter images before shrinking them, as ``utils.resize`` does in training
            and detect.py (a photo shrunk 10x without it aliases); torchvision's SSD does not: False matches
            it exactly. Enlarging is the same either way. Default: the network's ``preprocess_config``, else True
        :param tile_size: eval mode: detect on overlapping tile_size x tile_size crops of each image (pixels) and
            merge them with a class-aware NMS (``ssd_support.tiling``: small objects in large images); None: whole
            images
        :param tile_overlap: fraction of a crop shared with its neighbour, in [0, 1)
        :param tile_full_image: with tiles, also detect on the whole image (objects larger than a tile)
        :param tile_batch_size: crops per forward pass of the network
        :raises ValueError: a ``tile_size`` below ``ssd_support.limits.MIN_TILE_SIZE`` (32 pixels) or an overlap
            outside [0, 1)
        """
        super().__init__()
        self.network = network
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        settings = preprocess_settings(getattr(network, "preprocess_config", None))
        self.image_mean = tuple(settings["mean"] if image_mean is None else image_mean)
        self.image_std = tuple(settings["std"] if image_std is None else image_std)
        self.label_map = None if label_map is None else dict(label_map)
        self.antialias = settings["antialias"] if antialias is None else antialias
        if tile_size is not None:
            tile_starts(tile_size, tile_size, tile_overlap)  # a bad size or overlap fails here, not at the first call
        self.tile_size, self.tile_overlap, self.tile_full_image = tile_size, tile_overlap, tile_full_image
        self.tile_batch_size = tile_batch_size
        self._restore_float32_priors()

    def _restore_float32_priors(self):
        """Give a half-precision network (``.to(torch.bfloat16)`` before it was wrapped) its float32 priors back.

        bfloat16 keeps 8 significant bits: its priors move by up to 1/256 of their value, ~1 px of a 500-px
        image, and every decoded box with them. The exact priors are the config's (``create_prior_boxes``); they
        replace the network's only where rounding them gives the network's, so no other priors are lost.
        """
        priors = self.network._buffers.get("priors_cxcy") if isinstance(self.network, nn.Module) else None
        if priors is None or priors.dtype not in (torch.float16, torch.bfloat16):
            return
        exact = create_prior_boxes(self.network.config).to(priors.device)
        if torch.equal(exact.to(priors.dtype), priors):
            self.network.priors_cxcy = exact

    def _apply(self, fn, *args, **kwargs):
        """What ``to``, ``half``, ``bfloat16``, ``cuda`` do: the network's priors follow the device but keep
        float32 (or a wider type): rounded to half precision they would move every decoded box (see
        ``_restore_float32_priors``); ``detect_objects`` decodes in float32.
        """
        network = self.network
        priors = network._buffers.get("priors_cxcy") if isinstance(network, nn.Module) else None
        super()._apply(fn, *args, **kwargs)
        moved = network._buffers.get("priors_cxcy") if priors is not None else None
        if moved is not None and moved.dtype != priors.dtype:
            network.priors_cxcy = priors.to(moved.device, torch.promote_types(moved.dtype, torch.float32))
        return self

    def forward(self, images, targets=None):
        """Losses (training mode) or detections (eval mode) for a list of images.

        :param images: list of N (3, H_i, W_i) float tensors in [0, 1], or an (N, 3, H, W) tensor
        :param targets: list of N {"boxes": (n_i, 4) pixel x1y1x2y2, "labels": (n_i,)}; needed in training
        :return: training: {"bbox_regression": scalar, "classification": scalar}; eval: list of N
            {"boxes": (k_i, 4) pixel x1y1x2y2, "labels": (k_i,) int64, "scores": (k_i,)}
        """
        if self.training and targets is None:
            raise TargetError("targets should not be none when in training mode")
        if targets is not None:
            self._check_targets(images, targets)
        if not self.training and self.tile_size is not None:
            return self.detect_tiled(images)
        image_sizes = [tuple(image.shape[-2:]) for image in images]
        predicted_locs, predicted_scores = self.network(self.resize_and_normalize(images))
        if self.training:
            return self.compute_loss(predicted_locs, predicted_scores, targets, image_sizes)
        return self.postprocess(predicted_locs, predicted_scores, image_sizes)

    def detect_tiled(self, images):
        """Eval-mode detections tile by tile (``tile_size``): every crop of every image through the network in
        batches of ``tile_batch_size``, its boxes shifted back to its image, then a class-aware NMS per image.
        Crops are views cut one batch at a time (``tiling.crop_batches``).

        :param images: list of N (3, H_i, W_i) float tensors in [0, 1]
        :return: N {"boxes": (k_i, 4) pixel x1y1x2y2 of the whole image, "labels", "scores"}, best first
        :raises ValueError: one line naming ``images[i]``, before any crop runs, when it would be cut into more than
            ``ssd_support.limits.MAX_TILES_PER_IMAGE`` crops
        """
        sizes = [(image.shape[-1], image.shape[-2]) for image in images]
        crop_detections, owners = [], []
        for batch, batch_owners in crop_batches(images, sizes, crop_tensor, self.tile_size, self.tile_overlap,
                                                self.tile_full_image, self.tile_batch_size,
                                                [f"images[{index}]" for index in range(len(images))]):
            predicted_locs, predicted_scores = self.network(self.resize_and_normalize(batch))
            crop_detections += self.postprocess(predicted_locs, predicted_scores,
                                                [tuple(crop.shape[-2:]) for crop in batch])
            owners += batch_owners
        return merge_tensor_detections(crop_detections, owners, len(images), self.nms_thresh, self.detections_per_img)

    def resize_and_normalize(self, images):
        """Resize every image to the network's input and normalize it (torchvision's ``model.transform``).

        Channels: RGB as it is; grey (1 channel) repeated into R, G and B; RGBA (4) without its alpha, as the
        file loader (``ssd_support.images``, Pillow's ``convert("RGB")``) reads an RGBA file. float16 and
        bfloat16 images are resized and normalized in float32 (PyTorch's antialiased resize has no half
        kernels on the CPU), then cast to the network's dtype, as every batch is.

        :param images: N (C, H_i, W_i) float tensors in [0, 1], C 3, 1 or 4
        :return: (N, 3, S, S) batch in the network's dtype, S = ``network.image_size``
        :raises ValueError: for an image that is not 3-d, or has another number of channels (naming it)
        :raises TypeError: for an integer image
        """
        size = self.network.image_size
        network_dtype = next(self.network.parameters()).dtype  # not the priors': they stay float32
        # float32 at least: a float64 network's batch stays float64 throughout, a half one's is cast at the end.
        work_dtype = torch.promote_types(network_dtype, torch.float32)
        resized = []
        for index, image in enumerate(images):
            if image.dim() != 3:
                raise ValueError(f"images is expected to be a list of 3d tensors of shape [C, H, W], got {image.shape}")
            if not image.is_floating_point():
                raise TypeError(f"Expected input images to be of floating type (in range [0, 1]), "
                                f"but found type {image.dtype} instead")
            channels = image.shape[0]
            if channels == 1:
                image = image.expand(3, -1, -1)
            elif channels == 4:
                image = image[:3]
            elif channels != 3:
                raise ValueError(f"image {index} has {channels} channels (shape {tuple(image.shape)}); expected 3 "
                                 f"(RGB), 1 (grey) or 4 (RGBA, whose alpha is dropped)")
            if image.dtype in (torch.float16, torch.bfloat16):
                image = image.float()
            resized.append(F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                                         antialias=self.antialias))
        batch = torch.cat(resized).to(work_dtype)
        # Resizing first, then normalizing, is the same (bilinear weights sum to 1) and touches fewer pixels.
        mean = batch.new_tensor(self.image_mean).view(1, 3, 1, 1)
        std = batch.new_tensor(self.image_std).view(1, 3, 1, 1)
        return ((batch - mean) / std).to(network_dtype)

    def compute_loss(self, predicted_locs, predicted_scores, targets, image_sizes):
        """The two terms of ``MultiBoxLoss``, with the boxes turned into fractions of their image.

        :param predicted_locs: (N, n_priors, 4)
        :param predicted_scores: (N, n_priors, n_classes)
        :param targets: N {"boxes": (n_i, 4) pixel x1y1x2y2, "labels": (n_i,)}
        :param image_sizes: N (H_i, W_i) of the original images
        :return: {"bbox_regression": loc loss, "classification": conf loss}, scalars with gradients
        """
        boxes = [target["boxes"].to(predicted_locs.device, torch.float32)
                 / torch.tensor([width, height, width, height], dtype=torch.float32, device=predicted_locs.device)
                 for target, (height, width) in zip(targets, image_sizes)]
        labels = [target["labels"].to(predicted_locs.device) for target in targets]
        # Built per call from the network's priors: they may change with a load_state_dict.
        loss_fn = MultiBoxLoss(self.network.priors_cxcy)
        loc_loss, conf_loss = loss_fn(predicted_locs, predicted_scores, boxes, labels)
        return {"bbox_regression": loc_loss, "classification": conf_loss}

    def postprocess(self, predicted_locs, predicted_scores, image_sizes):
        """``detect_objects`` with this detector's settings, boxes scaled to each image's pixels.

        :param predicted_locs: (N, n_priors, 4)
        :param predicted_scores: (N, n_priors, n_classes)
        :param image_sizes: N (H_i, W_i) of the original images
        :return: N {"boxes": (k_i, 4), "labels": (k_i,), "scores": (k_i,)}
        """
        boxes, labels, scores = self.network.detect_objects(
            predicted_locs, predicted_scores, min_score=self.score_thresh, max_overlap=self.nms_thresh,
            top_k=self.detections_per_img, max_candidates_per_class=self.topk_candidates)
        detections = []
        for image_boxes, image_labels, image_scores, (height, width) in zip(boxes, labels, scores, image_sizes):
            scale = image_boxes.new_tensor([width, height, width, height])
            detections.append({"boxes": image_boxes * scale, "labels": image_labels, "scores": image_scores})
        return detections

    def _check_targets(self, images, targets):
        """Raise ``TargetError`` (torchvision's messages where it has one) for malformed targets."""
        if len(targets) != len(images):
            raise TargetError(f"Expected one target per image, got {len(targets)} targets for {len(images)} images.")
        n_classes = self.network.n_classes
        for index, target in enumerate(targets):
            if not isinstance(target, dict) or not {"boxes", "labels"} <= set(target):
                got = list(target) if isinstance(target, dict) else type(target).__name__
                raise TargetError(f"Expected target at index {index} to be a dict with keys 'boxes' and 'labels', "
                                  f"got {got}.")
            for key in ("boxes", "labels"):
                if not isinstance(target[key], torch.Tensor):
                    raise TargetError(f"Expected target {key} to be of type Tensor, got {type(target[key])}.")
            boxes, labels = target["boxes"], target["labels"]
            if boxes.dim() != 2 or boxes.shape[-1] != 4:
                raise TargetError(f"Expected target boxes to be a tensor of shape [N, 4], got {boxes.shape}.")
            if labels.shape != boxes.shape[:1]:
                raise TargetError(f"Expected target labels of shape [{len(boxes)}] for target at index {index}, "
                                  f"got {labels.shape}.")
            if labels.is_floating_point() or (len(labels) and (labels.min() < 0 or labels.max() >= n_classes)):
                raise TargetError(f"Expected integer target labels in [0, {n_classes - 1}] for target at index "
                                  f"{index}, got {labels.tolist()}.")
            not_finite = ~torch.isfinite(boxes).all(dim=1) if boxes.is_floating_point() else None
            if not_finite is not None and not_finite.any():  # NaN passes the test below: NaN <= x is False
                box = boxes[torch.nonzero(not_finite)[0, 0]].tolist()
                raise TargetError(f"All bounding boxes should be finite. Found invalid box {box} for target at "
                                  f"index {index}.")
            degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
            if degenerate.any():
                box = boxes[torch.nonzero(degenerate)[0, 0]].tolist()
                raise TargetError("All bounding boxes should have positive height and width."
                                  f" Found invalid box {box} for target at index {index}.")


def _validate_trainable_layers(is_trained, trainable_backbone_layers, default_value):
    """torchvision's rule: 0..5 layers; without any trained weights everything trains (a warning if a
    number was asked for), since freezing random weights only hurts.

    :return: the number of trainable stages, 0..5
    """
    if trainable_backbone_layers is not None and not 0 <= trainable_backbone_layers <= 5:
        raise ValueError(f"Trainable backbone layers should be in the range [0,5], got {trainable_backbone_layers}")
    if not is_trained:
        if trainable_backbone_layers is not None:
            warnings.warn("Changing trainable_backbone_layers has no effect if neither checkpoint nor "
                          "weights_backbone is given, falling back to trainable_backbone_layers=5 so that all "
                          "layers are trainable")
        return 5
    return default_value if trainable_backbone_layers is None else trainable_backbone_layers


def freeze_backbone_stages(network, trainable_layers):
    """Freeze the first (5 - ``trainable_layers``) stages of the network's base (``requires_grad=False``).

    :param network: an ``SSD``
    :param trainable_layers: 0..5; 5 freezes nothing, 0 the whole base (conv6/conv7 of VGG16 stay trainable,
        as in torchvision, where they are not part of VGG16's ``features``)
    :return: the names of the frozen parameters, relative to ``network``
    """
    frozen_prefixes = tuple(prefix for stage in BACKBONE_STAGES[network.base_name][:5 - trainable_layers]
                            for prefix in stage)
    frozen = []
    for name, parameter in network.base.named_parameters():
        if name.startswith(frozen_prefixes):
            parameter.requires_grad_(False)
            frozen.append(f"base.{name}")
    network.train(network.training)  # SSD.train keeps the frozen batch norms in eval mode from now on
    return frozen


def _backbone_weights(base, weights_backbone):
    """torchvision's weights enum value for a base (accepts names such as "DEFAULT", as torchvision does).

    torchvision's SSD uses VGG16's ``IMAGENET1K_FEATURES``: those have no fc6/fc7 to subsample into
    conv6/conv7 and expect Caffe's 0-255 input, so our VGG16 base takes ``IMAGENET1K_V1`` (the paper's
    and this tutorial's choice, ImageNet-normalized [0, 1] input).
    """
    from torchvision.models import ResNet50_Weights, VGG16_Weights

    if base == "resnet50":
        return ResNet50_Weights.verify(weights_backbone)
    weights_backbone = VGG16_Weights.verify(weights_backbone)
    if weights_backbone == VGG16_Weights.IMAGENET1K_FEATURES:
        raise ValueError("weights_backbone=VGG16_Weights.IMAGENET1K_FEATURES (torchvision's SSD default) has no "
                         "fc6/fc7 for conv6/conv7 and expects Caffe-style input; use VGG16_Weights.IMAGENET1K_V1")
    return weights_backbone


# The published COCO detectors each builder's ``weights`` can name, converted by convert_weights.py.
PRETRAINED_SOURCES = {"vgg16": "torchvision_coco", "resnet50": "nvidia_coco"}
WEIGHTS_NAMES = ("COCO_V1", "DEFAULT")


def _pretrained(base, image_size, weights, num_classes, checkpoint, progress, allow_pickle):
    """The converted COCO network a builder's ``weights`` names, and its label map.

    :raises ValueError: for a weights name that does not exist, or arguments that contradict it
    """
    name = getattr(weights, "name", weights)  # torchvision's enum (SSD300_VGG16_Weights.COCO_V1) or its name
    if image_size != 300:
        raise ValueError(f"weights={weights!r}: there are no published SSD{image_size} weights; pass checkpoint=PATH")
    if name not in WEIGHTS_NAMES:
        raise ValueError(f"weights={weights!r}: choose one of {', '.join(WEIGHTS_NAMES)} (or pass checkpoint=PATH)")
    if checkpoint is not None:
        raise ValueError("pass either weights or checkpoint, not both")
    from ssd_support.weights import coco_label_map, pretrained_network  # here: importing detector downloads nothing

    n_classes = len(coco_label_map())
    if num_classes is not None and num_classes != n_classes:  # before any download, as torchvision checks
        raise ValueError(f"The parameter 'num_classes' expected value {n_classes} but got {num_classes} instead "
                         "(COCO's 80 classes and the background; fine-tune with train.py --init-from for others).")
    return pretrained_network(PRETRAINED_SOURCES[base], progress=progress, allow_pickle=allow_pickle)


def _ssd_detector(base, image_size, weights, num_classes, weights_backbone, trainable_backbone_layers,
                  checkpoint, progress=True, allow_pickle=False, **kwargs):
    """Build an ``SSDDetector`` as torchvision's model builders do; see ``ssd300_vgg16``."""
    label_map = None
    if weights is not None:
        network, label_map = _pretrained(base, image_size, weights, num_classes, checkpoint, progress, allow_pickle)
        weights_backbone = None  # the COCO weights hold every layer (torchvision: weights over weights_backbone)
    elif checkpoint is not None:
        network, label_map = load_model_from_checkpoint(checkpoint)
        if (network.base_name, network.image_size) != (base, image_size):
            raise ValueError(f"{checkpoint}: holds an SSD{network.image_size} with base {network.base_name}, "
                             f"not an SSD{image_size} with base {base}")
        if num_classes is not None and num_classes != network.n_classes:
            raise ValueError(f"{checkpoint}: The parameter 'num_classes' expected value {network.n_classes} "
                             f"but got {num_classes} instead.")
        weights_backbone = None  # the checkpoint holds every weight (torchvision: weights over weights_backbone)
    else:
        network = build_ssd(91 if num_classes is None else num_classes, base=base, image_size=image_size)
        if weights_backbone is not None:
            network.base.load_pretrained_layers(_backbone_weights(base, weights_backbone))
    trainable_layers = _validate_trainable_layers(weights is not None or checkpoint is not None
                                                  or weights_backbone is not None,
                                                  trainable_backbone_layers, DEFAULT_TRAINABLE_LAYERS[base])
    freeze_backbone_stages(network, trainable_layers)
    return SSDDetector(network, label_map=label_map, **kwargs).train()


def ssd300_vgg16(*, weights=None, progress=True, num_classes=None, weights_backbone="IMAGENET1K_V1",
                 trainable_backbone_layers=None, checkpoint=None, **kwargs):
    """SSD300 with the paper's VGG16 base, as ``torchvision.models.detection.ssd300_vgg16`` builds it.

    Example::

        model = ssd300_vgg16(weights="COCO_V1").eval()  # torchvision's COCO detector, converted
        model = ssd300_vgg16(checkpoint="checkpoints/ssd300_iter_120000.pt").eval()
        predictions = model([torch.rand(3, 300, 300), torch.rand(3, 500, 400)])

    :param weights: None, or "COCO_V1" / "DEFAULT" (or ``SSD300_VGG16_Weights.COCO_V1``): torchvision's COCO
        SSD300, downloaded on first use and converted by ``convert_weights.py`` with its priors and preprocessing.
        Its labels are COCO's 80 classes as 1..80 in category-id order (``.label_map`` names them), not
        torchvision's category ids 1..90; its class softmax runs over 81 outputs instead of 91
    :param progress: show the download's progress bar
    :param num_classes: classes, background included (default: the checkpoint's, 81 with weights, else 91 as
        torchvision)
    :param weights_backbone: ``torchvision.models.VGG16_Weights`` for the base (default ``IMAGENET1K_V1``,
        downloaded on first use); None for random weights. Ignored with a checkpoint
    :param trainable_backbone_layers: 0..5 VGG16 blocks left trainable, counted from conv5 back (default 4 with
        trained weights; 5, nothing frozen, without)
    :param checkpoint: path of a ``train.py`` checkpoint to load (its label map becomes ``.label_map``)
    :param kwargs: ``SSDDetector`` settings: ``score_thresh=0.01``, ``nms_thresh=0.45``,
        ``detections_per_img=200``, ``topk_candidates=400``, ``image_mean``, ``image_std``,
        ``antialias`` (defaults: the network's preprocessing)
    :return: an ``SSDDetector`` in training mode (call ``.eval()`` to detect), as torchvision returns it
    """
    return _ssd_detector("vgg16", 300, weights, num_classes, weights_backbone, trainable_backbone_layers,
                         checkpoint, progress=progress, **kwargs)


def ssd512_vgg16(*, weights=None, progress=True, num_classes=None, weights_backbone="IMAGENET1K_V1",
                 trainable_backbone_layers=None, checkpoint=None, **kwargs):
    """SSD512 (the paper's 512x512 variant, VGG16 base); arguments as ``ssd300_vgg16`` (no published weights)."""
    return _ssd_detector("vgg16", 512, weights, num_classes, weights_backbone, trainable_backbone_layers,
                         checkpoint, progress=progress, **kwargs)


def ssd300_resnet50(*, weights=None, progress=True, num_classes=None, weights_backbone="IMAGENET1K_V1",
                    trainable_backbone_layers=None, checkpoint=None, allow_pickle=False, **kwargs):
    """SSD300 with NVIDIA's ResNet-50 base (SSD300 v1.1); arguments as ``ssd300_vgg16``, except:

    :param weights: None, or "COCO_V1" / "DEFAULT": NVIDIA's COCO checkpoint (``nvidia_ssdpyt_amp_200703.pt``
        from NGC), downloaded on first use and converted by ``convert_weights.py``; labels 1..80 as COCO's
    :param allow_pickle: with ``weights``: if NVIDIA's file holds more than weights, unpickle it (a warning says
        that this runs code named in the file)

    :param weights_backbone: ``torchvision.models.ResNet50_Weights`` (default ``IMAGENET1K_V1``, NVIDIA's)
    :param trainable_backbone_layers: 0..5 ResNet stages left trainable, counted from layer4 (absent here)
        back to conv1/bn1: 5 freezes nothing, 4 conv1/bn1, 3 also layer1, 2 also layer2, 1 and 0 the whole
        base (default 3 with trained weights, as torchvision's ResNet-50 detectors; 5 without)
    """
    return _ssd_detector("resnet50", 300, weights, num_classes, weights_backbone, trainable_backbone_layers,
                         checkpoint, progress=progress, allow_pickle=allow_pickle, **kwargs)
