"""Resumable batch streams: the data order and each image's augmentation as pure functions of (seed, epoch, image).

Training is counted in iterations (the paper's 120k), so the loader is an endless stream of batches. Its order
comes from a seeded DistributedSampler (one code path for one process and for torchrun), and each image's
augmentation from a seed derived from (seed, epoch, image): a run resumed at iteration k sees exactly the batches
the uninterrupted run would have seen, whatever the number of loader workers.
"""

import random
import re
import signal
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from datasets import collate_fn
from ssd_support.repeat_factor import RepeatFactorSampler


class DataLoadError(RuntimeError):
    """Raised when a training batch cannot be loaded (an image deleted or overwritten during the run)."""


class InfiniteBatchSampler:
    """Yield batches of (index, epoch) pairs forever, epoch after epoch, starting at a given iteration.

    The order of each epoch comes from a DistributedSampler (``set_epoch(epoch)``, seeded), so it depends on
    (seed, epoch, rank, world size) only: skipping ``start_iteration * batch_size`` samples reproduces exactly
    the batches an uninterrupted run would have drawn. Batches run across epoch boundaries, like Caffe's data
    layer, because training is counted in iterations.

    :param sampler: a DistributedSampler (world size 1 on a single process)
    :param batch_size: indices per batch
    :param start_iteration: number of batches already consumed (when resuming)
    """

    def __init__(self, sampler, batch_size, start_iteration=0):
        self.sampler = sampler
        self.batch_size = batch_size
        self.start_iteration = start_iteration

    def __iter__(self):
        epoch, offset = 0, self.start_iteration * self.batch_size
        self.sampler.set_epoch(epoch)
        while offset >= len(self.sampler):  # epoch by epoch: with repeat factors, epochs differ in length
            offset -= len(self.sampler)
            epoch += 1
            self.sampler.set_epoch(epoch)
        batch = []
        while True:
            self.sampler.set_epoch(epoch)
            for item in list(self.sampler)[offset:]:
                # A RepeatFactorSampler yields (index, copy): the copy keeps its own augmentation seed.
                batch.append((item, epoch) if isinstance(item, int) else (item[0], epoch, item[1]))
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            epoch, offset = epoch + 1, 0


def sample_seed(seed, epoch, index, copy=0):
    """A 32-bit seed for the augmentation of one (epoch, image) pair: a pure function of its arguments.

    :param copy: which copy of an image repeated within the epoch (repeat-factor sampling); 0 gives the seed of
        a run without repeats
    """
    return int(np.random.SeedSequence([seed, epoch, index] + ([copy] if copy else [])).generate_state(1)[0])


@contextmanager
def seeded_rngs(seed):
    """Seed python, numpy and torch (CPU) randomness for the block, then put the previous states back."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class SeededAugmentation(Dataset):
    """Wrap a dataset so that each (index, epoch) item is augmented with its own fixed seed.

    Random crops and flips then no longer depend on which worker process loads an image or on when the run
    was resumed: resuming is exact for any ``--workers``.

    :param dataset: the wrapped dataset (items ``(image, boxes, labels, difficulties)``)
    :param seed: the run's seed
    """

    def __init__(self, dataset, seed):
        self.dataset = dataset
        self.seed = seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index_and_epoch):
        index, epoch, *copy = index_and_epoch  # (index, epoch), or (index, epoch, copy) from repeat factors
        with seeded_rngs(sample_seed(self.seed, epoch, index, *copy)):
            return self.dataset[index]


def init_loader_worker(worker_id):
    """DataLoader worker_init_fn: one thread per worker, and workers ignore SIGINT and SIGTERM.

    Ctrl-C in a terminal reaches the whole process group, and so does SIGTERM from SLURM's scancel, a
    preemption or systemd; a worker that died of either would make the main process's next batch fail
    ("DataLoader worker ... killed by signal") before it could save its checkpoint. The main process handles
    both (stop_on_signals) and stops the workers itself when it leaves.

    PyTorch already gives each worker one torch thread; OpenCV (the photometric augmentations) would start a
    thread pool per worker, as many threads as cores, which only fight the other workers for them.
    """
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop_loader_workers(batches):
    """Stop the DataLoader workers behind the iterator ``batches`` now, the orderly way (asking them to finish).

    The workers ignore SIGTERM (init_loader_worker), so the fallback of Python's exit, terminate() with
    SIGTERM and an endless join(), would hang: they must be stopped before the process exits. PyTorch has no
    public call for this; its iterator's own shutdown (what its ``__del__`` runs) is used when present.

    :param batches: an iterator over a DataLoader (anything else is left alone)
    """
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def loader_error_message(error):
    """One line describing an exception raised while loading a batch, naming the file when it is known.

    A DataLoader worker's exception reaches the main process re-raised with the same type but a message of the
    form "Caught OSError in DataLoader worker process 0.\nOriginal Traceback ...\nOSError: PATH: ...";
    its last line is the original message. In the main process (``--workers 0``) the message is already that.

    :param error: the exception
    :return: str, one line
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # The traceback's last line is "TypeName: message", or "module.TypeName: message" for a type of our own.
    match = re.match(rf"^(?:\S+\.)?{re.escape(type(error).__name__)}: (.*)$", lines[-1])
    return match.group(1) if match else lines[-1]


def before_forking_workers(workers):
    """Make this process safe to fork loader workers from: OpenCV's thread pool reduced to the calling thread.

    OpenCV's pool does not survive a fork: a forked worker's ``cv2.setNumThreads`` (init_loader_worker) waits
    forever for pool threads that exist only in the parent, so a process that had run any parallel OpenCV call
    (``--workers 0`` augmentation, a video, a test session) hung at its first batch. With one thread in the
    parent there is no pool to inherit. train.py's main process runs no OpenCV work while it has workers.

    :param workers: the loader's worker processes (0: nothing to do)
    """
    if workers > 0:
        cv2.setNumThreads(1)


def make_train_loader(dataset, batch_size, seed, workers, dist_info, start_iteration, repeat_factors=None):
    """An endless DataLoader over ``dataset``, positioned at ``start_iteration``.

    :param batch_size: images per batch (per process)
    :param seed: the run's seed: the data order and every image's augmentation derive from it
    :param workers: loader worker processes
    :param dist_info: this process's DistInfo (rank, world size, device)
    :param start_iteration: batches already consumed (when resuming)
    :param repeat_factors: one repeat factor per image (ssd_support.repeat_factor.repeat_factors) to draw epochs
        of repeated images from (RepeatFactorSampler); None: each image once per epoch
    :return: (DataLoader yielding (images (N, 3, S, S), boxes list, labels list, difficulties list),
              the DistributedSampler (or RepeatFactorSampler) it draws from)
    """
    before_forking_workers(workers)
    # DistributedSampler also on a single process (world size 1): one code path, and its seeded per-epoch
    # permutation is what makes the data order resumable.
    if repeat_factors is not None:
        sampler = RepeatFactorSampler(repeat_factors, seed, num_replicas=dist_info.world_size, rank=dist_info.rank)
    else:
        sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=True, seed=seed, drop_last=False)
    batch_sampler = InfiniteBatchSampler(sampler, batch_size, start_iteration)
    loader = DataLoader(
        SeededAugmentation(dataset, seed),
        batch_sampler=batch_sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=dist_info.device.type == "cuda",
        worker_init_fn=init_loader_worker,
        # A private generator: creating the loader's iterator must not draw from the global RNG, or a resumed
        # run's global RNG stream would drift from the uninterrupted run's.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler
