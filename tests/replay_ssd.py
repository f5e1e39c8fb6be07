"""A stand-in for an SSD in evaluation tests: it replays prepared detections instead of running a network."""

import torch
from torch import nn


class ReplaySSD(nn.Module):
    """Returns a prepared list of per-image detections, in data-loader order, and records each call.

    :param detections: list of (boxes (n, 4) fractional, labels (n,), scores (n,)), one per image, in order
    """

    def __init__(self, detections):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter, so that callers find its device
        self.pending = list(detections)
        self.calls = []

    def forward(self, images):
        """Records how it was called; the outputs only have the right batch size."""
        self.calls.append({"training": self.training, "inference": torch.is_inference_mode_enabled(),
                           "shape": tuple(images.shape)})
        return torch.zeros(images.shape[0], 8732, 4), torch.zeros(images.shape[0], 8732, 3)

    def detect_objects(self, predicted_locs, predicted_scores, min_score, max_overlap, top_k,
                       max_candidates_per_class=None):
        """The next ``N`` images' prepared detections, as three lists: boxes, labels, scores."""
        self.calls[-1].update(min_score=min_score, max_overlap=max_overlap, top_k=top_k,
                              max_candidates_per_class=max_candidates_per_class)
        batch, self.pending = self.pending[:predicted_locs.shape[0]], self.pending[predicted_locs.shape[0]:]
        if not batch:
            return [], [], []
        boxes, labels, scores = zip(*batch)
        return list(boxes), list(labels), list(scores)
