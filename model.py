"""SSD: the Single Shot MultiBox Detector of Liu et al. (ECCV 2016), SSD300 and SSD512.

The network is built from three parts, read in this order:

1. ``VGGBase`` -- VGG16 turned into a fully convolutional feature extractor. It gives the
   38x38 (conv4_3) and 19x19 (conv7) feature maps.
2. ``AuxiliaryConvolutions`` -- four extra blocks that shrink the map to 10x10, 5x5, 3x3 and 1x1.
3. ``PredictionConvolutions`` -- one 3x3 convolution per map for box offsets, one for class scores.

``SSD300`` glues them together, owns the 8732 priors ("default boxes") and turns raw predictions
into detections with ``detect_objects``. The layer names follow the paper (conv4_3, conv7,
conv8_2, ...) so that the code reads like Fig. 2 of the paper.

Two variants share all of this but the layers and the priors, each described by an ``SSDConfig``:
``SSD512`` (the paper's 512x512 input: one more block, seven maps, 24,564 priors) and
``SSD300(base="resnet50")`` (NVIDIA's SSD300 v1.1: ResNet-50 instead of VGG16, ``ResNet50Base`` and
``ResNetAuxiliaryConvolutions``).

At the end: building a network from a (base, size) pair, the priors and preprocessing a checkpoint may name
(converted COCO weights), the paper's evaluation settings, converting torchvision's weights, reading and
loading checkpoints (``read_checkpoint``, ``load_model_from_checkpoint``) and ``use_fast_cpu_layout`` for CPU
inference. ``ssd_support/detector.py`` puts any of these networks behind torchvision's detection interface.
"""

import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ssd_support.nms import batched_nms_fractional
from utils import cxcy_to_xy, gcxgcy_to_cxcy


class FeatureMap(NamedTuple):
    """One feature map that makes predictions, and the priors it carries."""

    name: str  # the layer's name (conv4_3, conv7, ...), also the name of its prediction convolutions
    size: int  # its side, in locations, at the model's input size
    channels: int
    scale: float  # prior scale s_k, as a fraction of the image side
    aspect_ratios: Tuple[int, ...]  # extra ratios beyond 1; each r also brings 1/r
    step: Optional[float] = None  # pixels between prior centres; None: the image side / size


class SSDConfig(NamedTuple):
    """The input size and the prediction maps of one SSD variant; the priors follow from it."""

    image_size: int
    feature_maps: Tuple[FeatureMap, ...]
    # s_{m+1}: the extra square prior of the last map has scale sqrt(s_m * last_scale).
    last_scale: float
    # Clamp the prior centres to [0, 1] too, not only the sizes (NVIDIA's DefaultBoxes clamps all four numbers:
    # on its 10x10 map, centres every 32 pixels put the last row and column at 9.5 * 32 / 300 = 1.013 -> 1).
    clip_centres: bool = False


# SSD300 with VGG16. Six maps; 4 priors per location where the 3 and 1/3 ratios are left out (Sec. 3).
# The scales s_k = 0.2 + 0.7 (k - 1) / (m - 1) space conv7..conv11_2 between 0.2 and 0.9; conv4_3 gets
# 0.1 (Sec. 3.1 of the paper and its Caffe code: conv4_3 objects are small).
SSD300_VGG16 = SSDConfig(image_size=300, last_scale=1.0, feature_maps=(
    FeatureMap("conv4_3", 38, 512, 0.1, (2,)),
    FeatureMap("conv7", 19, 1024, 0.2, (2, 3)),
    FeatureMap("conv8_2", 10, 512, 0.375, (2, 3)),
    FeatureMap("conv9_2", 5, 256, 0.55, (2, 3)),
    FeatureMap("conv10_2", 3, 256, 0.725, (2,)),
    FeatureMap("conv11_2", 1, 256, 0.9, (2,)),
))

# SSD512 with VGG16 (the paper's footnote on SSD512 and its Caffe ssd_pascal_512.py): conv8_2 to
# conv11_2 all halve the map, conv12_2 takes it to 1x1; conv4_3 priors at 0.07, then 0.15 to 0.9.
SSD512_VGG16 = SSDConfig(image_size=512, last_scale=1.05, feature_maps=(
    FeatureMap("conv4_3", 64, 512, 0.07, (2,)),
    FeatureMap("conv7", 32, 1024, 0.15, (2, 3)),
    FeatureMap("conv8_2", 16, 512, 0.3, (2, 3)),
    FeatureMap("conv9_2", 8, 256, 0.45, (2, 3)),
    FeatureMap("conv10_2", 4, 256, 0.6, (2, 3)),
    FeatureMap("conv11_2", 2, 256, 0.75, (2,)),
    FeatureMap("conv12_2", 1, 256, 0.9, (2,)),
))

