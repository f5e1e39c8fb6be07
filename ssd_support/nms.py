"""Many NMS problems in few ``torchvision.ops.nms`` calls: the speed half of ``SSD.detect_objects``' NMS.

The lesson (model.py) says what is suppressed: per image and class, a box overlapping a better one by more than
the threshold. This module does it fast, with torchvision's own NMS: all groups of a batch in a few calls, by the
coordinate trick of ``torchvision.ops.batched_nms``. A leaf of ``ssd_support`` (torch and torchvision only), so the
lesson's model.py may import it.
"""

import torch
from torchvision.ops import nms

# Boxes per NMS call in detect_objects (see batched_nms_fractional): small enough that NMS's
# quadratic cost stays low, large enough that a batch needs few calls.
NMS_PIECE_SIZE = 2048


def batched_nms_fractional(boxes, scores, groups, iou_threshold, image_index, max_piece=NMS_PIECE_SIZE):
    """Non-maximum suppression within each group, many groups per ``torchvision.ops.nms`` call.

    It returns the boxes that this loop keeps (in another order), without the loop::

        keep = []
        for g in groups.unique():
            members = torch.nonzero(groups == g).squeeze(1)
            keep.append(members[nms(boxes[members], scores[members], iou_threshold)])

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
