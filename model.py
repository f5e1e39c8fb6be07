"""SSD300: the Single Shot MultiBox Detector of Liu et al. (ECCV 2016) with a VGG16 base.

The network is built from three parts, read in this order:

1. ``VGGBase`` -- VGG16 turned into a fully convolutional feature extractor. It gives the
   38x38 (conv4_3) and 19x19 (conv7) feature maps.
2. ``AuxiliaryConvolutions`` -- four extra blocks that shrink the map to 10x10, 5x5, 3x3 and 1x1.
3. ``PredictionConvolutions`` -- one 3x3 convolution per map for box offsets, one for class scores.

``SSD300`` glues them together, owns the 8732 priors ("default boxes") and turns raw predictions
into detections with ``detect_objects``. The layer names follow the paper (conv4_3, conv7,
conv8_2, ...) so that the code reads like Fig. 2 of the paper.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms

from utils import cxcy_to_xy, gcxgcy_to_cxcy

# The six feature maps that make predictions, their size at a 300x300 input, and the number of
# priors at each of their locations (Sec. 3 of the paper: 4 where the 3 and 1/3 ratios are left out).
FEATURE_MAPS = ("conv4_3", "conv7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")
FEATURE_MAP_SIZES = {"conv4_3": 38, "conv7": 19, "conv8_2": 10, "conv9_2": 5, "conv10_2": 3, "conv11_2": 1}
FEATURE_MAP_CHANNELS = {"conv4_3": 512, "conv7": 1024, "conv8_2": 512, "conv9_2": 256, "conv10_2": 256,
                        "conv11_2": 256}

# Prior scales s_k relative to the image side. The paper's formula s_k = 0.2 + 0.7 (k - 1) / (m - 1)
# spaces conv7..conv11_2 between 0.2 and 0.9; conv4_3 gets 0.1 (Sec. 3.1 of the paper and its
# Caffe code: conv4_3 objects are small).
PRIOR_SCALES = {"conv4_3": 0.1, "conv7": 0.2, "conv8_2": 0.375, "conv9_2": 0.55, "conv10_2": 0.725,
                "conv11_2": 0.9}

# Extra aspect ratios beyond 1 at each map; each r also brings 1/r. Exactly 1/3, not 0.333.
PRIOR_ASPECT_RATIOS = {"conv4_3": (2,), "conv7": (2, 3), "conv8_2": (2, 3), "conv9_2": (2, 3),
                       "conv10_2": (2,), "conv11_2": (2,)}

# 1 (s_k) + 1 (sqrt(s_k s_k+1)) + 2 per extra ratio: 4, 6, 6, 6, 4, 4.
N_PRIORS_PER_LOCATION = {fmap: 2 + 2 * len(PRIOR_ASPECT_RATIOS[fmap]) for fmap in FEATURE_MAPS}

# Boxes per NMS call in detect_objects (see batched_nms_fractional): small enough that NMS's
# quadratic cost stays low, large enough that a batch needs few calls.
NMS_PIECE_SIZE = 2048

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

        :param images: (N, 3, 300, 300) normalized images
        :return: conv4_3 features (N, 512, 38, 38) and conv7 features (N, 1024, 19, 19)
        """
        # In-place ReLUs (as torchvision's VGG): a convolution's output is not needed for its own
        # backward pass, so overwriting it saves one feature map of memory traffic per layer.
        x = F.relu(self.conv1_1(images), inplace=True)
        x = F.relu(self.conv1_2(x), inplace=True)
        x = self.pool1(x)
        x = F.relu(self.conv2_1(x), inplace=True)
        x = F.relu(self.conv2_2(x), inplace=True)
        x = self.pool2(x)
        x = F.relu(self.conv3_1(x), inplace=True)
        x = F.relu(self.conv3_2(x), inplace=True)
        x = F.relu(self.conv3_3(x), inplace=True)
        x = self.pool3(x)
        x = F.relu(self.conv4_1(x), inplace=True)
        x = F.relu(self.conv4_2(x), inplace=True)
        conv4_3_feats = F.relu(self.conv4_3(x), inplace=True)
        x = self.pool4(conv4_3_feats)
        x = F.relu(self.conv5_1(x), inplace=True)
        x = F.relu(self.conv5_2(x), inplace=True)
        x = F.relu(self.conv5_3(x), inplace=True)
        x = self.pool5(x)
        x = F.relu(self.conv6(x), inplace=True)
        conv7_feats = F.relu(self.conv7(x), inplace=True)
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
    """The extra layers of Fig. 2 of the paper: conv8 to conv11, each a 1x1 then a 3x3 convolution."""

    def __init__(self):
        super().__init__()
        self.conv8_1 = nn.Conv2d(1024, 256, kernel_size=1)
        self.conv8_2 = nn.Conv2d(256, 512, kernel_size=3, stride=2, padding=1)  # 19 -> 10
        self.conv9_1 = nn.Conv2d(512, 128, kernel_size=1)
        self.conv9_2 = nn.Conv2d(128, 256, kernel_size=3, stride=2, padding=1)  # 10 -> 5
        self.conv10_1 = nn.Conv2d(256, 128, kernel_size=1)
        self.conv10_2 = nn.Conv2d(128, 256, kernel_size=3)  # 5 -> 3, no padding
        self.conv11_1 = nn.Conv2d(256, 128, kernel_size=1)
        self.conv11_2 = nn.Conv2d(128, 256, kernel_size=3)  # 3 -> 1, no padding

        for module in self.children():
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, conv7_feats):
        """Shrink the conv7 map step by step.

        :param conv7_feats: (N, 1024, 19, 19)
        :return: conv8_2 (N, 512, 10, 10), conv9_2 (N, 256, 5, 5), conv10_2 (N, 256, 3, 3) and
            conv11_2 (N, 256, 1, 1) features
        """
        x = F.relu(self.conv8_1(conv7_feats), inplace=True)
        conv8_2_feats = F.relu(self.conv8_2(x), inplace=True)
        x = F.relu(self.conv9_1(conv8_2_feats), inplace=True)
        conv9_2_feats = F.relu(self.conv9_2(x), inplace=True)
        x = F.relu(self.conv10_1(conv9_2_feats), inplace=True)
        conv10_2_feats = F.relu(self.conv10_2(x), inplace=True)
        x = F.relu(self.conv11_1(conv10_2_feats), inplace=True)
        conv11_2_feats = F.relu(self.conv11_2(x), inplace=True)
        return conv8_2_feats, conv9_2_feats, conv10_2_feats, conv11_2_feats


