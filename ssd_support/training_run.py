"""What makes a training run safe to start, stop and pick up again, beyond the lesson's loop.

The folder lock, the device settings, the stop signals, the NaN trial of the newest checkpoint, evaluating on VAL
and keeping best.pt, the summary, and the product half of train.py's command line (``add_run_options``).
"""

import glob
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional

import filelock
import torch
import torch.distributed as dist

from ssd_support.checkpoints import (BEST_CHECKPOINT, CheckpointWriteError, TrainingSetupError, checkpoint_path,
                                     make_checkpoint, read_checkpoint, save_atomically,
                                     save_checkpoint)
from ssd_support.distributed import DEFAULT_TIMEOUT_MINUTES, all_ranks_sum
from ssd_support.ema import EMA_DECAY
from ssd_support.error_analysis import OPERATING_SCORE, operating_score_argument
from ssd_support.files import has_split, images_list_path, objects_list_path, read_json, write_json_atomically
from ssd_support.resumable_loader import DataLoadError, loader_error_message
from ssd_support.run_log import LogWriteError, cannot_write

__all__ = ["CheckpointWriteError", "DataLoadError", "LogWriteError", "TrainingSetupError"]  # re-exported: what train.py catches


class StopRequest:
    """Set by a signal handler (stop_on_signals), read by the training loop after each step."""

    def __init__(self):
        self.stop = False


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


LOCK_NAME = ".train.lock"
PID_NAME = ".train.pid"  # beside the lock: which process holds it, for the refusal's message


@contextmanager
def claim_checkpoint_dir(folder, enabled=True):
    """Hold ``folder`` for this run: create it, check it can be written, lock it, clear stale temporary files.

    Two runs writing into one folder would replace each other's checkpoints and interleave train_log.csv, so
    an exclusive lock (``filelock.FileLock`` on ``folder/.train.lock``: flock on POSIX, msvcrt on Windows) is held
    until the block ends; the operating system releases it when the process dies, even of SIGKILL. Under the lock,
    the hidden ``.tmp_*`` files that a kill during a save leaves behind (up to a whole checkpoint each) are
    deleted: no other run can be writing them.

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
        lock = filelock.FileLock(os.path.join(folder, LOCK_NAME), timeout=0)
        lock.acquire()
    except filelock.Timeout:
        raise TrainingSetupError(f"{folder}: another training run (pid {_lock_holder(folder)}) is using this "
                                 f"--checkpoint-dir; wait for it to end, or pick another folder") from None
    except OSError as error:
        raise TrainingSetupError(f"{folder}: cannot write into --checkpoint-dir "
                                 f"({os.strerror(error.errno).lower() if error.errno else error})") from None
    try:
        try:
            with open(os.path.join(folder, PID_NAME), "w") as pid_file:
                pid_file.write(f"{os.getpid()}\n")
        except OSError:
            raise TrainingSetupError(f"{folder}: cannot write into --checkpoint-dir (permission denied)") from None
        if not os.access(folder, os.W_OK):
            raise TrainingSetupError(f"{folder}: cannot write into --checkpoint-dir (permission denied)")
        for stale in glob.glob(os.path.join(glob.escape(folder), ".tmp_*")):
            os.remove(stale)
        yield
    finally:
        lock.release()


def _lock_holder(folder):
    """The pid written by the run holding ``folder``'s lock, or "?"."""
    try:
        with open(os.path.join(folder, PID_NAME)) as pid_file:
            return pid_file.read().strip() or "?"
    except OSError:
        return "?"


def weights_are_finite(model):
    """True when every parameter and buffer of ``model`` is finite."""
    return all(torch.isfinite(tensor).all() for tensor in model.state_dict().values() if tensor.is_floating_point())


def use_amp_on(device, amp, amp_on_cpu):
    """Whether autocast is used: --amp on a CPU falls back to float32 unless --amp-on-cpu, with a warning.

    Without fast bf16/fp16 units, autocast on a CPU is 20-40x slower than float32 for SSD300 (measured: one
    step 10.9 s in float32, 240 s in bf16, 420 s in fp16 on a laptop CPU), so --amp there is a trap.

    :return: bool
    """
    if amp and device.type == "cpu" and not amp_on_cpu:
        print("train.py: warning: --amp on a CPU is usually 20-40x slower than float32; training in float32 "
              "(pass --amp-on-cpu to use it anyway)", file=sys.stderr, flush=True)
        return False
    return amp


