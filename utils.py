"""SSD helpers: the label map, box math, the MultiBoxLoss, the paper's augmentations and the VOC mAP.

The file is organised in sections, in the order a reader meets them (the label map first, before section 1):

1. Box math      -- the coordinate systems SSD moves between (boundary, centre-size, offsets) and the IoU.
2. MultiBoxLoss  -- matching priors to objects, hard negative mining, the loss of the paper.
3. Augmentations -- the Caffe recipe's chain step by step (photometric_distort, zoom_out, random_crop,
                    horizontal_flip, resize, normalize), its random draws, and ``transform`` (TRAIN: the chain;
                    TEST: resize and normalize) and ``preprocess`` (inference).
4. Evaluation    -- the Pascal VOC average precision (``average_precision``: 11-point and area) and
                    ``calculate_mAP``, the devkit's loop over detections.

The fast paths live in ssd_support/ and are tested equal to these: ssd_support/fast_augment.py (the TRAIN chain
in one resample, what the data loader runs; the same draws and boxes) and ssd_support/voc_map.py (the mAP
vectorised, what eval.py runs; the same APs). COCO AP: ssd_support/coco_eval.py.
"""

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torchvision.ops import box_iou


# The 20 Pascal VOC classes. Label 0 is always the background class, so a VOC model has 21 classes.
VOC_LABELS = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)


def make_label_map(class_names):
    """Build a label map from class names, background first.

    :param class_names: the object class names, in label order (an iterable of str)
    :return: dict from class name to integer label, with ``"background": 0``
    """
    label_map = {"background": 0}
    for name in class_names:
        label_map[name] = len(label_map)
    return label_map


# =====================================================================================
# 1. Box math
# =====================================================================================


def xy_to_cxcy(xy):
    """Boundary coordinates (x_min, y_min, x_max, y_max) to centre-size coordinates (c_x, c_y, w, h).

    :param xy: boxes in boundary coordinates, a tensor of size (n_boxes, 4) (or (..., 4))
    :return: the same boxes in centre-size coordinates, same size
    """
    return torch.cat([(xy[..., 2:] + xy[..., :2]) / 2, xy[..., 2:] - xy[..., :2]], dim=-1)


def cxcy_to_xy(cxcy):
    """Centre-size coordinates (c_x, c_y, w, h) to boundary coordinates (x_min, y_min, x_max, y_max).

    :param cxcy: boxes in centre-size coordinates, a tensor of size (n_boxes, 4) (or (..., 4))
    :return: the same boxes in boundary coordinates, same size
    """
    return torch.cat([cxcy[..., :2] - cxcy[..., 2:] / 2, cxcy[..., :2] + cxcy[..., 2:] / 2], dim=-1)


# The "variances" of the Caffe SSD code: offsets are divided by 0.1 (centre) and 0.2 (size) so that
# the regression targets have roughly unit scale. torchvision writes the same as BoxCoder weights
# (10, 10, 5, 5).
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2

# Largest log-size offset decoded, as in torchvision/Detectron (log(1000 / 16)): an untrained or
# diverging network cannot overflow exp() into inf boxes.
MAX_LOG_SIZE_OFFSET = math.log(1000.0 / 16)


def cxcy_to_gcxgcy(cxcy, priors_cxcy):
    """Encode boxes as the offsets the network regresses, relative to their priors (Eq. 2 of the paper).

    g_cx = (c_x - p_cx) / (p_w * 0.1),  g_w = log(w / p_w) / 0.2, and likewise for y and h.

    :param cxcy: boxes in centre-size coordinates, a tensor of size (..., n_priors, 4)
    :param priors_cxcy: the priors the boxes are encoded against, a tensor of size (n_priors, 4)
    :return: encoded offsets, a tensor of the size of ``cxcy``
    """
    return torch.cat(
        [
            (cxcy[..., :2] - priors_cxcy[..., :2]) / (priors_cxcy[..., 2:] * CENTER_VARIANCE),
            torch.log(cxcy[..., 2:] / priors_cxcy[..., 2:]) / SIZE_VARIANCE,
        ],
        dim=-1,
    )


def gcxgcy_to_cxcy(gcxgcy, priors_cxcy):
    """Decode predicted offsets back into boxes: the inverse of :func:`cxcy_to_gcxgcy`.

    :param gcxgcy: encoded offsets, a tensor of size (..., n_priors, 4)
    :param priors_cxcy: the priors the offsets are relative to, a tensor of size (n_priors, 4)
    :return: decoded boxes in centre-size coordinates, a tensor of the size of ``gcxgcy``
    """
    log_size = (gcxgcy[..., 2:] * SIZE_VARIANCE).clamp(max=MAX_LOG_SIZE_OFFSET)
    return torch.cat(
        [
            gcxgcy[..., :2] * CENTER_VARIANCE * priors_cxcy[..., 2:] + priors_cxcy[..., :2],
            torch.exp(log_size) * priors_cxcy[..., 2:],
        ],
        dim=-1,
    )


def find_jaccard_overlap(set_1, set_2):
    """Jaccard overlap (IoU) of every box in one set with every box in another.

    A thin name for :func:`torchvision.ops.box_iou`, kept because the SSD literature speaks of
    "Jaccard overlap".

    :param set_1: boxes in boundary coordinates, a tensor of size (n1, 4)
    :param set_2: boxes in boundary coordinates, a tensor of size (n2, 4)
    :return: IoU of each box of set 1 with each box of set 2, a tensor of size (n1, n2)
    """
    return box_iou(set_1, set_2)



# =====================================================================================
# 2. MultiBoxLoss
# =====================================================================================