# NVIDIA's SSD300 v1.1 with ResNet-50: its COCO default boxes, scales 21, 45, 99, 153, 207, 261 (and
# 315) pixels, centres every 8, 16, 32, 64, 100, 300 pixels (so not spread evenly on the 38x38 map),
# clamped to the image as NVIDIA's dboxes300_coco() clamps them.
SSD300_RESNET50 = SSDConfig(image_size=300, last_scale=315 / 300, clip_centres=True, feature_maps=(
    FeatureMap("conv4_x", 38, 1024, 21 / 300, (2,), step=8),
    FeatureMap("extra1", 19, 512, 45 / 300, (2, 3), step=16),
    FeatureMap("extra2", 10, 512, 99 / 300, (2, 3), step=32),
    FeatureMap("extra3", 5, 256, 153 / 300, (2, 3), step=64),
    FeatureMap("extra4", 3, 256, 207 / 300, (2,), step=100),
    FeatureMap("extra5", 1, 256, 261 / 300, (2,), step=300),
))

CONFIGS = {("vgg16", 300): SSD300_VGG16, ("vgg16", 512): SSD512_VGG16, ("resnet50", 300): SSD300_RESNET50}


def ssd_config(base, image_size):
    """The ``SSDConfig`` of a base and an input size.

    :param base: "vgg16" or "resnet50"
    :param image_size: 300 or 512
    :return: the config, from ``CONFIGS``
    :raises ValueError: naming the variants that exist, for a pair that does not
    """
    if (base, image_size) not in CONFIGS:
        raise ValueError(f"no SSD{image_size} with base {base!r}; choose one of "
                         + ", ".join(f"SSD{size} {name}" for name, size in CONFIGS))
    return CONFIGS[(base, image_size)]


def priors_per_location(feature_map):
    """1 (scale s_k) + 1 (scale sqrt(s_k s_k+1)) + 2 per extra aspect ratio: 4 or 6."""
    return 2 + 2 * len(feature_map.aspect_ratios)


def prior_spec(config):
    """The priors of a config as plain data, the form a checkpoint's ``config["priors"]`` takes.

    :param config: an ``SSDConfig``
    :return: {"scales": [s_1, ..., s_m, s_m+1] (fractions of the image side), "steps": [pixels between prior
        centres, or None for image_size / map size; one per map], "aspect_ratios": [[2], [2, 3], ...]}
    """
    return {"scales": [fmap.scale for fmap in config.feature_maps] + [config.last_scale],
            "steps": [fmap.step for fmap in config.feature_maps],
            "aspect_ratios": [list(fmap.aspect_ratios) for fmap in config.feature_maps],
            "clip_centres": config.clip_centres}


def config_with_priors(config, priors):
    """A config whose priors are those of ``priors`` (a checkpoint's ``config["priors"]``), layers unchanged.

    Published detectors were trained with priors of their own (torchvision's and NVIDIA's COCO SSD300s:
    scales 0.07, 0.15, 0.33, ..., 1.05 and centres every 8, 16, 32, 64, 100, 300 pixels); a network must
    decode its offsets against exactly the priors it was trained with.

    :param config: an ``SSDConfig`` (which layers, how many priors per location)
    :param priors: {"scales": m + 1 floats, "steps": m numbers or None (optional: the config's), "aspect_ratios":
        m lists (optional; must be the config's, since they fix the prediction layers' shapes), "clip_centres":
        bool (optional: the config's)}
    :return: the ``SSDConfig`` with those scales and steps
    :raises ValueError: for a spec that does not fit the config
    """
    n_maps = len(config.feature_maps)
    if not isinstance(priors, dict) or "scales" not in priors:
        raise ValueError(f"priors: expected a dict with 'scales' (and 'steps'), got {priors!r}")
    scales = [float(scale) for scale in priors["scales"]]
    steps = priors.get("steps", [fmap.step for fmap in config.feature_maps])
    if len(scales) != n_maps + 1 or len(steps) != n_maps:
        raise ValueError(f"priors: this network has {n_maps} prediction maps: it needs {n_maps + 1} scales and "
                         f"{n_maps} steps, got {len(scales)} and {len(steps)}")
    ratios = priors.get("aspect_ratios")
    if ratios is not None and [list(r) for r in ratios] != [list(f.aspect_ratios) for f in config.feature_maps]:
        raise ValueError(f"priors: aspect ratios {ratios} do not fit this network's prediction layers "
                         f"({[list(f.aspect_ratios) for f in config.feature_maps]})")
    feature_maps = tuple(fmap._replace(scale=scale, step=None if step is None else float(step))
                         for fmap, scale, step in zip(config.feature_maps, scales, steps))
    return config._replace(feature_maps=feature_maps, last_scale=scales[-1],
                           clip_centres=bool(priors.get("clip_centres", config.clip_centres)))


# The paper's evaluation settings (its Sec. 3 and the test parameters of Caffe's ssd_pascal.py): a detection
# needs a class score above 0.01, NMS suppresses boxes of the same class overlapping a better one by IoU > 0.45,
# at most 200 detections per image are kept, and at most 400 candidates per image and class enter NMS.
# eval.py, export.py and SSDDetector default to all four (eval.py --no-candidate-cap sends every candidate above
# the score into NMS); detect.py, which draws for people, uses higher scores.
EVAL_MIN_SCORE = 0.01
EVAL_NMS_IOU = 0.45
EVAL_TOP_K = 200
EVAL_CANDIDATES_PER_CLASS = 400

# torchvision's VGG16 ``features`` indices of each convolution, so that ImageNet weights are
# copied by layer name rather than by position in a state_dict.
VGG16_CONV_INDICES = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}