class PredictionConvolutions(nn.Module):
    """3x3 convolutions that predict, for every prior, 4 box offsets and ``n_classes`` scores."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        for fmap in FEATURE_MAPS:
            n_priors = N_PRIORS_PER_LOCATION[fmap]
            in_channels = FEATURE_MAP_CHANNELS[fmap]
            setattr(self, f"loc_{fmap}", nn.Conv2d(in_channels, n_priors * 4, kernel_size=3, padding=1))
            setattr(self, f"cl_{fmap}", nn.Conv2d(in_channels, n_priors * n_classes, kernel_size=3, padding=1))

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
        """Predict offsets and scores on the six feature maps.

        :param feature_maps: conv4_3 (normalized), conv7, conv8_2, conv9_2, conv10_2, conv11_2 features
        :return: predicted_locs (N, 8732, 4) and predicted_scores (N, 8732, n_classes)
        """
        locs, scores = [], []
        for fmap, feats in zip(FEATURE_MAPS, feature_maps):
            locs.append(self._flatten(getattr(self, f"loc_{fmap}")(feats), 4))
            scores.append(self._flatten(getattr(self, f"cl_{fmap}")(feats), self.n_classes))
        return torch.cat(locs, dim=1), torch.cat(scores, dim=1)


def create_prior_boxes():
    """Create the 8732 priors (default boxes) of SSD300, in fractional centre-size coordinates.

    At location (i, j) of a k x k map the priors are centred on ((j + 0.5) / k, (i + 0.5) / k). Their
    sizes, in this order: scale s (ratio 1), the extra scale sqrt(s * s_next) (ratio 1; 1 for the
    last map), then for each extra ratio r the pair (s sqrt(r), s / sqrt(r)) and (s / sqrt(r), s sqrt(r)).
    This is torchvision's ``DefaultBoxGenerator`` order. Widths and heights are capped at 1 (the
    centres are never moved: clipping the priors themselves costs mAP, see the pitfalls).

    :return: priors, a tensor of size (8732, 4), location-major, row by row, one map after the other
    """
    priors = []
    for k, fmap in enumerate(FEATURE_MAPS):
        size = FEATURE_MAP_SIZES[fmap]
        scale = PRIOR_SCALES[fmap]
        next_scale = PRIOR_SCALES[FEATURE_MAPS[k + 1]] if k + 1 < len(FEATURE_MAPS) else 1.0
        shapes = [(scale, scale), (math.sqrt(scale * next_scale),) * 2]
        for ratio in PRIOR_ASPECT_RATIOS[fmap]:
            shapes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            shapes.append((scale / math.sqrt(ratio), scale * math.sqrt(ratio)))

        centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")  # row by row: y is the slow index
        centres_xy = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(shapes), 2)
        sizes_wh = torch.tensor(shapes, dtype=torch.float64).unsqueeze(0).expand(size * size, -1, 2)
        priors.append(torch.cat([centres_xy, sizes_wh], dim=-1).reshape(-1, 4))

    priors = torch.cat(priors, dim=0)
    priors[:, 2:] = priors[:, 2:].clamp(max=1.0)
    return priors.float()


def batched_nms_fractional(boxes, scores, groups, iou_threshold, image_index, max_piece=NMS_PIECE_SIZE):
    """Non-maximum suppression within each group, many groups per ``torchvision.ops.nms`` call.

    This is the "coordinate trick" of ``torchvision.ops.batched_nms``: the boxes are fractional, so
    inside [0, 1], and shifting group g by 2g gives every group a region of its own; boxes of
    different groups then never overlap and one plain NMS handles all groups. (``batched_nms``
    itself uses the trick only up to 1,000 boxes on the CPU and otherwise loops over the groups in
    Python, several times slower for 8 images x 20 classes.) The shift is done in float64 so that
    the far-away groups keep their boxes' precision.

    Plain NMS compares every kept box with every later one, so its cost grows with the square of
    the boxes in a call. The boxes are therefore cut, between images, into pieces of about
    ``max_piece`` boxes, one call each: the cost stays linear in the batch size.

    :param boxes: (n, 4) boxes, fractional x1y1x2y2 in [0, 1]
    :param scores: (n,) their scores
    :param groups: (n,) int64 group of each box; a group never spans two images
    :param iou_threshold: a box overlapping a better box of its group by more than this is dropped
    :param image_index: (n,) sorted image index of each box
    :param max_piece: boxes per NMS call, roughly (an image is never split)
    :return: indices of the kept boxes, piece by piece, in decreasing score order within each piece
    """
    shifted_boxes = boxes.to(torch.float64) + groups.to(torch.float64)[:, None] * 2
    scores = scores.to(torch.float64)
    # Piece of each box: that of the image it belongs to, by where the image starts.
    boxes_per_image = torch.bincount(image_index)
    image_starts = torch.cumsum(boxes_per_image, dim=0) - boxes_per_image
    piece_sizes = torch.bincount(image_starts[image_index] // max_piece).tolist()
    keep, piece_start = [], 0
    for piece_boxes, piece_scores in zip(shifted_boxes.split(piece_sizes), scores.split(piece_sizes)):
        keep.append(piece_start + nms(piece_boxes, piece_scores, iou_threshold))
        piece_start += len(piece_boxes)
    return torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


class SSD300(nn.Module):
    """The SSD300 network: VGG16 base, auxiliary convolutions, prediction convolutions and priors."""

    def __init__(self, n_classes, pretrained_base=False):
        """
        :param n_classes: number of classes, background included (21 for Pascal VOC)
        :param pretrained_base: load torchvision's ImageNet VGG16 into the base (needs the weights
            file, downloaded on first use)
        """
        super().__init__()
        self.n_classes = n_classes
        self.base = VGGBase()
        self.aux_convs = AuxiliaryConvolutions()
        self.pred_convs = PredictionConvolutions(n_classes)

        # conv4_3 features have a much larger scale than the deeper maps; the paper (Sec. 3.1, after
        # ParseNet) L2-normalizes each location and rescales every channel by a learned factor
        # that starts at 20.
        self.rescale_factors = nn.Parameter(torch.full((1, 512, 1, 1), 20.0))

        # A buffer: it follows .to(device) and is saved in the state_dict, so a checkpoint carries
        # the exact priors the network was trained with.
        self.register_buffer("priors_cxcy", create_prior_boxes())

        if pretrained_base:
            self.base.load_pretrained_layers()

    def forward(self, images):
        """Predict box offsets and class scores for all 8732 priors.

        :param images: (N, 3, 300, 300) normalized images
        :return: predicted_locs (N, 8732, 4) offsets and predicted_scores (N, 8732, n_classes) logits
        """
        conv4_3_feats, conv7_feats = self.base(images)
        # The epsilon in F.normalize keeps an all-zero (dead ReLU) location from dividing by 0.
        conv4_3_feats = F.normalize(conv4_3_feats, p=2.0, dim=1, eps=1e-12) * self.rescale_factors
        aux_feats = self.aux_convs(conv7_feats)
        return self.pred_convs(conv4_3_feats, conv7_feats, *aux_feats)

    @torch.no_grad()
    def detect_objects(self, predicted_locs, predicted_scores, min_score, max_overlap, top_k,
                       max_candidates_per_class=None):
        """Turn the raw predictions into detections: threshold, decode, per-class NMS, keep the best.

        The whole batch is processed at once: every (image, class) pair is its own NMS group, and
        many groups share one NMS call (see ``batched_nms_fractional``), so there is no Python loop
        over images, classes or boxes.

        :param predicted_locs: (N, 8732, 4) predicted offsets
        :param predicted_scores: (N, 8732, n_classes) class logits
        :param min_score: a box is a candidate for a class when its score is above this
        :param max_overlap: a box overlapping a better box of the same class with IoU above this
            is suppressed
        :param top_k: keep at most this many detections per image, the highest scoring
        :param max_candidates_per_class: keep at most this many candidates per image and class
            before NMS (the Caffe code keeps 400; torchvision's ``topk_candidates``); ``None``
            keeps all
        :return: three lists with one entry per image: boxes (n, 4) fractional x1y1x2y2 clipped to
            [0, 1], labels (n,) int64 and scores (n,); n may be 0
        """
        batch_size, n_priors, n_classes = predicted_scores.shape
        probabilities = F.softmax(predicted_scores.float(), dim=2)[:, :, 1:]  # background is no detection

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
        # Only the candidates are decoded: a trained network has a few hundred per image, not 8732.
        candidate_locs = predicted_locs[image_index, prior_index].float()
        candidate_boxes = cxcy_to_xy(gcxgcy_to_cxcy(candidate_locs, self.priors_cxcy[prior_index])).clamp(0, 1)

        keep = self._nms_top_k(candidate_boxes, scores, image_index, class_index, n_classes - 1, batch_size,
                               max_overlap, top_k)
        counts = torch.bincount(image_index[keep], minlength=batch_size).tolist()
        return (list(candidate_boxes[keep].split(counts)),
                list((class_index[keep] + 1).split(counts)),
                list(scores[keep].split(counts)))

    @staticmethod
    def _nms_top_k(boxes, scores, image_index, class_index, n_object_classes, batch_size, max_overlap, top_k):
        """Per-class NMS of every image at once, then the ``top_k`` best detections of each image.

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
        rank = SSD300._rank_within_image(image_index, n_candidates)
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
        return keep[SSD300._rank_within_image(image_index[keep], n_kept) < top_k]

    @staticmethod
    def _rank_within_image(image_index, counts):
        """Position of each item within its image, for items grouped image by image.

        :param image_index: (n,) sorted image index of each item
        :param counts: (n_images,) items per image
        :return: (n,) 0 for the first item of each image, 1 for the second, ...
        """
        image_starts = torch.cumsum(counts, dim=0) - counts
        return torch.arange(image_index.numel(), device=image_index.device) - image_starts[image_index]


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
    for i, fmap in enumerate(FEATURE_MAPS):
        names[f"pred_convs.loc_{fmap}"] = f"head.regression_head.module_list.{i}"
        names[f"pred_convs.cl_{fmap}"] = f"head.classification_head.module_list.{i}"

    state_dict = {}
    for ours, theirs in names.items():
        state_dict[f"{ours}.weight"] = tv_state_dict[f"{theirs}.weight"]
        state_dict[f"{ours}.bias"] = tv_state_dict[f"{theirs}.bias"]
    state_dict["rescale_factors"] = tv_state_dict["backbone.scale_weight"].view(1, -1, 1, 1)
    return state_dict


def load_model_from_checkpoint(path, device="cpu"):
    """Rebuild a trained SSD300 from a checkpoint written by ``train.py``.

    :param path: path of the ``.pt`` checkpoint (a dict with ``"model"`` and ``"config"``)
    :param device: where to put the model
    :return: the model in eval mode on ``device``, and the label map (class name -> label)
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file, or not a checkpoint at all
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not an SSD300 checkpoint (expected the keys 'model' and 'config')")
    config = checkpoint["config"]
    model = SSD300(n_classes=config["n_classes"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), dict(config["label_map"])