# bfloat16 runs at full speed from NVIDIA's Ampere (compute capability 8.0) on; older GPUs (T4 7.5, V100 7.0)
# emulate it, slower than float16 and often than float32.
BF16_MIN_CAPABILITY = (8, 0)


def choose_amp_dtype(requested, device_type, capability=None):
    """The autocast dtype of --amp: bfloat16 where the device runs it fast, else float16 (with a GradScaler).

    :param requested: --amp-dtype: None (the default: pick), "bf16" or "fp16"
    :param device_type: "cuda" or "cpu"
    :param capability: (major, minor) compute capability of the CUDA GPU (``torch.cuda.get_device_capability``),
        None elsewhere
    :return: (torch.bfloat16 or torch.float16, a one-line note for the user or None)
    """
    if requested == "fp16":
        return torch.float16, None
    slow_bf16 = device_type == "cuda" and capability is not None and tuple(capability) < BF16_MIN_CAPABILITY
    gpu = f"this GPU (compute capability {'.'.join(map(str, capability or ()))})"
    if slow_bf16 and requested is None:
        return torch.float16, (f"train.py: --amp: {gpu} has no fast bfloat16, so the forward pass runs in float16 "
                               f"with a GradScaler (--amp-dtype bf16 insists on bfloat16)")
    if slow_bf16:
        return torch.bfloat16, (f"train.py: warning: --amp-dtype bf16: {gpu} emulates bfloat16, slower than "
                                f"--amp-dtype fp16")
    return torch.bfloat16, None


def split_size(data_folder, split):
    """Number of images in ``<data_folder>/<split>_images.json`` (0 when the file is missing or unreadable)."""
    try:
        return len(read_json(images_list_path(data_folder, split)))
    except (OSError, ValueError, TypeError):  # TypeError: a JSON number instead of a list
        return 0


def check_evaluation_split(data_folder, split):
    """--eval-every ranks checkpoints by the split's mAP, which needs objects that are not difficult (recall counts
    those only: without any, every class's AP and the mAP are undefined, NaN).

    :raises TrainingSetupError: one line naming ``<split>_objects.json`` when it holds no such object
    """
    path = objects_list_path(data_folder, split)
    entries = read_json(path)
    if not any(not difficult for entry in entries for difficult in entry.get("difficulties", [])):
        raise TrainingSetupError(f"--eval-every: {path} holds no object that is not difficult, so its mAP is "
                                 f"undefined (recall counts non-difficult objects only); give the {split} split "
                                 f"annotated images (create_data_lists.py --val-fraction) or leave --eval-every out")


def evaluation_split(data_folder):
    """What --eval-every measures: VAL when create_data_lists.py --val-fraction wrote it, else TEST."""
    return "VAL" if has_split(data_folder, "VAL") else "TEST"


class NonFiniteLossError(RuntimeError):
    """Raised when the loss (or the weights) stop being finite; the last good checkpoint is left untouched."""