def decimate(tensor, steps):
    """Subsample a tensor, keeping every ``steps[d]``-th entry along dimension ``d``.

    This is how the paper turns VGG's fully connected fc6/fc7 into the smaller conv6/conv7: the
    4096 filters become 1024 (every 4th) and fc6's 7x7 taps become a 3x3 atrous kernel (every 3rd).

    :param tensor: any tensor
    :param steps: one step per dimension (``None`` keeps the dimension whole)
    :return: the decimated tensor
    """
    for dim, step in enumerate(steps):
        if step is not None:
            index = torch.arange(0, tensor.size(dim), step, device=tensor.device)
            tensor = tensor.index_select(dim, index)
    return tensor


def vgg16_to_ssd_base_state_dict(vgg_state_dict):
    """Convert a torchvision VGG16 state_dict into a ``VGGBase`` state_dict.

    conv1_1 ... conv5_3 are copied as they are. fc6 (4096, 25088) is viewed as a 7x7 convolution
    over 512 channels, (4096, 512, 7, 7), and decimated to (1024, 512, 3, 3); fc7 (4096, 4096) to
    (1024, 1024, 1, 1) (Sec. 3 of the paper, "we subsample parameters from fc6 and fc7").

    :param vgg_state_dict: state_dict of ``torchvision.models.vgg16`` (keys ``features.N.*``,
        ``classifier.0.*`` for fc6 and ``classifier.3.*`` for fc7)
    :return: dict that ``VGGBase.load_state_dict`` accepts
    """
    base_state_dict = {}
    for name, index in VGG16_CONV_INDICES.items():
        base_state_dict[f"{name}.weight"] = vgg_state_dict[f"features.{index}.weight"]
        base_state_dict[f"{name}.bias"] = vgg_state_dict[f"features.{index}.bias"]

    fc6_weight = vgg_state_dict["classifier.0.weight"].view(4096, 512, 7, 7)
    base_state_dict["conv6.weight"] = decimate(fc6_weight, steps=(4, None, 3, 3))
    base_state_dict["conv6.bias"] = decimate(vgg_state_dict["classifier.0.bias"], steps=(4,))
    fc7_weight = vgg_state_dict["classifier.3.weight"].view(4096, 4096, 1, 1)
    base_state_dict["conv7.weight"] = decimate(fc7_weight, steps=(4, 4, None, None))
    base_state_dict["conv7.bias"] = decimate(vgg_state_dict["classifier.3.bias"], steps=(4,))
    return base_state_dict


