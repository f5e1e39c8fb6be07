"""SSD300 helpers: box math, the MultiBoxLoss, the paper's augmentations and the VOC mAP.

The file is organised in sections, in the order a reader meets them:

1. Box math      -- the coordinate systems SSD moves between (boundary, centre-size, offsets).
2. MultiBoxLoss  -- matching priors to objects, hard negative mining, the loss of the paper.
3. Augmentations -- the photometric / expand (zoom out) / crop / flip chain of the Caffe recipe.
4. Evaluation    -- the Pascal VOC average precision, exactly as the devkit computes it.
"""

import math

import torch
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


# =====================================================================================
# 3. Augmentations
# =====================================================================================


# =====================================================================================
# 4. Evaluation
# =====================================================================================