@dataclass
class TrainingRun:
    """Everything the training loop works with besides the recipe (built by train.prepare_training), and what a
    run does between steps: checkpoints, evaluations, the NaN trial, the summary.

    Rank 0 writes; the other ranks of a torchrun run take part in the same calls (they wait at the barriers).
    """

    model: torch.nn.Module  # DistributedDataParallel-wrapped under torchrun, else the SSD itself
    model_without_ddp: torch.nn.Module  # the SSD: what is saved and evaluated
    loss_fn: Any  # utils.MultiBoxLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Any  # a context manager: torch.autocast, or nullcontext without --amp
    label_map: Dict[str, int]
    start_iteration: int
    last_checkpoint: Optional[str]  # the newest checkpoint written or resumed from: the last good one
    batches: Iterator  # endless (images, boxes, labels, difficulties) batches, uint8 images
    n_images: int
    normalization: Dict[str, Any]  # {"mean", "std"} the uint8 batches are normalized with, on the device
    dist_info: Any  # distributed.DistInfo
    checkpoint_dir: str
    keep_checkpoints: int
    settings: Dict[str, Any]  # the run's options (vars(args)): saved in every checkpoint, checked on resume
    ema: Any = None  # an ema.ModelEMA with --ema: what is evaluated and kept as best.pt, saved beside the weights
    evaluate_split: Optional[Callable] = None  # (model, split) -> eval.evaluate's dict; None: no --eval-every
    eval_split: str = "TEST"  # what --eval-every measures: VAL when the data folder has it (prepare_evaluation)
    best_map: Optional[float] = None  # the best VAL mAP so far (best.pt holds those weights)
    best_checkpoint: Optional[str] = None
    # (checkpoint written after the previous step, the good one before it): the next step's loss tells
    # whether training can go on from its weights (train_step)
    on_trial: Optional[tuple] = None
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self):
        """Seconds since the run (this process) started."""
        return time.perf_counter() - self.started

    def barrier(self):
        """Wait for every rank (a no-op on a single process)."""
        if self.dist_info.world_size > 1:
            dist.barrier()

    def save_checkpoint(self, iteration, log):
        """Save a checkpoint (rank 0 writes, the others wait) and redraw the loss curve; sets ``last_checkpoint``.

        :raises NonFiniteLossError: when the weights are not finite; checked on every rank (their weights are
            identical) so that all of them stop together, and nothing is written: the newest checkpoint on disk
            is always a good one
        :raises CheckpointWriteError: the file cannot be written; the earlier checkpoints are intact
        """
        if not weights_are_finite(self.model_without_ddp):
            raise NonFiniteLossError(f"the weights are not finite after iteration {iteration}; training stopped "
                                     f"without saving. The last good checkpoint is {self.last_checkpoint or 'none'}.")
        previous = self.last_checkpoint
        if self.dist_info.is_main:
            state = self.checkpoint_state(iteration)
            self.last_checkpoint = save_checkpoint(state, self.checkpoint_dir, self.keep_checkpoints,
                                                   protect=previous)
            log.plot()
        else:
            self.last_checkpoint = checkpoint_path(self.checkpoint_dir, iteration, self.model_without_ddp.image_size)
        self.on_trial = (self.last_checkpoint, previous)
        self.barrier()

    def checkpoint_state(self, iteration):
        """make_checkpoint's dict of the run, plus "ema" (ModelEMA.state_dict) with --ema."""
        state = make_checkpoint(self.model_without_ddp, self.optimizer, self.scaler, iteration, self.label_map,
                                self.settings, self.dist_info.world_size)
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def discard_checkpoint_on_trial(self):
        """After a non-finite loss: delete the checkpoint of the previous step, whose weights gave that loss.

        A checkpoint is only good if training can go on from it, and the loss of the step after it is exactly the
        first loss a run resumed from it computes (same weights, same batch): with a lower --lr it would fail at
        once all the same. The good checkpoint before it was kept by pruning (save_checkpoint's ``protect``).

        :return: the path of the last good checkpoint, or None
        """
        if self.on_trial is not None:
            bad, previous = self.on_trial
            if self.dist_info.is_main and os.path.isfile(bad):
                os.remove(bad)
            self.last_checkpoint, self.on_trial = previous, None
        return self.last_checkpoint

    def stop_after_loader_error(self, iteration, log, error):
        """A batch could not be loaded: save the progress since the last checkpoint (as on Ctrl-C), then stop.

        :param error: the loader's exception (from a worker, its type with the worker's traceback as message)
        :raises DataLoadError: always, one line naming the file and the checkpoint to continue from
        """
        reason = loader_error_message(error)
        if self.dist_info.world_size > 1:  # the other ranks wait in a collective: no consistent checkpoint
            raise DataLoadError(f"cannot load a training batch: {reason}") from error
        if iteration > self.start_iteration and (self.last_checkpoint is None or
                                                 not self.last_checkpoint.endswith(f"_iter_{iteration:06d}.pt")):
            self.save_checkpoint(iteration, log)
        where = (f"saved {self.last_checkpoint}; once the file is readable again (or the lists are rebuilt), "
                 f"continue with --resume {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint to save yet")
        raise DataLoadError(f"cannot load a training batch at iteration {iteration + 1}: {reason} ({where})") from None

    def prepare_evaluation(self, data_folder):
        """Decide what --eval-every measures and, when resuming, what the best VAL mAP so far was.

        VAL when the data folder has it; otherwise TEST, with a warning: picking a checkpoint or a setting by its
        TEST mAP tunes on the test set, and then no best.pt is kept.
        """
        self.eval_split = evaluation_split(data_folder)
        if self.eval_split == "TEST":
            if self.dist_info.is_main:
                print(f"warning: {data_folder} has no VAL split, so --eval-every measures TEST: choosing a "
                      f"checkpoint by it tunes on the test set, and no {BEST_CHECKPOINT} is kept. Make one with "
                      f"create_data_lists.py --val-fraction 0.1.", file=sys.stderr, flush=True)
            return
        path = os.path.join(self.checkpoint_dir, BEST_CHECKPOINT)
        if self.start_iteration > 0 and os.path.isfile(path):
            # Resuming: a later evaluation must beat the best of the run so far, not just of this session.
            saved = read_checkpoint(path)
            if saved.get("iteration", 0) <= self.start_iteration and saved.get("val_map_11pt") is not None:
                self.best_map, self.best_checkpoint = float(saved["val_map_11pt"]), path

    def evaluate(self, iteration, log):
        """--eval-every: the mAP, the MultiBox loss and the precision / recall at --operating-score of
        ``eval_split`` (VAL, else TEST) on rank 0 (the others wait), into the log; on VAL, a new best is kept as
        best.pt (keep_best).

        :return: eval.evaluate's dict plus "loss" (SplitLoss.result) on rank 0, None elsewhere
        """
        result = None
        if self.dist_info.is_main:
            model = self.model_without_ddp if self.ema is None else self.ema.module  # the EMA copy stays in eval
            model.eval()
            try:
                result = self.evaluate_split(model, self.eval_split)
            finally:
                model.train(self.ema is None)
            loss, point = result["loss"], result["operating_point"]
            log.add(iteration, map_11pt=result["map_11pt"], eval_loss=loss["loss"], eval_loc_loss=loss["loc_loss"],
                    eval_conf_loss=loss["conf_loss"], eval_precision=point["precision"], eval_recall=point["recall"],
                    elapsed_s=self.elapsed())
            note = ""
            if self.eval_split == "VAL" and self.keep_best(iteration, result["map_11pt"]):
                note = f" (best so far: {self.best_checkpoint})"
            log.write(f"iteration {iteration}: {self.eval_split} mAP (11-point) {result['map_11pt']:.4f}, loss "
                      f"{loss['loss']:.4f} (localization {loss['loc_loss']:.4f}, confidence {loss['conf_loss']:.4f}), "
                      f"precision {point['precision']:.4f} / recall {point['recall']:.4f} at score >= "
                      f"{point['score']:g}{note}")
        self.barrier()
        return result

    def keep_best(self, iteration, val_map):
        """Write best.pt (atomically, the periodic checkpoints' format plus ``val_map_11pt``) when ``val_map``
        beats the best VAL mAP so far. Rank 0 only.

        :return: True when best.pt was written
        """
        if self.best_map is not None and not val_map > self.best_map:
            return False
        path = os.path.join(self.checkpoint_dir, BEST_CHECKPOINT)
        state = self.checkpoint_state(iteration)
        state["val_map_11pt"] = float(val_map)
        save_atomically(state, path)
        self.best_map, self.best_checkpoint = float(val_map), path
        return True

    def patience_ran_out(self, log, patience):
        """--patience: whether the last ``patience`` VAL evaluations in a row brought no better mAP than the best
        before them (best.pt's). Counted from train_log.csv's mAP rows, so a resumed run keeps the count; rank 0
        decides and every rank hears it.

        :return: bool, the same on every rank
        """
        since_best = evaluations_since_best([float(row["map_11pt"]) for row in log.rows if row["map_11pt"] != ""])
        if self.dist_info.world_size == 1:
            return since_best >= patience
        return all_ranks_sum([float(self.dist_info.is_main and since_best >= patience)], self.dist_info)[0] > 0

    def write_summary(self, iteration, interrupted, eval_result, log_rows, stopped_early=None):
        """Write train_summary.json (what was run, how far it got, the last loss and mAP, whether and why
        --patience ended it); NaN/inf are written as null, since strict JSON parsers reject a bare NaN. Rank 0."""
        summary = {"iterations_done": iteration, "interrupted": interrupted, "stopped_early": stopped_early is not None,
                   "stopped_early_because": stopped_early, "last_checkpoint": self.last_checkpoint,
                   "eval_split": self.eval_split if self.evaluate_split is not None else None,
                   "best_checkpoint": self.best_checkpoint, "best_val_map_11pt": self.best_map,
                   "wall_time_s": round(self.elapsed(), 1),
                   "final_loss": next((float(r["loss"]) for r in reversed(log_rows) if r["loss"] != ""), None),
                   "eval": eval_result, "args": self.settings}
        path = os.path.join(self.checkpoint_dir, "train_summary.json")
        try:
            write_json_atomically(path, summary, indent=2)
        except OSError as error:
            raise cannot_write(path, error) from None


