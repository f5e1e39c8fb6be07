"""Training infrastructure for train.py: what makes a run resumable, observable and distributable.

None of this is the SSD lesson (that is train.py's recipe and loop, model.py and utils.py); it is what lets a
run of 120,000 iterations survive Ctrl-C, preemption and several GPUs:

1. Resumable batch streams -- the data order is a pure function of (seed, epoch) and each image's
   augmentation a pure function of (seed, epoch, image), so a run resumed at iteration k sees exactly the
   batches the uninterrupted run would have seen, whatever the number of loader workers.
2. Checkpoint files and RNG states -- atomic writes, the newest N kept, generator states as plain tensors
   (``torch.load(weights_only=True)`` reads them back).
3. The log -- train_log.csv, loss_curve.png, images/s.
4. Several processes and signals -- torchrun's process group, all-reduced step statistics, and SIGINT /
   SIGTERM turned into "stop after this step".
"""

import csv
import glob
import hashlib
import importlib
import io
import json
import math
import os
import random
import re
import signal
import sys
from contextlib import contextmanager
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ssd_support.files import write_atomically

try:
    import fcntl  # POSIX; on Windows the checkpoint folder is not locked
except ImportError:  # pragma: no cover
    fcntl = None


class TrainingSetupError(ValueError):
    """Raised for unusable input (an empty data set, a checkpoint or folder that does not fit the run); the
    message is one line naming the file or the setting."""


class CheckpointWriteError(OSError):
    """Raised when a checkpoint cannot be written (disk full, no permission); the earlier ones are intact."""


class DataLoadError(RuntimeError):
    """Raised when a training batch cannot be loaded (an image deleted or overwritten during the run)."""


class DistInfo(NamedTuple):
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        """Rank 0 writes the checkpoints and the log; the others only train."""
        return self.rank == 0


class StopRequest:
    """Set by a signal handler (stop_on_signals), read by the training loop after each step."""

    def __init__(self):
        self.stop = False


CHECKPOINT_PATTERN = re.compile(r"^ssd(?:300|512)_iter_(\d+)\.pt$")
LOG_FIELDS = ("iteration", "loss", "loc_loss", "conf_loss", "lr", "images_per_s", "elapsed_s", "map_11pt")


# =====================================================================================
# Resumable batch streams: the data order and each image's augmentation as pure functions of (seed, epoch, image)
# =====================================================================================


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
        epoch, offset = divmod(self.start_iteration * self.batch_size, len(self.sampler))
        batch = []
        while True:
            self.sampler.set_epoch(epoch)
            for index in list(self.sampler)[offset:]:
                batch.append((index, epoch))
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            epoch, offset = epoch + 1, 0


def sample_seed(seed, epoch, index):
    """A 32-bit seed for the augmentation of one (epoch, image) pair: a pure function of its arguments."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


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
        index, epoch = index_and_epoch
        with seeded_rngs(sample_seed(self.seed, epoch, index)):
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


def make_train_loader(dataset, args, dist_info, start_iteration):
    """An endless DataLoader over ``dataset``, positioned at ``start_iteration``.

    :return: (DataLoader yielding (images (N, 3, S, S), boxes list, labels list, difficulties list),
              the DistributedSampler it draws from)
    """
    from datasets import collate_fn

    # DistributedSampler also on a single process (world size 1): one code path, and its seeded per-epoch
    # permutation is what makes the data order resumable.
    sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                 shuffle=True, seed=args.seed, drop_last=False)
    batch_sampler = InfiniteBatchSampler(sampler, args.batch_size, start_iteration)
    loader = DataLoader(
        SeededAugmentation(dataset, args.seed),
        batch_sampler=batch_sampler,
        collate_fn=collate_fn,
        num_workers=args.workers,
        pin_memory=dist_info.device.type == "cuda",
        worker_init_fn=init_loader_worker,
        # A private generator: creating the loader's iterator must not draw from the global RNG, or a resumed
        # run's global RNG stream would drift from the uninterrupted run's.
        generator=torch.Generator().manual_seed(args.seed),
    )
    return loader, sampler


# =====================================================================================
# Checkpoint files and random-generator states
# =====================================================================================


def checkpoint_path(checkpoint_dir, iteration, image_size=300):
    """Path of the checkpoint written after ``iteration`` optimizer steps (ssd300_iter_N.pt, or ssd512_...)."""
    return os.path.join(checkpoint_dir, f"ssd{image_size}_iter_{iteration:06d}.pt")


def list_checkpoints(checkpoint_dir):
    """The checkpoints in a folder, oldest first, as a list of (iteration, path)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(checkpoint_dir, name)))
    return sorted(found)


def latest_checkpoint(checkpoint_dir):
    """The checkpoint of the highest iteration in a folder: the one rule for "latest" (train.py's
    ``--resume latest``, detect.py without ``--checkpoint``). File times are not used: a copied or
    restored folder keeps its iterations but not its times.

    :return: its path, or None when the folder holds no ssd300_iter_N.pt / ssd512_iter_N.pt
    """
    found = list_checkpoints(checkpoint_dir)
    return found[-1][1] if found else None


def prune_checkpoints(checkpoint_dir, keep, protect=None):
    """Delete all but the newest ``keep`` checkpoints (``keep`` <= 0: delete none), never ``protect``."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(checkpoint_dir)[:-keep]:
        if protect is None or os.path.abspath(path) != os.path.abspath(protect):
            os.remove(path)


def save_atomically(state, path):
    """torch.save ``state`` to ``path`` atomically (utils.write_atomically): a crash or Ctrl-C while
    writing leaves the previous checkpoint intact, never half a checkpoint.

    :raises CheckpointWriteError: "cannot write PATH: no space left on device" (or the OS's reason); nothing
        is left behind and the earlier checkpoints are untouched
    """
    # Serialised in memory first: torch's zip writer turns a failed write (a full disk) into a RuntimeError
    # "unexpected pos ...", while a plain file write raises the OSError that says what happened.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        write_atomically(path, lambda file: file.write(buffer.getbuffer()), binary=True)
    except OSError as error:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise CheckpointWriteError(f"cannot write {path}: {reason}") from None


def capture_rng_state():
    """The states of every random generator training touches, as tensors and plain Python only.

    :return: dict that torch.load(weights_only=True) can read back
    """
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state):
    """Put back the generator states saved by capture_rng_state."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def resolve_resume_path(resume, checkpoint_dir):
    """Turn ``--resume`` into a file path ('latest': the newest checkpoint in ``checkpoint_dir``)."""
    if resume == "latest":
        latest = latest_checkpoint(checkpoint_dir)
        if latest is None:
            raise FileNotFoundError(f"{checkpoint_dir}: --resume latest found no ssd300_iter_*.pt / ssd512_iter_*.pt checkpoint")
        return latest
    if not os.path.isfile(resume):
        raise FileNotFoundError(f"{resume}: --resume checkpoint does not exist")
    return resume


LOCK_NAME = ".train.lock"


@contextmanager
def claim_checkpoint_dir(folder, enabled=True):
    """Hold ``folder`` for this run: create it, check it can be written, lock it, clear stale temporary files.

    Two runs writing into one folder would replace each other's checkpoints and interleave train_log.csv, so
    an exclusive lock (``fcntl.flock`` on ``folder/.train.lock``) is held until the block ends; the operating
    system releases it when the process dies, even of SIGKILL. Under the lock, the hidden ``.tmp_*`` files
    that a kill during a save leaves behind (up to a whole checkpoint each) are deleted: no other run can be
    writing them.

    :param folder: the --checkpoint-dir
    :param enabled: False on ranks other than 0, which write nothing (the block then does nothing)
    :raises TrainingSetupError: one line, when the folder is a file, cannot be created or written, or another
        run holds it
    """
    if not enabled:
        yield
        return
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise TrainingSetupError(f"{folder}: --checkpoint-dir is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        lock_file = open(os.path.join(folder, LOCK_NAME), "a+")
    except OSError as error:
        raise TrainingSetupError(f"{folder}: cannot write into --checkpoint-dir "
                                 f"({os.strerror(error.errno).lower() if error.errno else error})") from None
    with lock_file:
        if fcntl is not None:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock_file.seek(0)
                holder = lock_file.read().strip() or "?"
                raise TrainingSetupError(f"{folder}: another training run (pid {holder}) is using this "
                                         f"--checkpoint-dir; wait for it to end, or pick another folder") from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        if not os.access(folder, os.W_OK):
            raise TrainingSetupError(f"{folder}: cannot write into --checkpoint-dir (permission denied)")
        for stale in glob.glob(os.path.join(glob.escape(folder), ".tmp_*")):
            os.remove(stale)
        yield


def weights_are_finite(model):
    """True when every parameter and buffer of ``model`` is finite."""
    return all(torch.isfinite(tensor).all() for tensor in model.state_dict().values() if tensor.is_floating_point())


def weights_digest(model):
    """SHA-256 of the model's state_dict bytes (to check that DDP ranks hold identical weights)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# =====================================================================================
# The log: train_log.csv, loss_curve.png and the throughput
# =====================================================================================


class TrainingLog:
    """train_log.csv (one row every --log-every iterations, plus eval rows) and loss_curve.png.

    When resuming, rows after the resumed iteration (written by the interrupted run after its last
    checkpoint) are dropped, so the log reads like one uninterrupted run.

    :param folder: where the files go
    :param start_iteration: the iteration training (re)starts from
    :param enabled: False on ranks other than 0, which must not write
    """

    eval_split = "TEST"  # the split the map_11pt rows measure (train.py sets "VAL" when it evaluates on VAL)

    def __init__(self, folder, start_iteration, enabled=True):
        self.csv_path = os.path.join(folder, "train_log.csv")
        self.png_path = os.path.join(folder, "loss_curve.png")
        self.enabled = enabled
        self.rows = []
        if not enabled:
            return
        os.makedirs(folder, exist_ok=True)
        if start_iteration > 0 and os.path.isfile(self.csv_path):
            with open(self.csv_path, newline="") as file:
                self.rows = [row for row in csv.DictReader(file) if int(row["iteration"]) <= start_iteration]
        with open(self.csv_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def add(self, **row):
        """Append one row (keys from LOG_FIELDS; missing ones stay empty) and flush it to disk."""
        row = {field: row.get(field, "") for field in LOG_FIELDS}
        self.rows.append(row)
        if self.enabled:
            with open(self.csv_path, "a", newline="") as file:
                csv.DictWriter(file, fieldnames=LOG_FIELDS).writerow(row)

    def plot(self):
        """Draw the loss parts (and the mAP, if evaluated) against the iteration into loss_curve.png."""
        if not self.enabled:
            return
        import matplotlib

        matplotlib.use("Agg")  # no display needed; imported here so that importing train.py stays light
        import matplotlib.pyplot as plt

        def series(key):
            points = [(int(r["iteration"]), float(r[key])) for r in self.rows if r[key] not in ("", None)]
            return [p[0] for p in points], [p[1] for p in points]

        figure, axis = plt.subplots(figsize=(8, 5))
        for key, label in (("loss", "total"), ("loc_loss", "localization"), ("conf_loss", "confidence")):
            xs, ys = series(key)
            if xs:
                axis.plot(xs, ys, label=label)
        axis.set_xlabel("iteration")
        axis.set_ylabel("MultiBox loss")
        if any(r["loss"] not in ("", None) and float(r["loss"]) > 0 for r in self.rows):
            axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        xs, ys = series("map_11pt")
        if xs:
            map_axis = axis.twinx()
            map_axis.plot(xs, ys, "k-o", label=f"mAP (11-point, {self.eval_split})")
            map_axis.set_ylabel("mAP")
            map_axis.set_ylim(0, 1)
            map_axis.legend(loc="upper center")
        if axis.get_legend_handles_labels()[0]:  # no loss row yet (an evaluation before the first log row)
            axis.legend(loc="upper right")
        axis.set_title("SSD training")
        figure.tight_layout()
        figure.savefig(self.png_path, dpi=100)
        plt.close(figure)


class ThroughputMeter:
    """Images per second over the training steps since the last reading (evaluation and saving excluded)."""

    def __init__(self):
        self.images, self.seconds = 0, 0.0

    def add(self, n_images, seconds):
        """Count one step of ``n_images`` images (all processes together) that took ``seconds``."""
        self.images += n_images
        self.seconds += seconds

    def read_and_reset(self):
        """:return: images/s since the last call (float)"""
        rate = self.images / max(self.seconds, 1e-9)
        self.images, self.seconds = 0, 0.0
        return rate


# =====================================================================================
# Several processes (torchrun) and signals
# =====================================================================================


def setup_distributed(device_argument):
    """Pick the device and, under torchrun, join the process group.

    torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; NCCL is the backend for GPUs, gloo for CPUs.

    :param device_argument: the --device value (None: cuda if available, else cpu)
    :return: a DistInfo (rank, world_size, device, is_main)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_argument is None:
        device_argument = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_argument)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError(f"--device {device_argument}: no CUDA GPU is available here (torch "
                                 f"{torch.__version__}, torch.cuda.is_available() is False); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingSetupError(f"--device {device_argument}: this machine has {torch.cuda.device_count()} "
                                 f"GPU(s), numbered from 0")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, device=device)