class VGGBase(nn.Module):
    """VGG16 up to conv5_3, then the paper's conv6 (atrous) and conv7 instead of fc6 and fc7."""

    def __init__(self):
        super().__init__()
        self.conv1_1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.conv1_2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)

        self.conv2_1 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.conv2_2 = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)

        self.conv3_1 = nn.Conv2d(128, 256, kernel_size=3, padding=1)
        self.conv3_2 = nn.Conv2d(256, 256, kernel_size=3, padding=1)
        self.conv3_3 = nn.Conv2d(256, 256, kernel_size=3, padding=1)
        # ceil_mode: 75x75 -> 38x38 rather than 37x37, so conv4_3 is the paper's 38x38 map.
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)

        self.conv4_1 = nn.Conv2d(256, 512, kernel_size=3, padding=1)
        self.conv4_2 = nn.Conv2d(512, 512, kernel_size=3, padding=1)
        self.conv4_3 = nn.Conv2d(512, 512, kernel_size=3, padding=1)
        self.pool4 = nn.MaxPool2d(kernel_size=2, stride=2)

        self.conv5_1 = nn.Conv2d(512, 512, kernel_size=3, padding=1)
        self.conv5_2 = nn.Conv2d(512, 512, kernel_size=3, padding=1)
        self.conv5_3 = nn.Conv2d(512, 512, kernel_size=3, padding=1)
        # pool5 is 3x3 stride 1 (not 2x2 stride 2): conv7 stays 19x19.
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)

        # fc6 and fc7 as convolutions; the dilation of 6 makes up for the subsampled 3x3 kernel
        # (the "a trous" algorithm of Sec. 3 of the paper) so the receptive field stays large.
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6)
        self.conv7 = nn.Conv2d(1024, 1024, kernel_size=1)

        # Without ImageNet weights, start as torchvision does: VGG's convolutions with He init
        # (13 ReLU layers deep, Xavier would shrink the signal), conv6/conv7 like SSD's extra layers.
        for module in self.children():
            if isinstance(module, nn.Conv2d):
                if module in (self.conv6, self.conv7):
                    nn.init.xavier_uniform_(module.weight)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, images):
        """Run VGG16 over a batch of images.

        :param images: (N, 3, S, S) normalized images, S = 300 (SSD300) or 512 (SSD512)
        :return: conv4_3 features (N, 512, 38, 38) and conv7 features (N, 1024, 19, 19) for S = 300;
            (N, 512, 64, 64) and (N, 1024, 32, 32) for S = 512
        """
        # Shapes for SSD300. In-place ReLUs (as torchvision's VGG): a convolution's output is not needed
        # for its own backward pass, so overwriting it saves one feature map of memory traffic per layer.
        x = F.relu(self.conv1_1(images), inplace=True)  # (N, 64, 300, 300)
        x = F.relu(self.conv1_2(x), inplace=True)  # (N, 64, 300, 300)
        x = self.pool1(x)  # (N, 64, 150, 150)
        x = F.relu(self.conv2_1(x), inplace=True)  # (N, 128, 150, 150)
        x = F.relu(self.conv2_2(x), inplace=True)  # (N, 128, 150, 150)
        x = self.pool2(x)  # (N, 128, 75, 75)
        x = F.relu(self.conv3_1(x), inplace=True)  # (N, 256, 75, 75)
        x = F.relu(self.conv3_2(x), inplace=True)  # (N, 256, 75, 75)
        x = F.relu(self.conv3_3(x), inplace=True)  # (N, 256, 75, 75)
        x = self.pool3(x)  # (N, 256, 38, 38): 37 without ceil_mode
        x = F.relu(self.conv4_1(x), inplace=True)  # (N, 512, 38, 38)
        x = F.relu(self.conv4_2(x), inplace=True)  # (N, 512, 38, 38)
        conv4_3_feats = F.relu(self.conv4_3(x), inplace=True)  # (N, 512, 38, 38): the first map SSD predicts on
        x = self.pool4(conv4_3_feats)  # (N, 512, 19, 19)
        x = F.relu(self.conv5_1(x), inplace=True)  # (N, 512, 19, 19)
        x = F.relu(self.conv5_2(x), inplace=True)  # (N, 512, 19, 19)
        x = F.relu(self.conv5_3(x), inplace=True)  # (N, 512, 19, 19)
        x = self.pool5(x)  # (N, 512, 19, 19): 3x3 stride 1 keeps the size
        x = F.relu(self.conv6(x), inplace=True)  # (N, 1024, 19, 19): atrous, dilation 6
        conv7_feats = F.relu(self.conv7(x), inplace=True)  # (N, 1024, 19, 19): the second map
        return conv4_3_feats, conv7_feats

    def load_pretrained_layers(self, weights=None):
        """Fill the layers with torchvision's ImageNet VGG16, fc6/fc7 decimated into conv6/conv7.

        The ImageNet VGG16 of torchvision expects [0, 1] images normalized with the ImageNet
        mean/std, which is what ``utils.transform`` produces.

        :param weights: a ``torchvision.models.VGG16_Weights`` (default ``IMAGENET1K_V1``); it is
            downloaded on first use into torch's hub cache.
        """
        from torchvision.models import VGG16_Weights, vgg16  # imported here: no work at import time

        weights = VGG16_Weights.IMAGENET1K_V1 if weights is None else weights
        vgg_state_dict = vgg16(weights=weights).state_dict()
        self.load_state_dict(vgg16_to_ssd_base_state_dict(vgg_state_dict))


class AuxiliaryConvolutions(nn.Module):
    """The extra layers of Fig. 2 of the paper: conv8 to conv11 (conv12 for SSD512), each a 1x1
    convolution that halves the channels, then a 3x3 one that shrinks the map."""

    def __init__(self, image_size=300):
        """
        :param image_size: 300 (maps 19 -> 10, 5, 3, 1) or 512 (32 -> 16, 8, 4, 2, 1)
        """
        super().__init__()
        self.conv8_1 = nn.Conv2d(1024, 256, kernel_size=1)
        self.conv8_2 = nn.Conv2d(256, 512, kernel_size=3, stride=2, padding=1)  # 19 -> 10 (32 -> 16)
        self.conv9_1 = nn.Conv2d(512, 128, kernel_size=1)
        self.conv9_2 = nn.Conv2d(128, 256, kernel_size=3, stride=2, padding=1)  # 10 -> 5 (16 -> 8)
        if image_size not in (300, 512):
            raise ValueError(f"SSD with VGG16 is defined for 300x300 and 512x512 input, not {image_size}")
        # SSD300: 5 -> 3 -> 1 with unpadded 3x3 convolutions; SSD512: 8 -> 4 -> 2, halving as above.
        shrink = dict(kernel_size=3) if image_size == 300 else dict(kernel_size=3, stride=2, padding=1)
        self.conv10_1 = nn.Conv2d(256, 128, kernel_size=1)
        self.conv10_2 = nn.Conv2d(128, 256, **shrink)
        self.conv11_1 = nn.Conv2d(256, 128, kernel_size=1)
        self.conv11_2 = nn.Conv2d(128, 256, **shrink)
        self.block_names = ("conv8", "conv9", "conv10", "conv11")
        if image_size == 512:
            self.conv12_1 = nn.Conv2d(256, 128, kernel_size=1)
            self.conv12_2 = nn.Conv2d(128, 256, kernel_size=4, padding=1)  # 2 -> 1 (Caffe's SSD512)
            self.block_names += ("conv12",)

        for module in self.children():
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, conv7_feats):
        """Shrink the conv7 map step by step.

        :param conv7_feats: (N, 1024, 19, 19) (SSD512: (N, 1024, 32, 32))
        :return: tuple of the conv8_2 (N, 512, 10, 10), conv9_2 (N, 256, 5, 5), conv10_2 (N, 256, 3, 3)
            and conv11_2 (N, 256, 1, 1) features (SSD512: 16, 8, 4, 2 and conv12_2's 1)
        """
        feats, x = [], conv7_feats
        for block in self.block_names:
            x = F.relu(getattr(self, f"{block}_1")(x), inplace=True)
            x = F.relu(getattr(self, f"{block}_2")(x), inplace=True)
            feats.append(x)
        return tuple(feats)