class MultiBoxLoss(nn.Module):
    """The SSD loss (Sec. 2.2 of the paper): localization plus confidence, over the matched priors.

    1. Matching: every prior takes the object it overlaps most; every object also claims the prior
       that overlaps it most (so no object is left without a prior); priors whose best IoU is below
       ``threshold`` are background.
    2. Localization loss: Smooth L1 between predicted and encoded offsets, over positive priors only.
    3. Confidence loss: cross-entropy over all positives plus the ``neg_pos_ratio`` times as many
       negatives with the highest loss ("hard negative mining"), per image, so that the ~8700
       easy background priors do not drown the few positives.
    Both sums are divided by the number of positives in the whole batch; ``forward`` returns the two
    terms, (loc_loss, conf_loss), and the total is their sum.
    """

    def __init__(self, priors_cxcy, threshold=0.5, neg_pos_ratio=3, negatives_per_empty_image=0):
        """
        :param priors_cxcy: the priors, a tensor of size (n_priors, 4), fractional centre-size
        :param threshold: a prior whose best IoU with any object is below this is background
        :param neg_pos_ratio: hard negatives kept per positive, per image
        :param negatives_per_empty_image: hard negatives kept in each image without objects. The paper's loss
            mines ``neg_pos_ratio`` per positive *of the same image*, so an image without objects contributes
            exactly nothing (0, the default); a positive count makes such images teach the background too.
        """
        super().__init__()
        if negatives_per_empty_image < 0:
            raise ValueError(f"negatives_per_empty_image must be >= 0, got {negatives_per_empty_image}")
        self.threshold = threshold
        self.neg_pos_ratio = neg_pos_ratio
        self.negatives_per_empty_image = int(negatives_per_empty_image)
        # Buffers so that loss_fn.to(device) moves them; not saved, they come from the model.
        self.register_buffer("priors_cxcy", priors_cxcy.detach().clone(), persistent=False)
        self.register_buffer("priors_xy", cxcy_to_xy(self.priors_cxcy), persistent=False)

    def match(self, boxes, labels):
        """Assign an object (or background) to every prior of every image, the whole batch at once.

        Equal to this loop over images (Sec. 2.2 of the paper, "matching strategy")::

            for i in range(N):
                overlap = find_jaccard_overlap(boxes[i], self.priors_xy)  # (n_objects, n_priors)
                overlap_for_each_prior, object_for_each_prior = overlap.max(dim=0)
                prior_for_each_object = overlap.argmax(dim=1)  # each object claims its best prior ...
                object_for_each_prior[prior_for_each_object] = torch.arange(len(boxes[i]))
                overlap_for_each_prior[prior_for_each_object] = 1.0  # ... whatever its IoU
                true_classes[i] = labels[i][object_for_each_prior]
                true_classes[i][overlap_for_each_prior < self.threshold] = 0  # background

        The per-image object lists are padded to the longest one; padded objects get IoU -1 so
        they never win a prior.

        :param boxes: list of N tensors (n_objects_i, 4), fractional x1y1x2y2
        :param labels: list of N tensors (n_objects_i,), labels in 1..n_classes-1
        :return: true_classes (N, n_priors), the label of each prior's object, 0 for background;
            object_for_each_prior (N, n_priors), the index of that object in its image's list; and
            padded_boxes (N, max_objects, 4), the objects' boxes
        """
        batch_size, n_priors = len(boxes), self.priors_xy.size(0)
        device = self.priors_xy.device
        padded_boxes = pad_sequence([b.to(device, torch.float32).reshape(-1, 4) for b in boxes], batch_first=True)
        padded_labels = pad_sequence([l.to(device, torch.long).reshape(-1) for l in labels], batch_first=True)
        max_objects = padded_boxes.size(1)
        if max_objects == 0:  # no object anywhere: every prior is background
            background = torch.zeros(batch_size, n_priors, dtype=torch.long, device=device)
            return background, background, padded_boxes
        n_objects = torch.tensor([len(b) for b in boxes], device=device)
        is_object = torch.arange(max_objects, device=device) < n_objects[:, None]  # (N, M)

        # IoU of the real objects only, laid into the padded (N, M, n_priors) layout.
        overlap = torch.full((batch_size, max_objects, n_priors), -1.0, device=device)
        overlap[is_object] = find_jaccard_overlap(padded_boxes[is_object], self.priors_xy)
        overlap_for_each_prior, object_for_each_prior = overlap.max(dim=1)  # (N, n_priors)
        prior_for_each_object = overlap.argmax(dim=2)  # (N, M)

        # Each object claims its best prior, whatever that prior's IoU. Padded objects write into a
        # spare column that is then dropped. When two objects want the same prior the later one
        # wins ("amax" of the object index), as in torchvision's SSDMatcher on the CPU.
        target_column = torch.where(is_object, prior_for_each_object, torch.full_like(prior_for_each_object, n_priors))
        object_index = torch.arange(max_objects, device=device).expand(batch_size, -1)
        spare = torch.zeros(batch_size, 1, dtype=torch.long, device=device)
        forced_object = torch.cat([object_for_each_prior, spare], dim=1).scatter_reduce(
            1, target_column, object_index, reduce="amax", include_self=False)[:, :n_priors]
        is_forced = torch.zeros(batch_size, n_priors + 1, dtype=torch.bool, device=device).scatter(
            1, target_column, True)[:, :n_priors]
        object_for_each_prior = torch.where(is_forced, forced_object, object_for_each_prior)

        true_classes = padded_labels.gather(1, object_for_each_prior)
        true_classes[(overlap_for_each_prior < self.threshold) & ~is_forced] = 0
        return true_classes, object_for_each_prior, padded_boxes

    def forward(self, predicted_locs, predicted_scores, boxes, labels):
        """The two terms of the loss of a batch, with their gradients (as torchvision's ``compute_loss``).

        The paper's loss is ``conf_loss + alpha * loc_loss`` with alpha = 1 (Sec. 2.2, "set to 1 by cross
        validation"): callers sum the two terms, and can log them apart.

        :param predicted_locs: (N, n_priors, 4) predicted offsets
        :param predicted_scores: (N, n_priors, n_classes) class logits
        :param boxes: list of N tensors (n_objects_i, 4), fractional x1y1x2y2; may be empty
        :param labels: list of N tensors (n_objects_i,)
        :return: (loc_loss, conf_loss), two scalars, each already divided by the number of positives
        """
        n_classes = predicted_scores.size(2)
        true_classes, object_for_each_prior, padded_boxes = self.match(boxes, labels)
        positive_priors = true_classes != 0  # (N, n_priors)
        n_positives = positive_priors.sum(dim=1)  # (N,)
        # torchvision divides by max(1, n): a batch without objects gives a zero loss, not NaN.
        normalizer = n_positives.sum().clamp(min=1).float()

        # Only the positives have a box to regress, so only they are encoded.
        image_of_positive, prior_of_positive = torch.nonzero(positive_priors, as_tuple=True)
        true_boxes = padded_boxes[image_of_positive, object_for_each_prior[positive_priors]]
        true_locs = cxcy_to_gcxgcy(xy_to_cxcy(true_boxes), self.priors_cxcy[prior_of_positive])
        loc_loss = F.smooth_l1_loss(predicted_locs[positive_priors].float(), true_locs, reduction="sum") / normalizer

        conf_loss_all = F.cross_entropy(predicted_scores.float().reshape(-1, n_classes), true_classes.view(-1),
                                        reduction="none").view_as(true_classes)  # (N, n_priors)
        conf_loss_pos = conf_loss_all[positive_priors].sum()
        conf_loss_hard_neg = self._hard_negative_loss(conf_loss_all, positive_priors, n_positives)
        conf_loss = (conf_loss_pos + conf_loss_hard_neg) / normalizer
        return loc_loss, conf_loss

    def _hard_negative_loss(self, conf_loss_all, positive_priors, n_positives):
        """Sum of the confidence losses of the hardest negatives, ``neg_pos_ratio`` per positive (and
        ``negatives_per_empty_image`` in an image without positives).

        :param conf_loss_all: (N, n_priors) cross-entropy of every prior
        :param positive_priors: (N, n_priors) True where a prior is matched to an object
        :param n_positives: (N,) positives per image
        :return: scalar, summed over the batch
        """
        n_negatives = conf_loss_all.size(1) - n_positives
        wanted = torch.where(n_positives > 0, self.neg_pos_ratio * n_positives,
                             torch.full_like(n_positives, self.negatives_per_empty_image))
        n_hard_negatives = torch.minimum(wanted, n_negatives)  # (N,)
        k = int(n_hard_negatives.max())
        if k == 0:
            return conf_loss_all.new_zeros(())
        # Positives get -inf so that they are never picked as negatives.
        conf_loss_neg = conf_loss_all.masked_fill(positive_priors, float("-inf"))
        hardest = conf_loss_neg.topk(k, dim=1).values  # (N, k), in decreasing order
        is_hard_negative = torch.arange(k, device=hardest.device) < n_hard_negatives[:, None]
        return hardest[is_hard_negative].sum()



# =====================================================================================
# 3. Augmentations
# =====================================================================================

# The pixel work is done by torchvision.transforms.v2.functional (imported as TF: F is torch.nn.functional
# above); the SSD logic -- what to distort, where to put the canvas, which crop is valid -- is written out.
# The draws are functions of their own (_draw_photometric, _draw_zoom_out, _draw_crop) so that the fast TRAIN
# path the data loader runs, ssd_support/fast_augment.py, draws exactly what this chain draws.
# The randomness comes from Python's `random` and, for the crop windows, torch's generator: seeding both
# (train.py seeds every sample's draws) makes the augmentation reproducible.

# The input side of SSD300 (SSD512: 512); images are resized to a square of this side.
SSD_INPUT_SIZE = 300

# torchvision's ImageNet VGG16 was trained on [0, 1] RGB images normalized with these. A Caffe-converted
# VGG would want 0-255 BGR minus the mean instead; mixing the two up stops training from converging.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The zoom-out canvas is filled with the mean colour, which normalization turns into exactly zero.
MEAN_FILL_UINT8 = tuple(round(255 * m) for m in IMAGENET_MEAN)

# Photometric distortions of the Caffe SSD recipe, each applied with probability 0.5. Caffe adds a
# brightness delta of up to 32 (out of 255); like torchvision's RandomPhotometricDistort we scale by a
# factor of 1 +- 32/255 instead, which is the same change on a white pixel. The hue delta is 18 degrees.
PHOTOMETRIC_PROBABILITY = 0.5
BRIGHTNESS_RANGE = (1 - 32 / 255, 1 + 32 / 255)
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_RANGE = (-18 / 360, 18 / 360)

# Zoom out ("expand"): with probability 0.5, put the image on a canvas up to 4 times as wide and high.
# The paper credits it with +2 to 3 mAP points, mostly on small objects.
ZOOM_OUT_PROBABILITY = 0.5
ZOOM_OUT_MAX_SCALE = 4.0