def stop_requested_anywhere(request, dist_info):
    """Whether any process received SIGINT/SIGTERM, so that all of them stop after the same step.

    :param request: this process's StopRequest
    :return: bool (one all-reduce of one number under torchrun; just the flag on a single process)
    """
    if dist_info.world_size == 1:
        return request.stop
    return all_ranks_sum([float(request.stop)], dist_info)[0] > 0


def all_ranks_sum(values, dist_info):
    """Sum a list of floats over all processes (identity on a single process).

    :return: list of floats, the sums
    """
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist_info.world_size > 1:
        # gloo reduces CPU tensors, NCCL only CUDA ones.
        tensor = tensor.to(dist_info.device)
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()


@contextmanager
def stop_on_signals(request):
    """While inside, SIGINT (Ctrl-C) and SIGTERM only set ``request.stop``; a second Ctrl-C aborts at once.

    The loop checks the flag after each step, saves a checkpoint, and leaves cleanly. Signal handlers can only
    be installed from the main thread; elsewhere (a test thread) the block runs without them.
    """
    def request_stop(signum, frame):
        if request.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.stop = True

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    except ValueError:  # not the main thread
        pass
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# =====================================================================================
# TensorBoard (optional: --tensorboard DIR)
# =====================================================================================


def require_tensorboard():
    """Check that ``torch.utils.tensorboard`` can be used.

    :raises ImportError: with a one-line message naming the package to install
    """
    try:
        importlib.import_module("torch.utils.tensorboard")  # which imports the tensorboard package
    except ImportError:
        raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard") from None