class PredictionConvolutions(nn.Module):
    """3x3 convolutions that predict, for every prior, 4 box offsets and ``n_classes`` scores."""

    def __init__(self, n_classes, feature_maps=SSD300_VGG16.feature_maps):
        """
        :param n_classes: number of classes, background included
        :param feature_maps: the ``FeatureMap`` s that make predictions (name, channels, priors)
        """
        super().__init__()
        self.n_classes = n_classes
        self.feature_map_names = tuple(fmap.name for fmap in feature_maps)
        for fmap in feature_maps:
            n_priors = priors_per_location(fmap)
            setattr(self, f"loc_{fmap.name}", nn.Conv2d(fmap.channels, n_priors * 4, kernel_size=3, padding=1))
            setattr(self, f"cl_{fmap.name}",
                    nn.Conv2d(fmap.channels, n_priors * n_classes, kernel_size=3, padding=1))

        for module in self.children():
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    @staticmethod
    def _flatten(predictions, n_values):
        """Reshape one map's predictions so that each row belongs to one prior.

        The channels of location (i, j) hold ``n_priors * n_values`` numbers, prior by prior; the
        rows come out location-major, row by row, the same order as ``create_prior_boxes``.

        :param predictions: (N, n_priors * n_values, H, W)
        :param n_values: 4 for offsets, n_classes for scores
        :return: (N, H * W * n_priors, n_values)
        """
        batch_size = predictions.size(0)
        return predictions.permute(0, 2, 3, 1).reshape(batch_size, -1, n_values)

    def forward(self, *feature_maps):
        """Predict offsets and scores on every prediction map.

        :param feature_maps: the maps in the order of the config: conv4_3 (normalized), conv7,
            conv8_2, conv9_2, conv10_2, conv11_2 features for SSD300
        :return: predicted_locs (N, n_priors, 4) and predicted_scores (N, n_priors, n_classes),
            n_priors = 8732 for SSD300
        """
        locs, scores = [], []
        for name, feats in zip(self.feature_map_names, feature_maps):
            locs.append(self._flatten(getattr(self, f"loc_{name}")(feats), 4))
            scores.append(self._flatten(getattr(self, f"cl_{name}")(feats), self.n_classes))
        return torch.cat(locs, dim=1), torch.cat(scores, dim=1)


def create_prior_boxes(config=SSD300_VGG16):
    """Create the priors (default boxes) of an SSD variant, in fractional centre-size coordinates.

    At location (i, j) of a k x k map the priors are centred on ((j + 0.5) / k, (i + 0.5) / k) (with
    a ``step`` in the config: ((j + 0.5) step, (i + 0.5) step) / image_size). Their sizes, in this
    order: scale s (ratio 1), the extra scale sqrt(s * s_next) (ratio 1), then for each extra ratio r
    the pair (s sqrt(r), s / sqrt(r)) and (s / sqrt(r), s sqrt(r)). This is torchvision's
    ``DefaultBoxGenerator`` order. Widths and heights are capped at 1 (the centres are not moved:
    clipping the priors themselves costs mAP, see the pitfalls; only a config with ``clip_centres``, NVIDIA's,
    clamps its centres to [0, 1] as its default boxes were made).

    :param config: an ``SSDConfig`` (default SSD300 with VGG16)
    :return: priors, a tensor of size (n_priors, 4) ((8732, 4) for SSD300), location-major, row by
        row, one map after the other
    """
    priors = []
    scales = [fmap.scale for fmap in config.feature_maps] + [config.last_scale]
    for k, fmap in enumerate(config.feature_maps):
        scale, next_scale = scales[k], scales[k + 1]
        shapes = [(scale, scale), (math.sqrt(scale * next_scale),) * 2]
        for ratio in fmap.aspect_ratios:
            shapes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            shapes.append((scale / math.sqrt(ratio), scale * math.sqrt(ratio)))

        step = config.image_size / fmap.size if fmap.step is None else fmap.step
        centres = (torch.arange(fmap.size, dtype=torch.float64) + 0.5) * step / config.image_size
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")  # row by row: y is the slow index
        centres_xy = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(shapes), 2)
        sizes_wh = torch.tensor(shapes, dtype=torch.float64).unsqueeze(0).expand(fmap.size ** 2, -1, 2)
        priors.append(torch.cat([centres_xy, sizes_wh], dim=-1).reshape(-1, 4))

    priors = torch.cat(priors, dim=0)
    priors[:, 2:] = priors[:, 2:].clamp(max=1.0)
    if config.clip_centres:
        priors[:, :2] = priors[:, :2].clamp(0.0, 1.0)
    return priors.float()


