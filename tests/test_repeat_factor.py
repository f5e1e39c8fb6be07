"""Repeat-factor sampling (ssd_support/repeat_factor.py): the factors on a hand-computed example, the epochs it
draws, and the resumable batch stream over epochs of varying length."""

import math
from collections import Counter

import pytest

from ssd_support.repeat_factor import RepeatFactorSampler, repeat_factors
from ssd_support.resumable_loader import InfiniteBatchSampler, SeededAugmentation, sample_seed

# 10 images. Class 1 in 8 of them (f = 0.8), class 2 in 1 (f = 0.1), class 3 in 2 (f = 0.2; image 1's is
# difficult); image 9 has no objects.
OBJECTS = ([{"labels": [1, 2], "difficulties": [0, 0]}, {"labels": [3], "difficulties": [1]},
            {"labels": [1, 3], "difficulties": [0, 0]}] + [{"labels": [1], "difficulties": [0]}] * 6
           + [{"labels": [], "difficulties": []}])


def test_repeat_factors_hand_computed():
    # T = 0.4: r(1) = max(1, sqrt(0.4 / 0.8)) = 1, r(2) = sqrt(0.4 / 0.1) = 2, r(3) = sqrt(0.4 / 0.2) = sqrt(2);
    # an image takes its largest class factor, an image without objects 1.
    assert repeat_factors(OBJECTS, 0.4) == pytest.approx([2, math.sqrt(2), math.sqrt(2)] + [1] * 7)
    # Without difficult objects (--skip-difficult) class 3 is in 1 image only (r = 2) and image 1 has none.
    assert repeat_factors(OBJECTS, 0.4, keep_difficult=False) == pytest.approx([2, 1, 2] + [1] * 7)
    # A threshold below every class's frequency repeats nothing.
    assert repeat_factors(OBJECTS, 0.05) == [1.0] * 10


def test_epochs_repeat_each_image_its_factor_on_average_and_are_a_function_of_seed_and_epoch():
    factors = repeat_factors(OBJECTS, 0.4)
    sampler = RepeatFactorSampler(factors, seed=3)
    counts, lengths = Counter(), set()
    for epoch in range(400):
        sampler.set_epoch(epoch)
        pairs = list(sampler)
        lengths.add(len(pairs))
        images = Counter(index for index, _ in pairs)
        assert images[0] == 2 and all(images[i] == 1 for i in range(3, 10))  # integer factors: exactly
        assert images[1] in (1, 2) and images[2] in (1, 2)  # sqrt(2): 1 or 2 (stochastic rounding)
        # Copies of an image are numbered 0, 1, ... within the epoch (each gets its own augmentation seed).
        assert sorted(copy for index, copy in pairs if index == 0) == [0, 1]
        counts.update(images)
    assert counts[1] / 400 == pytest.approx(math.sqrt(2), abs=0.08) and len(lengths) > 1
    again = RepeatFactorSampler(factors, seed=3)
    again.set_epoch(7)
    sampler.set_epoch(7)
    assert list(again) == list(sampler)
    # Two processes share an epoch (padded to a multiple of 2, as DistributedSampler): together they cover it.
    ranks = [RepeatFactorSampler(factors, seed=3, num_replicas=2, rank=rank) for rank in (0, 1)]
    for rank in ranks:
        rank.set_epoch(7)
    assert len(ranks[0]) == len(ranks[1]) and Counter(list(ranks[0]) + list(ranks[1])) >= Counter(list(sampler))


def test_the_batch_stream_resumes_exactly_over_epochs_of_varying_length():
    sampler = RepeatFactorSampler(repeat_factors(OBJECTS, 0.4), seed=1)
    straight = iter(InfiniteBatchSampler(sampler, 3, 0))
    batches = [next(straight) for _ in range(20)]  # ~5 epochs of 10-12 images
    for start in (1, 4, 7, 13):
        resumed = iter(InfiniteBatchSampler(RepeatFactorSampler(repeat_factors(OBJECTS, 0.4), seed=1), 3, start))
        assert [next(resumed) for _ in range(20 - start)] == batches[start:], start
    # (index, epoch, copy) items: a second copy gets another augmentation seed, the first one the seed of a run
    # without repeat factors.
    item = next(item for batch in batches for item in batch if item[2] == 1)
    assert sample_seed(0, item[1], item[0], 1) != sample_seed(0, item[1], item[0])
    seen = []
    dataset = SeededAugmentation(type("Items", (), {"__getitem__": lambda self, i: seen.append(i) or i,
                                                    "__len__": lambda self: 10})(), seed=0)
    assert dataset[(4, 2, 1)] == 4 and dataset[(4, 2)] == 4 and seen == [4, 4]