class TensorBoardLog:
    """Scalars for TensorBoard (``tensorboard --logdir DIR``), beside train_log.csv: the same numbers, live.

    :param folder: the event folder (--tensorboard DIR)
    :param start_iteration: where the run (re)starts; events an interrupted run wrote after it are purged, so a
        resumed run's curves read like one uninterrupted run (as TrainingLog does with its rows)
    """

    def __init__(self, folder, start_iteration=0):
        from torch.utils.tensorboard import SummaryWriter  # imported here: the package is optional

        self.writer = SummaryWriter(folder, purge_step=start_iteration + 1 if start_iteration > 0 else None)

    def add(self, iteration, scalars):
        """Write ``{tag: float}`` at step ``iteration`` and flush (a crashed run keeps what it logged)."""
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), global_step=iteration)
        self.writer.flush()

    def close(self):
        """Flush and close the event file."""
        self.writer.close()


# =====================================================================================
# Run settings: the device, the splits, SyncBatchNorm, what a resume may change, the summary's JSON
# =====================================================================================


def settle_device_options(args, device):
    """Settings that depend on the device: --amp on a CPU falls back to float32 unless --amp-on-cpu.

    Without fast bf16/fp16 units, autocast on a CPU is 20-40x slower than float32 for SSD300 (measured: one
    step 10.9 s in float32, 240 s in bf16, 420 s in fp16 on a laptop CPU), so --amp there is a trap.
    """
    if args.amp and device.type == "cpu" and not args.amp_on_cpu:
        print("train.py: warning: --amp on a CPU is usually 20-40x slower than float32; training in float32 "
              "(pass --amp-on-cpu to use it anyway)", file=sys.stderr, flush=True)
        args.amp = False


def split_size(data_folder, split):
    """Number of images in ``<data_folder>/<split>_images.json`` (0 when the file is missing or unreadable)."""
    try:
        with open(os.path.join(data_folder, f"{split}_images.json")) as file:
            return len(json.load(file))
    except (OSError, ValueError):
        return 0