class SSD(nn.Module):
    """An SSD network: base, auxiliary convolutions, prediction convolutions and priors.

    Use ``SSD300`` or ``SSD512`` (or ``build_ssd``); this class holds what they share.
    """

    def __init__(self, n_classes, base="vgg16", image_size=300, pretrained_base=False):
        """
        :param n_classes: number of classes, background included (21 for Pascal VOC)
        :param base: "vgg16" (the paper) or "resnet50" (NVIDIA's SSD300 v1.1, 300x300 only)
        :param image_size: input side, 300 or 512 (512: VGG16 only)
        :param pretrained_base: load torchvision's ImageNet weights into the base (downloaded on
            first use)

        The priors are the variant's own; ``use_priors`` replaces them after building (converted COCO weights
        name theirs).
        """
        super().__init__()
        self.config = ssd_config(base, image_size)
        # How images must be prepared for this network (``check_preprocess_config``); None: ImageNet
        # mean/std and antialiased resizing, as train.py does. A converted checkpoint sets it.
        self.preprocess_config = None
        self.n_classes, self.base_name, self.image_size = n_classes, base, image_size
        if base == "vgg16":
            self.base = VGGBase()
            self.aux_convs = AuxiliaryConvolutions(image_size)
            # conv4_3 features have a much larger scale than the deeper maps; the paper (Sec. 3.1,
            # after ParseNet) L2-normalizes each location and rescales every channel by a learned
            # factor that starts at 20.
            self.rescale_factors = nn.Parameter(torch.full((1, 512, 1, 1), 20.0))
        else:
            self.base = ResNet50Base()
            self.aux_convs = ResNetAuxiliaryConvolutions()
        self.pred_convs = PredictionConvolutions(n_classes, self.config.feature_maps)

        # A buffer: it follows .to(device) and is saved in the state_dict, so a checkpoint carries
        # the exact priors the network was trained with.
        self.register_buffer("priors_cxcy", create_prior_boxes(self.config))
        self.priors_spec = None  # None: the variant's own priors (see use_priors)

        if pretrained_base:
            self.base.load_pretrained_layers()

    def train(self, mode=True):
        """Switch training mode on or off, keeping the batch norms of frozen layers in eval mode.

        A frozen stage (``train.py --freeze-base``, ``trainable_backbone_layers``) must not move its batch-norm
        statistics either (torchvision freezes a pretrained ResNet's batch norms altogether); VGG16 has none.

        :param mode: True for training mode
        :return: self
        """
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if not any(parameter.requires_grad for parameter in module.parameters()):
                    module.eval()
        return self

    def use_priors(self, priors):
        """Replace the priors (``priors_cxcy`` and ``config``) by those of a prior spec, in place.

        :param priors: a spec as ``config_with_priors`` takes it (a checkpoint's ``config["priors"]``)
        :raises ValueError: when it does not fit this network
        """
        self.config = config_with_priors(ssd_config(self.base_name, self.image_size), priors)
        self.priors_spec = prior_spec(self.config)
        self.priors_cxcy = create_prior_boxes(self.config).to(self.priors_cxcy.device)

    def forward(self, images):
        """Predict box offsets and class scores for all priors.

        :param images: (N, 3, image_size, image_size) normalized images
        :return: predicted_locs (N, n_priors, 4) offsets and predicted_scores (N, n_priors, n_classes)
            logits; n_priors is 8732 for SSD300, 24,564 for SSD512
        """
        if self.base_name == "vgg16":
            conv4_3_feats, conv7_feats = self.base(images)
            # The epsilon in F.normalize keeps an all-zero (dead ReLU) location from dividing by 0.
            conv4_3_feats = F.normalize(conv4_3_feats, p=2.0, dim=1, eps=1e-12) * self.rescale_factors
            return self.pred_convs(conv4_3_feats, conv7_feats, *self.aux_convs(conv7_feats))
        conv4_x_feats = self.base(images)
        return self.pred_convs(conv4_x_feats, *self.aux_convs(conv4_x_feats))

    @torch.no_grad()
    def detect_objects(self, predicted_locs, predicted_scores, min_score, max_overlap, top_k,
                       max_candidates_per_class=None, class_min_scores=None, class_agnostic=False):
        """Turn the raw predictions into detections: threshold, decode, per-class NMS, keep the best.

        The whole batch is processed at once: every (image, class) pair is its own NMS group, and
        many groups share one NMS call (see ``batched_nms_fractional``), so there is no Python loop
        over images, classes or boxes.

        :param predicted_locs: (N, n_priors, 4) predicted offsets (n_priors: 8732 for SSD300, 24,564 for SSD512)
        :param predicted_scores: (N, n_priors, n_classes) class logits
        :param min_score: a box is a candidate for a class when its score is above this
        :param max_overlap: a box overlapping a better box of the same class with IoU above this
            is suppressed
        :param top_k: keep at most this many detections per image, the highest scoring
        :param max_candidates_per_class: keep at most this many candidates per image and class
            before NMS (the Caffe code keeps ``EVAL_CANDIDATES_PER_CLASS``, 400; torchvision's
            ``topk_candidates``); ``None``
            keeps all
        :param class_min_scores: optional (n_classes - 1,) per-class floors, object classes in label
            order: a score below its class's floor is no candidate (``inf`` drops a class). Applied
            before NMS, so a class left out never suppresses a box of another (detect.py --classes,
            --thresholds)
        :param class_agnostic: one NMS group per image instead of per (image, class): a box overlapping
            a better box of any class is suppressed (detect.py --agnostic-nms)
        :return: three lists with one entry per image: boxes (n, 4) fractional x1y1x2y2 clipped to
            [0, 1], labels (n,) int64 and scores (n,); n may be 0
        """
        batch_size, n_priors, n_classes = predicted_scores.shape
        probabilities = F.softmax(predicted_scores.float(), dim=2)[:, :, 1:]  # background is no detection
        if class_min_scores is not None:
            floors = torch.as_tensor(class_min_scores, dtype=probabilities.dtype, device=probabilities.device)
            probabilities = probabilities.masked_fill(probabilities < floors, 0.0)

        if max_candidates_per_class is None or max_candidates_per_class >= n_priors:
            image_index, prior_index, class_index = torch.nonzero(probabilities > min_score, as_tuple=True)
            scores = probabilities[image_index, prior_index, class_index]
        else:
            # (N, n_classes - 1, max_candidates_per_class): the best priors of each image and class
            class_scores, best_priors = probabilities.transpose(1, 2).topk(max_candidates_per_class, dim=2)
            image_index, class_index, candidate = torch.nonzero(class_scores > min_score, as_tuple=True)
            scores = class_scores[image_index, class_index, candidate]
            prior_index = best_priors[image_index, class_index, candidate]

        # Candidates image by image, each image's in decreasing score order.
        order = torch.argsort(scores, descending=True)
        order = order[torch.sort(image_index[order], stable=True).indices]
        image_index, prior_index, class_index, scores = (image_index[order], prior_index[order],
                                                         class_index[order], scores[order])
        # Only the candidates are decoded: a trained network has a few hundred per image, not all the priors.
        candidate_locs = predicted_locs[image_index, prior_index].float()
        candidate_boxes = cxcy_to_xy(gcxgcy_to_cxcy(candidate_locs, self.priors_cxcy[prior_index])).clamp(0, 1)

        nms_class = torch.zeros_like(class_index) if class_agnostic else class_index
        keep = self._nms_top_k(candidate_boxes, scores, image_index, nms_class, n_classes - 1, batch_size,
                               max_overlap, top_k)
        counts = torch.bincount(image_index[keep], minlength=batch_size).tolist()
        return (list(candidate_boxes[keep].split(counts)),
                list((class_index[keep] + 1).split(counts)),
                list(scores[keep].split(counts)))

    @staticmethod
    def _nms_top_k(boxes, scores, image_index, class_index, n_object_classes, batch_size, max_overlap, top_k):
        """Per-class NMS of every image at once, then the ``top_k`` best detections of each image.

        Equal to this loop over images and classes, done in a few batched calls::

            for i in range(batch_size):
                kept = []
                for c in range(n_object_classes):
                    of_class = torch.nonzero((image_index == i) & (class_index == c)).squeeze(1)
                    kept.append(of_class[nms(boxes[of_class], scores[of_class], max_overlap)])
                kept = torch.cat(kept)
                keep_i = kept[scores[kept].argsort(descending=True)[:top_k]]

        Greedy NMS decides on a box by looking only at the better-scoring boxes of its class, so an
        image's ``top_k`` best survivors are always among its best candidates. An untrained network
        can have 100,000+ candidates per batch; running NMS on a window of each image's best
        candidates first, and widening it only for images where fewer than ``top_k`` survive, gives
        the same detections for a fraction of the work.

        :param boxes: (n, 4) candidate boxes, grouped image by image, by decreasing score within each
        :param scores: (n,) their scores
        :param image_index: (n,) the image of each candidate (sorted)
        :param class_index: (n,) its class, 0 for the first object class
        :param n_object_classes: number of classes without the background
        :param batch_size: number of images
        :param max_overlap: IoU above which a box is suppressed by a better one of its class
        :param top_k: detections to keep per image
        :return: indices of the kept candidates, image by image, by decreasing score within each
        """
        n_candidates = torch.bincount(image_index, minlength=batch_size)
        rank = SSD._rank_within_image(image_index, n_candidates)
        group = image_index * n_object_classes + class_index  # each (image, class) is its own NMS group
        # Four times top_k is enough for a trained network (most candidates survive or are few);
        # an untrained one may need the window widened once or twice.
        window = 4 * top_k
        while True:
            if int(n_candidates.max()) <= window:  # every candidate fits: no need to pick
                in_window = torch.arange(len(scores), device=scores.device)
            else:
                in_window = torch.nonzero(rank < window).squeeze(1)
            keep = in_window[batched_nms_fractional(boxes[in_window], scores[in_window], group[in_window],
                                                    max_overlap, image_index[in_window])]
            n_kept = torch.bincount(image_index[keep], minlength=batch_size)
            if not torch.any((n_kept < top_k) & (n_candidates > window)):
                break
            window *= 4
        keep = torch.sort(keep).values  # back to image by image, decreasing score
        return keep[SSD._rank_within_image(image_index[keep], n_kept) < top_k]

    @staticmethod
    def _rank_within_image(image_index, counts):
        """Position of each item within its image, for items grouped image by image.

        :param image_index: (n,) sorted image index of each item
        :param counts: (n_images,) items per image
        :return: (n,) 0 for the first item of each image, 1 for the second, ...
        """
        image_starts = torch.cumsum(counts, dim=0) - counts
        return torch.arange(image_index.numel(), device=image_index.device) - image_starts[image_index]