# Random crop ("batch sampler" of the Caffe code). Each call picks one of these: None keeps the whole
# image, 0.0 takes any crop, the others need a crop that overlaps some object with at least that IoU.
CROP_MIN_IOU_CHOICES = (None, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
CROP_MAX_TRIALS = 50
CROP_SCALE_RANGE = (0.3, 1.0)  # side of the crop, as a fraction of the image side
CROP_ASPECT_RANGE = (0.5, 2.0)  # (width fraction) / (height fraction) of the crop

FLIP_PROBABILITY = 0.5

# The chain's parts, in its order (train.py --no-photometric, --no-zoom-out, --no-crop, --no-flip leave one out).
# A part left out draws nothing, so the others draw as they would in a chain without it; none at all is the TEST
# transform (resize and normalize).
AUGMENTATION_STEPS = ("photometric", "zoom_out", "crop", "flip")


def _draw_photometric():
    """Draw which photometric distortions apply, in which order and with which factors.

    The draws are those of the Caffe SSD recipe, in its order: brightness (p=0.5), a coin for whether
    contrast comes first or last, then contrast / saturation / hue / contrast, each with probability 0.5
    and a factor uniform in its range. Drawing them before touching any pixel lets the fast TRAIN path
    (``ssd_support.fast_augment``) apply them to the final 300x300 image, and ``photometric_distort`` to the whole one,
    from the same draws of Python's ``random``.

    :return: list of (name, factor) in application order, name in "brightness", "contrast",
        "saturation", "hue"; empty when none applies
    """
    operations = []

    def maybe(name, value_range):
        if random.random() < PHOTOMETRIC_PROBABILITY:
            operations.append((name, random.uniform(*value_range)))

    maybe("brightness", BRIGHTNESS_RANGE)
    contrast_first = random.random() < 0.5
    if contrast_first:
        maybe("contrast", CONTRAST_RANGE)
    maybe("saturation", SATURATION_RANGE)
    maybe("hue", HUE_RANGE)
    if not contrast_first:
        maybe("contrast", CONTRAST_RANGE)
    return operations


# The PIL kernels of torchvision (Pillow's ImageEnhance; hue through an HSV round trip).
_PIL_PHOTOMETRIC = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                    "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}


def photometric_distort(image):
    """Distort brightness, contrast, saturation and hue, each with probability 0.5, in random order.

    The order is the Caffe SSD one: brightness first, then contrast either before or after the
    saturation and hue changes (a coin decides), as in the paper's code, ssd.pytorch and torchvision.
    Done on the whole PIL image with torchvision's PIL kernels: this is the reference the fast TRAIN
    path (``ssd_support.fast_augment``, which distorts only the final 300x300 pixels) is tested against.

    :param image: a PIL RGB image
    :return: the distorted PIL RGB image, same size
    """
    for name, factor in _draw_photometric():
        image = _PIL_PHOTOMETRIC[name](image, factor)
    return image


def _draw_zoom_out(width, height, max_scale=ZOOM_OUT_MAX_SCALE):
    """Draw the zoom-out canvas: its size (a scale uniform in [1, max_scale]) and where the image sits on it.

    :param width: image width in pixels
    :param height: image height in pixels
    :return: (canvas_width, canvas_height, left, top), integers; the image covers
        [left, left + width) x [top, top + height) of the canvas
    """
    scale = random.uniform(1.0, max_scale)
    canvas_height, canvas_width = int(scale * height), int(scale * width)
    top = random.randint(0, canvas_height - height)
    left = random.randint(0, canvas_width - width)
    return canvas_width, canvas_height, left, top


def zoom_out(image, boxes, max_scale=ZOOM_OUT_MAX_SCALE):
    """Place the image at a random spot of a mean-filled canvas up to ``max_scale`` times larger ("expand").

    Shrinking the objects this way teaches the network small objects, which the crop alone never makes.

    :param image: a uint8 image tensor of size (3, H, W)
    :param boxes: boxes in pixel boundary coordinates, a tensor of size (n_objects, 4)
    :return: the canvas, a uint8 tensor of size (3, H', W'), and the boxes moved onto it, size (n_objects, 4)
    """
    _, height, width = image.shape
    canvas_width, canvas_height, left, top = _draw_zoom_out(width, height, max_scale)
    fill = torch.tensor(MEAN_FILL_UINT8, dtype=torch.uint8).view(3, 1, 1)
    canvas = fill.expand(3, canvas_height, canvas_width).clone()
    canvas[:, top:top + height, left:left + width] = image
    return canvas, boxes + torch.tensor([left, top, left, top], dtype=boxes.dtype)


def _sample_crop_windows(width, height, n_windows):
    """Draw candidate crop windows the way the Caffe SSD batch sampler does.

    The side scale s is uniform in [0.3, 1] and the aspect ratio a uniform in [0.5, 2], narrowed to
    [s^2, 1/s^2] so that both sides fit: a crop is s*sqrt(a) of the width by s/sqrt(a) of the height,
    at a uniformly random integer position. All trials are drawn at once so that they can be tested
    at once (one IoU call instead of up to 50).

    :param width: image width in pixels
    :param height: image height in pixels
    :param n_windows: how many windows to draw
    :return: windows (left, top, right, bottom) on integer pixel boundaries inside the image, a float
        tensor of size (n_windows, 4)
    """
    return torch.from_numpy(_sample_crop_windows_numpy(width, height, n_windows))


def _sample_crop_windows_numpy(width, height, n_windows):
    """``_sample_crop_windows`` as a float32 numpy array (n_windows, 4).

    The draws come from torch's generator (so seeding torch reproduces them); the float32 arithmetic runs in
    numpy, whose per-call cost on 50 numbers is a fraction of torch's.
    """
    draws = torch.rand(4, n_windows).numpy()  # one call: torch's per-call cost is most of the time here
    scale = CROP_SCALE_RANGE[0] + (CROP_SCALE_RANGE[1] - CROP_SCALE_RANGE[0]) * draws[0]
    square = scale * scale
    low = np.maximum(square, np.float32(CROP_ASPECT_RANGE[0]))
    high = np.minimum(1 / square, np.float32(CROP_ASPECT_RANGE[1]))
    root_aspect = np.sqrt(low + (high - low) * draws[1])
    crop_width = np.minimum(np.maximum(np.round(scale * root_aspect * width), 1), width)
    crop_height = np.minimum(np.maximum(np.round(scale / root_aspect * height), 1), height)
    left = np.minimum(np.floor(draws[2] * (width - crop_width + 1)), width - crop_width)
    top = np.minimum(np.floor(draws[3] * (height - crop_height + 1)), height - crop_height)
    return np.stack([left, top, left + crop_width, top + crop_height], axis=1)


def _iou_numpy(set_1, set_2):
    """``find_jaccard_overlap`` (torchvision's box_iou) on numpy arrays (n1, 4), (n2, 4) -> (n1, n2), in their
    dtype: float32 in the crop, float64 in ``calculate_mAP``."""
    area_1 = (set_1[:, 2] - set_1[:, 0]) * (set_1[:, 3] - set_1[:, 1])
    area_2 = (set_2[:, 2] - set_2[:, 0]) * (set_2[:, 3] - set_2[:, 1])
    top_left = np.maximum(set_1[:, None, :2], set_2[:, :2])
    bottom_right = np.minimum(set_1[:, None, 2:], set_2[:, 2:])
    size = np.maximum(bottom_right - top_left, 0)
    intersection = size[..., 0] * size[..., 1]
    return intersection / (area_1[:, None] + area_2 - intersection)


def _draw_crop(width, height, boxes, max_trials=CROP_MAX_TRIALS):
    """The decision of the SSD random crop, without pixels: which window, and which objects survive it.

    See ``random_crop`` for the rule. Only the image size is needed, so the fast TRAIN path can decide the
    crop before it decodes or resamples anything. numpy throughout: the same float32 arithmetic as torch
    (torchvision's box_iou), without torch's per-call overhead on arrays this small.

    :param width: image (or zoom-out canvas) width in pixels
    :param height: its height in pixels
    :param boxes: boxes in pixel boundary coordinates, a float32 numpy array (n_objects, 4)
    :return: window (left, top, right, bottom) as Python ints, or None for "keep the whole image";
        keep, a bool array (n_objects) of the objects that survive (None with the whole image); the kept boxes,
        float32 (n_kept, 4), in the window's pixel coordinates
    """
    min_iou = random.choice(CROP_MIN_IOU_CHOICES)
    if min_iou is None:
        return None, None, boxes
    has_objects = boxes.shape[0] > 0
    if not has_objects and min_iou > 0:
        return None, None, boxes

    windows = _sample_crop_windows_numpy(width, height, max_trials)  # (n_trials, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (n_objects, 2)
    # (n_trials, n_objects): is the object's centre inside the window (edges included, as in Caffe)?
    centre_inside = ((centres >= windows[:, None, :2]) & (centres <= windows[:, None, 2:])).all(axis=2)
    if has_objects:
        # (a) The IoU test. An implementation whose test never rejects (a known bug elsewhere)
        # silently weakens the augmentation, so this is the line to get right.
        overlap_ok = _iou_numpy(windows, boxes).max(axis=1) >= min_iou
        # (b) At least one object must survive the crop.
        valid = overlap_ok & centre_inside.any(axis=1)
    else:
        valid = np.ones(max_trials, dtype=bool)
    if not valid.any():
        return None, None, boxes

    trial = int(np.argmax(valid))  # the first valid trial, as a sequential loop would take
    window, keep = windows[trial], centre_inside[trial]
    # A centre inside the window makes the clipped box keep a positive width and height.
    kept = boxes[keep]  # a copy (boolean indexing)
    np.maximum(kept[:, :2], window[:2], out=kept[:, :2])
    np.minimum(kept[:, 2:], window[2:], out=kept[:, 2:])
    kept -= window[[0, 1, 0, 1]]  # into the window's coordinates
    return tuple(int(v) for v in window), keep, kept


def random_crop(image, boxes, labels, difficulties, max_trials=CROP_MAX_TRIALS):
    """The SSD random crop: a window that overlaps some object enough, keeping the objects centred in it.

    One minimum IoU is picked from (no crop, any crop, 0.1, 0.3, 0.5, 0.7, 0.9). Up to 50 windows are
    drawn; the first one is taken where (a) at least one object has IoU >= the minimum with the window
    and (b) at least one object has its centre inside it. Objects whose centre falls outside the window
    are dropped, the others are clipped to it. If no window qualifies, the image is returned whole, so
    a crop never drops every object. An image without objects only gets the "any crop" choice.

    :param image: a uint8 image tensor of size (3, H, W)
    :param boxes: boxes in pixel boundary coordinates, a tensor of size (n_objects, 4)
    :param labels: labels of the objects, a tensor of size (n_objects)
    :param difficulties: difficulties of the objects, a tensor of size (n_objects)
    :return: the cropped image (3, H', W') and the kept boxes (n_kept, 4) in its pixel coordinates,
        labels (n_kept) and difficulties (n_kept)
    """
    _, height, width = image.shape
    window, keep, kept_boxes = _draw_crop(width, height, boxes.to(torch.float32).numpy(), max_trials)
    if window is None:
        return image, boxes, labels, difficulties
    left, top, right, bottom = window
    keep = torch.from_numpy(keep)
    kept_boxes = torch.from_numpy(kept_boxes).to(boxes.dtype)
    return image[:, top:bottom, left:right], kept_boxes, labels[keep], difficulties[keep]


def _flip_boxes(boxes, width):
    """Mirror boxes (n_objects, 4) in pixel boundary coordinates left to right in an image ``width`` wide.

    :param boxes: a tensor or a numpy array (n_objects, 4)
    :return: (width - x_max, y_min, width - x_min, y_max), of the same type, size (n_objects, 4)
    """
    flipped = boxes[:, [2, 1, 0, 3]]  # advanced indexing: a copy, in torch as in numpy
    flipped[:, 0::2] = width - flipped[:, 0::2]
    return flipped


def horizontal_flip(image, boxes):
    """Mirror the image and its boxes left to right.

    :param image: an image tensor of size (3, H, W)
    :param boxes: boxes in pixel boundary coordinates, a tensor of size (n_objects, 4)
    :return: the flipped image (3, H, W) and boxes (n_objects, 4)
    """
    return TF.horizontal_flip(image), _flip_boxes(boxes, image.shape[-1])


def resize(image, boxes, size=SSD_INPUT_SIZE, antialias=True):
    """Resize the image to SSD's square input and turn its boxes into fractions of the image.

    Fractional boxes are what the priors are defined in, so the network never sees pixel sizes.

    :param image: a uint8 image tensor of size (3, H, W)
    :param boxes: boxes in pixel boundary coordinates, a tensor of size (n_objects, 4)
    :param size: side of the output (300 for SSD300, 512 for SSD512)
    :param antialias: low-pass filter before shrinking (this repository's training does; torchvision's COCO
        SSD300 was trained without, so its converted checkpoint asks for False)
    :return: the resized image (3, size, size) and the boxes as fractions in [0, 1], size (n_objects, 4)
    """
    _, height, width = image.shape
    fractional_boxes = boxes / torch.tensor([width, height, width, height], dtype=boxes.dtype)
    return TF.resize(image, [size, size], antialias=antialias), fractional_boxes


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Scale a uint8 image to [0, 1] and normalize it with a mean and standard deviation (ImageNet's by default).

    :param image: a uint8 image tensor of size (3, H, W), or a batch (N, 3, H, W) on any device (train.py
        normalizes its batches on the GPU)
    :param mean: per-channel mean, on the [0, 1] scale
    :param std: per-channel standard deviation, on the [0, 1] scale (1/255: 0-255 values minus the mean, as
        torchvision's COCO SSD300 wants)
    :return: a float tensor of the same size, (image / 255 - mean) / std
    """
    return TF.normalize(TF.to_dtype(image, torch.float32, scale=True), list(mean), list(std))


def preprocess_settings(preprocess_config=None):
    """The keyword arguments of ``preprocess`` / ``transform`` for a network's ``preprocess_config``.

    :param preprocess_config: ``model.preprocess_config`` (a checkpoint's ``config["preprocess"]``): None for
        this repository's own networks, {"mean", "std", "antialias"} for converted ones
    :return: {"mean": 3 floats, "std": 3 floats, "antialias": bool}
    """
    if preprocess_config is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "antialias": True}
    return {"mean": tuple(preprocess_config["mean"]), "std": tuple(preprocess_config["std"]),
            "antialias": bool(preprocess_config.get("antialias", True))}


def _to_rgb_pil(image):
    """Accept a PIL image (any mode) or an image tensor (C, H, W) (``TF.to_pil_image``); return a PIL RGB image."""
    if isinstance(image, torch.Tensor):
        image = TF.to_pil_image(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _as_uint8_tensor(image):
    """Accept a PIL image (any mode) or an image tensor (C, H, W); return a uint8 RGB tensor (3, H, W).

    A uint8 (3, H, W) tensor is returned as it is; other tensors (float in [0, 1], one or four channels) go
    through ``TF.to_pil_image`` and its conversion to RGB, as ``_to_rgb_pil``.
    """
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.dim() == 3 and image.size(0) == 3:
        return image
    return TF.pil_to_tensor(_to_rgb_pil(image))


def preprocess(image, size=SSD_INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD, antialias=True):
    """The TEST path without boxes, for inference: resize to size x size and normalize.

    :param image: a PIL image (any mode) or a uint8 RGB tensor (3, H, W)
    :param size: the model's input side (``model.image_size``)
    :param mean: normalization mean (``preprocess_settings(model.preprocess_config)`` gives the model's)
    :param std: normalization standard deviation
    :param antialias: low-pass filter before shrinking
    :return: a float tensor of size (3, size, size), normalized (ImageNet's mean/std by default)
    """
    image, _ = resize(_as_uint8_tensor(image), torch.zeros(0, 4), size, antialias=antialias)
    return normalize(image, mean, std)


def transform(image, boxes, labels, difficulties, split, size=SSD_INPUT_SIZE, mean=IMAGENET_MEAN,
              std=IMAGENET_STD, antialias=True, normalized=True, steps=AUGMENTATION_STEPS):
    """Apply the paper's augmentations (TRAIN) or just the resizing (TEST) to an image and its objects.

    TRAIN is the Caffe SSD chain, step by step on whole images: photometric_distort -> zoom_out (p=0.5, up to 4x)
    -> random_crop (IoU) -> horizontal_flip (p=0.5) -> resize to 300x300 (``size``) -> normalize (ImageNet's mean
    and std). The whole chain is worth about 19 mAP points (58 vs 77 in one reimplementation). TEST only resizes and
    normalizes. The data loader runs the same chain faster, ssd_support.fast_augment.augment_train: the same draws
    and boxes, the pixel work composed into one resample (tests/test_fast_augment.py holds the two equal).

    :param image: a PIL image (any mode) or a uint8 RGB tensor (3, H, W) (``PascalVOCDataset.load_image``)
    :param boxes: boxes in pixel boundary coordinates (x_min, y_min, x_max, y_max), size (n_objects, 4)
    :param labels: labels of the objects, a tensor of size (n_objects)
    :param difficulties: difficulties of the objects (0/1), a tensor of size (n_objects)
    :param split: "TRAIN" or "TEST"
    :param size: the model's input side (``model.image_size``: 300, or 512 for SSD512)
    :param mean: normalization mean (ImageNet's; a converted checkpoint may name another, see
        ``preprocess_settings``)
    :param std: normalization standard deviation
    :param antialias: low-pass filter before the final resize
    :param normalized: return the image normalized, as float (True), or as its uint8 pixels (False), for
        normalizing a whole batch on the GPU (``normalize`` takes (N, 3, H, W) too): train.py's data loader
        workers then skip the float work and hand over a quarter of the bytes
    :param steps: the TRAIN chain's parts applied, a subset of AUGMENTATION_STEPS (the others are skipped and
        draw nothing)
    :return: image (3, size, size) float normalized (uint8 if not ``normalized``), boxes (n_kept, 4) as fractions
        of the image, labels (n_kept), difficulties (n_kept)
    :raises ValueError: for a split other than TRAIN or TEST
    """
    split = split.upper()
    if split not in ("TRAIN", "TEST"):
        raise ValueError(f"split must be 'TRAIN' or 'TEST', got {split!r}")
    image = _as_uint8_tensor(image)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    difficulties = torch.as_tensor(difficulties, dtype=torch.uint8).reshape(-1)

    if split == "TRAIN":
        if "photometric" in steps:
            image = TF.pil_to_tensor(photometric_distort(_to_rgb_pil(image)))
        if "zoom_out" in steps and random.random() < ZOOM_OUT_PROBABILITY:
            image, boxes = zoom_out(image, boxes)
        if "crop" in steps:
            image, boxes, labels, difficulties = random_crop(image, boxes, labels, difficulties)
        if "flip" in steps and random.random() < FLIP_PROBABILITY:
            image, boxes = horizontal_flip(image, boxes)
    resized, boxes = resize(image, boxes, size, antialias=antialias)
    if not normalized:  # an image already size x size comes back from resize as it is: never hand out the caller's
        return (resized.clone() if resized is image else resized), boxes, labels, difficulties
    return normalize(resized, mean, std), boxes, labels, difficulties


# =====================================================================================
# 4. Evaluation
# =====================================================================================

# A detection is a true positive when its IoU with an object is *strictly* greater than this (VOC devkit).
VOC_IOU_THRESHOLD = 0.5

# The 11 recall thresholds of the VOC2007 metric, built exactly: np.arange(0, 1.1, 0.1) gives
# 0.30000000000000004 for the fourth one, so a recall of exactly 0.3 (e.g. 3 of 10 objects) would miss it.
VOC07_RECALL_THRESHOLDS = tuple(i / 10 for i in range(11))


def average_precision(precision, recall, use_07_metric=True):
    """Average precision of one class from its precision/recall curve, as the VOC devkit's voc_ap().

    :param precision: precision after each detection in score order, a float array (n,)
    :param recall: recall after each detection (non-decreasing), a float array (n,)
    :param use_07_metric: True for the VOC2007 11-point interpolation (what the SSD paper reports): the mean
        over t in {0, 0.1, ..., 1} of the best precision at recall >= t (0 if that recall is never reached).
        False for the VOC2010+ metric: the area under the precision envelope (precision made monotone
        decreasing), summed at the points where recall changes.
    :return: the AP, a float in [0, 1]
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    if use_07_metric:
        best_precisions = []
        for threshold in VOC07_RECALL_THRESHOLDS:
            reached = recall >= threshold
            best_precisions.append(precision[reached].max() if reached.any() else 0.0)
        # Summed, then divided once: perfect detections give exactly 1.0 (adding 1/11 eleven times does not).
        return float(sum(best_precisions) / len(VOC07_RECALL_THRESHOLDS))
    envelope_recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    changes = np.flatnonzero(envelope_recall[1:] != envelope_recall[:-1])
    return float(np.sum((envelope_recall[changes + 1] - envelope_recall[changes]) * envelope[changes + 1]))


def check_detection_lists(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties):
    """Check that the six per-image lists ``calculate_mAP`` takes fit together.

    :param det_boxes: list of N tensors (n_i, 4); det_labels, det_scores: lists of N tensors (n_i,)
    :param true_boxes: list of N tensors (m_i, 4); true_labels, true_difficulties: lists of N tensors (m_i,)
    :raises ValueError: one line naming the list and the image: a list with another number of images than
        true_boxes, boxes not of size (n, 4), an image whose boxes, labels and scores (difficulties) differ in number
    """
    n_images = len(true_boxes)
    for name, per_image in (("det_boxes", det_boxes), ("det_labels", det_labels), ("det_scores", det_scores),
                            ("true_labels", true_labels), ("true_difficulties", true_difficulties)):
        if len(per_image) != n_images:
            raise ValueError(f"{name} has {len(per_image)} images but true_boxes has {n_images}")
    groups = ((("det_boxes", "det_labels", "det_scores"), det_boxes, det_labels, det_scores),
              (("true_boxes", "true_labels", "true_difficulties"), true_boxes, true_labels, true_difficulties))
    for names, *per_image in groups:
        for i, (boxes, *values) in enumerate(zip(*per_image)):
            if boxes.numel() % 4:
                raise ValueError(f"{names[0]}[{i}] has size {tuple(boxes.shape)}; expected (n, 4)")
            counts = (boxes.numel() // 4, *(value.numel() for value in values))
            if len(set(counts)) > 1:
                raise ValueError(f"{names[0]}, {names[1]} and {names[2]} must have the same number of entries per "
                                 f"image; image {i} has {counts[0]}, {counts[1]} and {counts[2]}")


def calculate_mAP(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties,
                  use_07_metric=True, label_map=None, iou_threshold=VOC_IOU_THRESHOLD):
    """Mean average precision of detections, as the Pascal VOC devkit computes it: its loop over detections.

    For each class, the detections of all images are taken in descending score order (ties keep the input order:
    earlier image first, then the order within the image, a stable sort). Each is compared with the objects of
    its class in its own image and takes the one it overlaps most (difficult ones included; a tie goes to the first
    annotated, as np.argmax). Then:

    - IoU <= 0.5 (or no object): a false positive;
    - IoU > 0.5 with a difficult object: ignored, neither true nor false positive;
    - IoU > 0.5 with an object no earlier detection took: a true positive, and the object is taken;
    - IoU > 0.5 with an object already taken: a false positive (a duplicate).

    Recall counts the non-difficult objects only; :func:`average_precision` turns the precision/recall curve into
    the AP. IoU is the continuous IoU of fractional boxes (the devkit's "+1" is for integer pixel boxes). This is the
    loop to read; eval.py runs ssd_support.voc_map, the same rules vectorised (tests/test_voc_map.py holds the two
    equal, bench/bench_map.py times them).

    :param det_boxes: list of N tensors (n_i, 4), detected boxes, fractional x1y1x2y2, one tensor per image
    :param det_labels: list of N tensors (n_i,), their labels (1..n_classes-1; others are ignored)
    :param det_scores: list of N tensors (n_i,), their scores
    :param true_boxes: list of N tensors (m_i, 4), ground-truth boxes, fractional x1y1x2y2
    :param true_labels: list of N tensors (m_i,), their labels
    :param true_difficulties: list of N tensors (m_i,), 1/True for difficult objects
    :param use_07_metric: True (default) for the VOC2007 11-point AP the paper reports, False for area AP
    :param label_map: {class name: label} with "background": 0; the 20 VOC classes when None
    :param iou_threshold: a match needs an IoU strictly greater than this (0.5 in VOC)
    :return: ({class name: AP} in label order, mean AP; NaN when no class has an AP). A class with no non-difficult
        object has no AP: it is absent from the dict and left out of the mean. A class with objects but no detection
        has AP 0.
    :raises ValueError: when the lists do not fit together (:func:`check_detection_lists`)
    """
    if label_map is None:
        label_map = make_label_map(VOC_LABELS)
    check_detection_lists(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties)

    def as_array(tensor, dtype, shape=(-1,)):  # the devkit's arrays; .cpu(): images may sit on any device
        return tensor.detach().cpu().numpy().astype(dtype).reshape(shape)

    # All detections in one list, remembering their image; the objects stay per image, as the devkit's class_recs.
    det_box = np.concatenate([as_array(boxes, np.float64, (-1, 4)) for boxes in det_boxes] + [np.zeros((0, 4))])
    det_label = np.concatenate([as_array(labels, np.int64) for labels in det_labels] + [np.zeros(0, np.int64)])
    det_score = np.concatenate([as_array(scores, np.float64) for scores in det_scores] + [np.zeros(0)])
    det_image = np.repeat(np.arange(len(det_scores)), [scores.numel() for scores in det_scores])
    objects = [(as_array(boxes, np.float64, (-1, 4)), as_array(labels, np.int64), as_array(difficult, bool))
               for boxes, labels, difficult in zip(true_boxes, true_labels, true_difficulties)]

    aps = {}
    for name, label in sorted(label_map.items(), key=lambda item: item[1]):
        if label == 0:
            continue  # background
        # This class's objects in each image, and whether a detection has taken each one yet.
        class_objects = [(boxes[labels == label], difficult[labels == label]) for boxes, labels, difficult in objects]
        taken = [np.zeros(len(boxes), dtype=bool) for boxes, _ in class_objects]
        n_positives = sum(int((~difficult).sum()) for _, difficult in class_objects)
        if n_positives == 0:
            continue  # no recall to measure: the class has no AP

        detections = np.flatnonzero(det_label == label)
        detections = detections[np.argsort(-det_score[detections], kind="stable")]
        true_positive = np.zeros(len(detections))
        false_positive = np.zeros(len(detections))
        for d, k in enumerate(detections):
            boxes, difficult = class_objects[det_image[k]]
            if len(boxes) == 0:
                false_positive[d] = 1
                continue
            with np.errstate(invalid="ignore"):  # 0 / 0: a zero-area box on a zero-area object, no overlap
                overlaps = np.nan_to_num(_iou_numpy(det_box[k:k + 1], boxes)[0])
            j = int(np.argmax(overlaps))
            if overlaps[j] <= iou_threshold:
                false_positive[d] = 1
            elif difficult[j]:
                continue  # ignored
            elif not taken[det_image[k]][j]:
                true_positive[d] = 1
                taken[det_image[k]][j] = True
            else:
                false_positive[d] = 1  # a duplicate

        true_positive, false_positive = np.cumsum(true_positive), np.cumsum(false_positive)
        recall = true_positive / n_positives
        # As in the devkit: an ignored detection before any TP/FP gives 0 / eps = precision 0.
        precision = true_positive / np.maximum(true_positive + false_positive, np.finfo(np.float64).eps)
        aps[name] = average_precision(precision, recall, use_07_metric)
    mean_ap = float(np.mean(list(aps.values()))) if aps else float("nan")
    return aps, mean_ap