def evaluations_since_best(map_values):
    """How many evaluations came after the best one (a tie with the best is no improvement, as keep_best has it).

    :param map_values: the mAPs in the order measured
    :return: int (0 when the last one is the best, or there is none)
    """
    best, since = None, 0
    for value in map_values:
        if best is None or value > best:
            best, since = value, 0
        else:
            since += 1
    return since


def add_run_options(parser):
    """The product half of train.py's command line: where a run writes, how it resumes, logs, evaluates and
    runs (device, AMP, torchrun), fine-tuning and smoke-test knobs. The paper's recipe stays in train.py.

    :param parser: train.py's argparse.ArgumentParser (the options are added in place)
    """
    data = parser.add_argument_group("data loading")
    data.add_argument("--max-images", type=int, default=None,
                      help="train on the first N training images only (for smoke tests and overfitting checks)")
    data.add_argument("--workers", type=int, default=4, help="data-loading worker processes per training process")
    data.add_argument("--reference-augment", action="store_true",
                      help="augment with utils.py's readable chain (the lesson's code) instead of the fast "
                           "equivalent (ssd_support/fast_augment.py: the same draws and boxes, ~3x the images/s)")

    tuning = parser.add_argument_group("fine-tuning and optimisation extras")
    tuning.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                        help="fine-tune: start a new run (iteration 0, new optimizer) from another checkpoint's "
                             "weights and priors, e.g. convert_weights.py's COCO ones; class-head rows are copied "
                             "for the classes both label maps have (airplane = aeroplane, ...), new classes start "
                             "fresh")
    tuning.add_argument("--freeze-base", type=int, default=0, metavar="N",
                        help="freeze the first N of the base's 5 stages (VGG16: its conv1..conv5 blocks, conv6/conv7 "
                             "stay trainable; ResNet-50: conv1, layer1, layer2, layer3, -), e.g. when fine-tuning "
                             "on little data")
    tuning.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this (default: off)")
    tuning.add_argument("--ema", action="store_true",
                        help="keep an exponential moving average of the weights (ssd_support/ema.py): --eval-every "
                             "and best.pt use it, checkpoints hold it, eval.py / detect.py / export.py load it")
    tuning.add_argument("--ema-decay", type=float, default=EMA_DECAY,
                        help="--ema's decay after its warm-up (decay x (1 - exp(-updates / 2000)), as Ultralytics "
                             "and timm)")

    run = parser.add_argument_group("run")
    run.add_argument("--device", default=None,
                     help="cuda, cuda:1, cpu ... (default: cuda if available; under torchrun cuda:LOCAL_RANK)")
    run.add_argument("--seed", type=int, default=0,
                     help="seed for the initial weights, the data order and augmentation")
    run.add_argument("--amp", action="store_true",
                     help="mixed precision (autocast) for the forward pass; on a CPU only with --amp-on-cpu")
    run.add_argument("--amp-on-cpu", action="store_true",
                     help="use --amp on a CPU too (without fast bf16/fp16 units a step is 20-40x slower)")
    run.add_argument("--amp-dtype", choices=("bf16", "fp16"), default=None,
                     help="autocast dtype (default: bf16, or fp16 on GPUs older than Ampere, which emulate bf16 "
                          "slowly); fp16 also uses a GradScaler, bf16 needs none")
    run.add_argument("--dist-timeout-minutes", type=float, default=DEFAULT_TIMEOUT_MINUTES, metavar="M",
                     help="under torchrun: how long the other processes wait for rank 0 while it evaluates "
                          f"(--eval-every) or saves, before the job is stopped (default {DEFAULT_TIMEOUT_MINUTES}; "
                          "NCCL's own is 10)")
    run.add_argument("--checkpoint-dir", default="checkpoints",
                     help="where checkpoints (ssd300_iter_N.pt), train_log.csv, train_summary.json and "
                          "loss_curve.png go")
    run.add_argument("--save-every", type=int, default=5000, help="write a checkpoint every N iterations")
    run.add_argument("--keep-checkpoints", type=int, default=3, help="keep only the newest N checkpoints (0: all)")
    run.add_argument("--resume", default=None,
                     help="checkpoint to continue from, or 'latest' for the newest one in --checkpoint-dir")
    run.add_argument("--allow-changed-settings", action="store_true",
                     help="--resume even though a setting the checkpoint records (any but the run's length, paths, "
                          "logging and evaluation) or the number of processes differs (the run then differs from "
                          "the uninterrupted one; another optimizer starts afresh)")
    run.add_argument("--log-every", type=int, default=20, help="write a train_log.csv row every N iterations")
    run.add_argument("--eval-every", type=int, default=0,
                     help="compute the VOC mAP every N iterations and at the end (0: never), on the VAL split "
                          "when the data folder has one (create_data_lists.py --val-fraction; then the best "
                          "weights are kept as best.pt), else on TEST")
    run.add_argument("--eval-batch-size", type=int, default=32, help="batch size for --eval-every")
    run.add_argument("--operating-score", type=operating_score_argument, default=OPERATING_SCORE, metavar="S",
                     help="with --eval-every: the score at which train_log.csv's eval_precision / eval_recall are "
                          f"taken (the detections scoring >= S; means over classes; default {OPERATING_SCORE}, "
                          "as eval.py --plots)")
    run.add_argument("--patience", type=int, default=0, metavar="N",
                     help="with --eval-every on VAL: stop when N evaluations in a row bring no better VAL mAP than "
                          "best.pt's; the run ends as a finished one (checkpoint, summary, exit 0). 0: never")
    run.add_argument("--tensorboard", default=None, metavar="DIR",
                     help="also write the losses, learning rate, images/s and mAP as TensorBoard events into "
                          "DIR (needs the tensorboard package; train_log.csv and loss_curve.png are kept)")
    run.add_argument("--sync-bn", action="store_true",
                     help="under torchrun, turn the batch norms (--base resnet50) into SyncBatchNorm, so that "
                          "their statistics come from the whole batch, not each GPU's share; a no-op with a "
                          "message for vgg16 (no batch norm) or a single process")
    run.add_argument("--no-previews", action="store_true",
                     help="do not write train_batch0.jpg and train_batch1.jpg (the first two TRAIN batches as the "
                          "network receives them, boxes and class names drawn) into --checkpoint-dir")
    run.add_argument("--no-progress", action="store_true",
                     help="no tqdm progress bar: a plain line per --log-every row instead (for logs under nohup or a "
                          "batch scheduler)")