class SSD300(SSD):
    """SSD300: 300x300 input, 8732 priors, with the paper's VGG16 base or NVIDIA's ResNet-50 one."""

    def __init__(self, n_classes, base="vgg16", pretrained_base=False):
        """
        :param n_classes: number of classes, background included (21 for Pascal VOC)
        :param base: "vgg16" or "resnet50"
        :param pretrained_base: load torchvision's ImageNet weights into the base
        """
        super().__init__(n_classes, base=base, image_size=300, pretrained_base=pretrained_base)


class SSD512(SSD):
    """SSD512: 512x512 input, VGG16 base, seven prediction maps and 24,564 priors (the paper's SSD512)."""

    def __init__(self, n_classes, pretrained_base=False):
        """
        :param n_classes: number of classes, background included (21 for Pascal VOC)
        :param pretrained_base: load torchvision's ImageNet VGG16 into the base
        """
        super().__init__(n_classes, base="vgg16", image_size=512, pretrained_base=pretrained_base)


def build_ssd(n_classes, base="vgg16", image_size=300, pretrained_base=False):
    """The SSD for a base and an input size: ``SSD300(n_classes, base)`` or ``SSD512(n_classes)``.

    :param n_classes: number of classes, background included
    :param base: "vgg16" or "resnet50"
    :param image_size: 300 or 512
    :param pretrained_base: load torchvision's ImageNet weights into the base
    :return: the model (train mode, on the CPU), with the variant's priors (``SSD.use_priors`` replaces them)
    :raises ValueError: for an unknown variant
    """
    ssd_config(base, image_size)  # errors naming the choices, before any layer is built
    if image_size == 512:
        return SSD512(n_classes, pretrained_base=pretrained_base)
    return SSD300(n_classes, base=base, pretrained_base=pretrained_base)


