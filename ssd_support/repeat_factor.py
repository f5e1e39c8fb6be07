"""Repeat-factor sampling for rare classes (train.py --repeat-factor-threshold T).

LVIS's answer to class imbalance (Gupta et al., "LVIS: A Dataset for Large Vocabulary Instance Segmentation",
CVPR 2019, Sec. 5; detectron2's ``RepeatFactorTrainingSampler``): with ``f(c)`` the fraction of training images
that contain class ``c``, each class gets the repeat factor ``r(c) = max(1, sqrt(T / f(c)))`` and each image the
largest factor of its classes (1 for an image without objects). An epoch then shows each image ``floor(r)`` times
plus once more with probability ``r - floor(r)`` (stochastic rounding, drawn again every epoch): classes in
fewer than a fraction T of the images are seen more often, the others as before.

The factors are built once from the lists; every epoch's draw is a pure function of (seed, epoch), so that a
resumed run sees exactly the batches of the uninterrupted one (ssd_support/resumable_loader.py).
"""

import math
from collections import Counter

import torch


def repeat_factors(objects, threshold, keep_difficult=True):
    """Each image's repeat factor.

    :param objects: the TRAIN objects list (``TRAIN_objects.json``): one {"labels": [...], "difficulties": [...]}
        per image
    :param threshold: T, a fraction of the images (> 0); LVIS uses 0.001
    :param keep_difficult: count difficult objects too (False: as --skip-difficult trains, without them)
    :return: list of floats >= 1, one per image, in the list's order
    """
    image_classes = [{label for label, difficult in zip(entry["labels"], entry["difficulties"])
                      if keep_difficult or not difficult} for entry in objects]
    images_with = Counter(label for classes in image_classes for label in classes)
    n_images = max(len(objects), 1)
    class_factor = {label: max(1.0, math.sqrt(threshold / (count / n_images))) for label, count in images_with.items()}
    return [max((class_factor[label] for label in classes), default=1.0) for classes in image_classes]


class RepeatFactorSampler:
    """A DistributedSampler in kind (``set_epoch``, ``len``, iteration) over an epoch of repeated images.

    Each epoch: the stochastic rounding of the factors, then a shuffle, both from a generator seeded with
    ``seed + epoch`` (as DistributedSampler seeds its shuffle); padded by cycling to a multiple of the processes,
    and this rank's share taken as DistributedSampler does (``rank::world_size``). The length varies from
    epoch to epoch.

    Yields (image index, copy) pairs: the copy number (0, 1, ...) of a repeated image within its epoch, so that
    each copy gets its own augmentation (resumable_loader.SeededAugmentation).

    :param factors: repeat_factors' list
    :param seed: the run's seed
    :param num_replicas: processes
    :param rank: this process's rank
    """

    def __init__(self, factors, seed=0, num_replicas=1, rank=0):
        self.factors = torch.tensor(factors, dtype=torch.float64)
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Draw epoch ``epoch``'s list (a pure function of seed and epoch)."""
        self.epoch = epoch
        generator = torch.Generator().manual_seed(self.seed + epoch)
        whole = torch.floor(self.factors)
        repeats = (whole + (torch.rand(len(self.factors), generator=generator, dtype=torch.float64)
                            < self.factors - whole)).long()
        indices = torch.repeat_interleave(torch.arange(len(self.factors)), repeats)
        first_of_image = torch.repeat_interleave(torch.cumsum(repeats, 0) - repeats, repeats)
        copies = torch.arange(len(indices)) - first_of_image
        order = torch.randperm(len(indices), generator=generator)
        indices, copies = indices[order].tolist(), copies[order].tolist()
        total = math.ceil(len(indices) / self.num_replicas) * self.num_replicas
        pairs = list(zip(indices, copies))
        pairs += (pairs * math.ceil(total / max(len(pairs), 1)))[:total - len(pairs)]
        self._pairs = pairs[self.rank:total:self.num_replicas]

    def __len__(self):
        """This rank's share of the current epoch."""
        return len(self._pairs)

    def __iter__(self):
        return iter(self._pairs)