def check_run_options(parser, args):
    """Refuse values of add_run_options's options that cannot work (parser.error: usage and one line, exit 2)."""
    for name in ("save_every", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.eval_every < 0 or args.workers < 0 or args.patience < 0:
        parser.error("--eval-every, --workers and --patience cannot be negative")
    if not args.dist_timeout_minutes > 0:
        parser.error(f"--dist-timeout-minutes must be positive, got {args.dist_timeout_minutes}")
    if args.eval_batch_size < 1:
        parser.error(f"--eval-batch-size must be at least 1, got {args.eval_batch_size}")
    if args.patience and not args.eval_every:
        parser.error("--patience counts evaluations: it needs --eval-every N")
    if args.max_images is not None and args.max_images < 1:
        parser.error(f"--max-images must be at least 1, got {args.max_images}")
    if not 0 <= args.freeze_base <= 5:
        parser.error(f"--freeze-base must be between 0 and 5, got {args.freeze_base}")
    if not 0 <= args.ema_decay < 1:
        parser.error(f"--ema-decay must be in [0, 1), got {args.ema_decay}")


def check_recipe_options(parser, args):
    """Refuse recipe values that cannot work (parser.error: usage and one line, exit 2) and fill the defaults that
    depend on the network."""
    for name in ("batch_size", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.lr <= 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if args.warmup < 0:
        parser.error("--warmup cannot be negative")
    if args.epochs is not None and not args.epochs > 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    if args.base == "resnet50" and args.image_size != 300:
        parser.error("--base resnet50 is defined for --image-size 300 only (NVIDIA's SSD300)")
    if args.base == "resnet50" and args.batch_size < 2:
        parser.error("--base resnet50 needs --batch-size 2 or more: its last extra block's batch norm sees a "
                     "1x1 map, and one value per channel has no batch statistics")
    if args.init_from:
        args.no_pretrained = True  # every weight of the base comes from the checkpoint: no ImageNet download
    if args.bias_lr_mult is None:
        args.bias_lr_mult = 2.0 if args.base == "vgg16" else 1.0