def has_val_split(data_folder):
    """True when create_data_lists.py --val-fraction wrote VAL lists into ``data_folder``."""
    return all(os.path.isfile(os.path.join(data_folder, f"VAL_{kind}.json")) for kind in ("images", "objects"))


def convert_sync_batchnorm(model, args, dist_info):
    """--sync-bn: replace the model's batch norms by ``torch.nn.SyncBatchNorm``, which under torchrun computes
    the batch statistics over the images of all processes (each GPU alone may see only 8 images).

    The parameters and buffers are kept (the same tensors), so the optimizer built before still holds them and
    checkpoints keep their keys. Nothing is converted for a single process (nothing to synchronise with) or a
    model without batch norm (vgg16); a message says so.

    :param model: the SSD, before DDP wraps it
    :param args: parse_args's namespace (``sync_bn``, ``base``)
    :param dist_info: the DistInfo of this process
    :return: the model (converted in place where there is something to convert)
    :raises TrainingSetupError: for several CPU processes: SyncBatchNorm runs on GPUs only
    """
    if not args.sync_bn:
        return model
    n_batch_norms = sum(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())
    reason = None
    if n_batch_norms == 0:
        reason = f"the {args.base} network has no batch norm"
    elif dist_info.world_size == 1:
        reason = "a single process has no other batch to synchronise with (run under torchrun)"
    if reason is not None:
        if dist_info.is_main:
            print(f"--sync-bn: nothing converted: {reason}.", flush=True)
        return model
    if dist_info.device.type == "cpu":
        raise TrainingSetupError("--sync-bn: SyncBatchNorm runs on GPUs only, not with --device cpu")
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if dist_info.is_main:
        print(f"--sync-bn: {n_batch_norms} batch norms synchronised over {dist_info.world_size} processes.",
              flush=True)
    return model


# Settings that decide which batches (and augmentations) the run sees, or what the optimizer state means.
RESUME_SETTINGS = ("batch_size", "seed", "no_augment", "skip_difficult", "max_images", "optimizer")


def check_resume_settings(checkpoint, path, args, world_size):
    """Compare the run's settings with those the checkpoint was trained with.

    A resumed run sees the batches the uninterrupted run would have seen only with the same batch size, seed,
    augmentation, objects, images and number of processes (a larger batch would skip images); the optimizer
    state only fits the same optimizer.

    :param checkpoint: the checkpoint dict ("args": the run's vars(args), "world_size"; older ones lack them)
    :return: list of "--setting NEW (was OLD)" strings that differ (only with --allow-changed-settings)
    :raises TrainingSetupError: naming the changed settings, unless args.allow_changed_settings
    """
    saved_args = checkpoint.get("args") or {}
    changed = [f"--{name.replace('_', '-')} {getattr(args, name)} (was {saved_args[name]})"
               for name in RESUME_SETTINGS if name in saved_args and saved_args[name] != getattr(args, name)]
    if "world_size" in checkpoint and checkpoint["world_size"] != world_size:
        changed.append(f"{world_size} process(es) (was {checkpoint['world_size']})")
    if changed and not args.allow_changed_settings:
        raise TrainingSetupError(f"{path}: this run changes what the checkpoint was trained with: {', '.join(changed)}; "
                                 f"resume with the same settings, or pass --allow-changed-settings to accept "
                                 f"other batches (and a fresh optimizer state if --optimizer changed)")
    return changed


def discard_checkpoint_on_trial(run, dist_info):
    """After a non-finite loss: delete the checkpoint of the previous step, whose weights gave that loss.

    A checkpoint is only good if training can go on from it, and the loss of the step after it is exactly the
    first loss a run resumed from it computes (same weights, same batch): with a lower --lr it would fail at
    once all the same. The good checkpoint before it was kept by pruning (save_checkpoint's ``protect``).

    :return: the path of the last good checkpoint, or None
    """
    if run.on_trial is not None:
        bad, previous = run.on_trial
        if dist_info.is_main and os.path.isfile(bad):
            os.remove(bad)
        run.last_checkpoint, run.on_trial = previous, None
    return run.last_checkpoint