class ResNet50Base(nn.Module):
    """ResNet-50 up to conv4_x, as in NVIDIA's SSD300 v1.1: a 38x38 map of 1024 channels at 300x300.

    torchvision's ResNet-50 without conv5_x, the average pool and the classifier; the first block of
    conv4_x (``layer3``) has its stride set to 1, so conv4_x stays at conv3_x's resolution (38x38)
    instead of halving it. Module names are torchvision's, so ImageNet weights load by name.
    """

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        resnet = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        first_block = self.layer3[0]
        first_block.conv2.stride = (1, 1)  # torchvision's ResNet-50 (v1.5) strides in the 3x3 conv
        first_block.downsample[0].stride = (1, 1)

    def forward(self, images):
        """:param images: (N, 3, 300, 300) normalized images
        :return: conv4_x features (N, 1024, 38, 38)
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer3(self.layer2(self.layer1(x)))

    def load_pretrained_layers(self, weights=None):
        """Fill the layers with torchvision's ImageNet ResNet-50 (``IMAGENET1K_V1`` by default, NVIDIA's
        choice), downloaded on first use into torch's hub cache; it expects ImageNet-normalized input.
        """
        from torchvision.models import ResNet50_Weights, resnet50  # imported here: no work at import time

        weights = ResNet50_Weights.IMAGENET1K_V1 if weights is None else weights
        resnet_state_dict = resnet50(weights=weights).state_dict()
        own_names = self.state_dict().keys()
        self.load_state_dict({name: value for name, value in resnet_state_dict.items() if name in own_names})


class ResNetAuxiliaryConvolutions(nn.Module):
    """NVIDIA's five additional blocks after conv4_x: 1x1 conv, BN, ReLU, 3x3 conv, BN, ReLU.

    The first three 3x3 convolutions have stride 2 (38 -> 19 -> 10 -> 5), the last two no padding
    (5 -> 3 -> 1). With batch norm after every convolution, the convolutions need no bias, and
    conv4_x needs no L2 normalization (its features are already normalized).
    """

    IN_OUT_CHANNELS = ((1024, 512), (512, 512), (512, 256), (256, 256), (256, 256))
    MIDDLE_CHANNELS = (256, 256, 128, 128, 128)

    def __init__(self):
        super().__init__()
        blocks = []
        for i, ((in_channels, out_channels), middle) in enumerate(zip(self.IN_OUT_CHANNELS, self.MIDDLE_CHANNELS)):
            shrink = dict(stride=2, padding=1) if i < 3 else dict(stride=1, padding=0)
            blocks.append(nn.Sequential(
                nn.Conv2d(in_channels, middle, kernel_size=1, bias=False),
                nn.BatchNorm2d(middle),
                nn.ReLU(inplace=True),
                nn.Conv2d(middle, out_channels, kernel_size=3, bias=False, **shrink),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ))
        self.blocks = nn.ModuleList(blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, conv4_x_feats):
        """:param conv4_x_feats: (N, 1024, 38, 38)
        :return: tuple of five maps: (N, 512, 19, 19), (N, 512, 10, 10), (N, 256, 5, 5), (N, 256, 3, 3),
            (N, 256, 1, 1)
        """
        feats, x = [], conv4_x_feats
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return tuple(feats)
