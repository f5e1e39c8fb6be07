"""Train SSD300 (or SSD512, or the ResNet-50 SSD300) on Pascal VOC, COCO or the toy set, with the paper's recipe.

    python train.py --data-folder data                      # the paper's recipe on one GPU
    torchrun --nproc_per_node=4 train.py --data-folder data --batch-size 8   # 4 GPUs, 32 images per step
    python train.py --data-folder data --resume latest      # continue where the last run stopped

The recipe (Liu et al., ECCV 2016, and the Caffe ``ssd_pascal.py`` it was trained with): an ImageNet VGG16
base, batch 32, SGD with momentum 0.9, learning rate 1e-3 (biases at 2x, without weight decay), weight decay
5e-4, 120,000 iterations with the learning rate divided by 10 at 80,000 and 100,000, difficult objects kept
for training. A short linear warmup (as lufficc/SSD and mmdetection use) avoids the early NaN losses that a
cold start at 1e-3 sometimes gives.

Training is counted in *iterations* (optimizer steps), as in the paper, not in epochs: the data loader is an
endless stream of batches whose order is a pure function of (seed, epoch), and each image's augmentation a
pure function of (seed, epoch, image), so that a run resumed at iteration k sees exactly the batches the
uninterrupted run would have seen, whatever the number of loader workers.

Written to --checkpoint-dir (by rank 0 only): ssd300_iter_<N>.pt (SSD512: ssd512_iter_<N>.pt) checkpoints (model, optimizer, AMP scaler,
RNG states, iteration and the label map; plain tensors, so torch.load(weights_only=True) reads them), written
atomically, the newest --keep-checkpoints kept; train_log.csv; loss_curve.png; train_summary.json.
Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits with status 130; a NaN/inf loss
stops training with a message naming the last good checkpoint.
"""

import argparse
import csv
import hashlib
import json
import math
import os
import random
import re
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from utils import MultiBoxLoss, write_atomically

CHECKPOINT_PATTERN = re.compile(r"^ssd(?:300|512)_iter_(\d+)\.pt$")
LOG_FIELDS = ("iteration", "loss", "loc_loss", "conf_loss", "lr", "images_per_s", "elapsed_s", "map_11pt")


class NonFiniteLossError(RuntimeError):
    """Raised when the loss (or the weights) stop being finite; the last good checkpoint is left untouched."""


class TrainingSetupError(ValueError):
    """Raised for unusable input (an empty data set, a checkpoint that does not fit the data folder)."""


# =====================================================================================
# Command line
# =====================================================================================


def parse_args(argv=None):
    """Parse the command line; every default is the paper's recipe.

    :param argv: list of command-line strings (None: sys.argv[1:])
    :return: an argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description="Train SSD300 with the paper's recipe. Run it with torchrun for several GPUs "
        "(torchrun --nproc_per_node=N train.py ...): DistributedDataParallel, one process per GPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-folder", required=True,
                      help="folder with TRAIN_images.json, TRAIN_objects.json, TEST_*.json and label_map.json "
                           "(made by create_data_lists.py)")
    data.add_argument("--skip-difficult", action="store_true",
                      help="drop objects marked difficult from training (the paper trains on them)")
    data.add_argument("--no-augment", action="store_true",
                      help="train without data augmentation (the TEST transform: resize + normalize). Costs "
                           "~19 mAP points on VOC; only useful to overfit a handful of images")
    data.add_argument("--max-images", type=int, default=None,
                      help="train on the first N training images only (for smoke tests and overfitting checks)")
    data.add_argument("--workers", type=int, default=4, help="data-loading worker processes per training process")

    recipe = parser.add_argument_group("optimisation (the paper's recipe)")
    recipe.add_argument("--batch-size", type=int, default=32,
                        help="images per step PER PROCESS. With torchrun --nproc_per_node=N the effective batch is "
                             "N x this: use --batch-size 8 on 4 GPUs to keep the paper's 32")
    recipe.add_argument("--iterations", type=int, default=120_000, help="optimizer steps in total")
    recipe.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                        help="sgd is the paper's; adamw (with a smaller --lr, ~1e-4) learns faster from a random "
                             "init, which is what the CPU quickstart wants")
    recipe.add_argument("--lr", type=float, default=1e-3, help="base learning rate (weights)")
    recipe.add_argument("--bias-lr-mult", type=float, default=None,
                        help="biases learn at this multiple of --lr and get no weight decay (default: 2 with "
                             "--base vgg16, Caffe's lr_mult 2, decay_mult 0; 1 with --base resnet50, as NVIDIA)")
    recipe.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (AdamW: beta1)")
    recipe.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay on weights")
    recipe.add_argument("--decay-at", type=int, nargs="*", default=[80_000, 100_000],
                        help="iterations at which the learning rate is multiplied by --lr-gamma")
    recipe.add_argument("--lr-gamma", type=float, default=0.1, help="learning-rate decay factor")
    recipe.add_argument("--warmup", type=int, default=500,
                        help="iterations of linear warmup from --warmup-factor x lr up to lr (0: none)")
    recipe.add_argument("--warmup-factor", type=float, default=1.0 / 3, help="learning-rate fraction at iteration 0")
    recipe.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this (default: off)")
    recipe.add_argument("--no-pretrained", action="store_true",
                        help="start the base from random weights instead of ImageNet (no download needed; "
                             "expect a much worse detector on real data)")

    network = parser.add_argument_group("network")
    network.add_argument("--base", choices=("vgg16", "resnet50"), default="vgg16",
                         help="vgg16: the paper's SSD; resnet50: NVIDIA's SSD300 v1.1 (ResNet-50 up to conv4_x, "
                              "batch norm in the extra layers, no weight decay on batch norm and biases)")
    network.add_argument("--image-size", type=int, choices=(300, 512), default=300,
                         help="input side: 300 (SSD300) or 512 (SSD512, VGG16 only: 24,564 priors)")
    network.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                         help="fine-tune: start a new run (iteration 0, new optimizer) from another checkpoint's "
                              "weights and priors, e.g. convert_weights.py's COCO ones; class-head rows are copied "
                              "for the classes both label maps have (airplane = aeroplane, ...), new classes start "
                              "fresh")
    network.add_argument("--freeze-base", type=int, default=0, metavar="N",
                         help="freeze the first N of the base's 5 stages (VGG16: its conv1..conv5 blocks, conv6/conv7 "
                              "stay trainable; ResNet-50: conv1, layer1, layer2, layer3, -), e.g. when fine-tuning "
                              "on little data")

    run = parser.add_argument_group("run")
    run.add_argument("--device", default=None,
                     help="cuda, cuda:1, cpu ... (default: cuda if available; under torchrun cuda:LOCAL_RANK)")
    run.add_argument("--seed", type=int, default=0,
                     help="seed for the initial weights, the data order and augmentation")
    run.add_argument("--amp", action="store_true", help="mixed precision (autocast) for the forward pass")
    run.add_argument("--amp-dtype", choices=("bf16", "fp16"), default="bf16",
                     help="autocast dtype; fp16 also uses a GradScaler, bf16 needs none")
    run.add_argument("--checkpoint-dir", default="checkpoints",
                     help="where checkpoints (ssd300_iter_N.pt), train_log.csv, train_summary.json and "
                          "loss_curve.png go")
    run.add_argument("--save-every", type=int, default=5000, help="write a checkpoint every N iterations")
    run.add_argument("--keep-checkpoints", type=int, default=3, help="keep only the newest N checkpoints (0: all)")
    run.add_argument("--resume", default=None,
                     help="checkpoint to continue from, or 'latest' for the newest one in --checkpoint-dir")
    run.add_argument("--log-every", type=int, default=20, help="write a train_log.csv row every N iterations")
    run.add_argument("--eval-every", type=int, default=0,
                     help="compute the VOC mAP on the TEST split every N iterations and at the end (0: never)")
    run.add_argument("--eval-batch-size", type=int, default=32, help="batch size for --eval-every")
    run.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = parser.parse_args(argv)

    for name in ("batch_size", "iterations", "save_every", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.lr <= 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if args.warmup < 0 or args.eval_every < 0 or args.workers < 0:
        parser.error("--warmup, --eval-every and --workers cannot be negative")
    if args.max_images is not None and args.max_images < 1:
        parser.error(f"--max-images must be at least 1, got {args.max_images}")
    if args.base == "resnet50" and args.image_size != 300:
        parser.error("--base resnet50 is defined for --image-size 300 only (NVIDIA's SSD300)")
    if not 0 <= args.freeze_base <= 5:
        parser.error(f"--freeze-base must be between 0 and 5, got {args.freeze_base}")
    if args.init_from:
        args.no_pretrained = True  # every weight of the base comes from the checkpoint: no ImageNet download
    if args.bias_lr_mult is None:
        args.bias_lr_mult = 2.0 if args.base == "vgg16" else 1.0
    return args


# =====================================================================================
# Learning rate and parameter groups
# =====================================================================================


def learning_rate_at(iteration, base_lr, decay_at=(80_000, 100_000), gamma=0.1, warmup=500, warmup_factor=1.0 / 3):
    """The learning rate of one optimizer step: linear warmup, then step decays (the paper's schedule).

    A pure function of the iteration, so that resuming needs no scheduler state.

    :param iteration: 0-based index of the optimizer step
    :param base_lr: the learning rate after warmup and before any decay
    :param decay_at: iterations from which the rate is multiplied by ``gamma`` (once per milestone passed)
    :param gamma: decay factor
    :param warmup: number of warmup iterations (0: no warmup)
    :param warmup_factor: fraction of the rate used at iteration 0, rising linearly to 1 at ``warmup``
    :return: the learning rate (float)
    """
    factor = gamma ** sum(iteration >= milestone for milestone in decay_at)
    if iteration < warmup:
        progress = iteration / warmup
        factor *= warmup_factor + (1.0 - warmup_factor) * progress
    return base_lr * factor


def make_param_groups(model, weight_decay, bias_lr_mult=2.0):
    """Split the parameters the way Caffe's SSD recipe does.

    Biases: ``lr_mult 2, decay_mult 0``. Weights, and the conv4_3 L2-norm rescale factors: ``lr_mult 1,
    decay_mult 1`` -- Caffe's Normalize layer declares no param spec, so its scale gets the default weight
    decay, and we follow Caffe there (sgrvinod's tutorial does the same). Batch-norm scales (the ResNet-50
    base) get no weight decay either, as in NVIDIA's recipe: decaying them only fights the normalization.

    :param model: the SSD (not wrapped in DDP)
    :param weight_decay: L2 decay for the weights group
    :param bias_lr_mult: learning-rate multiplier of the biases
    :return: list of param-group dicts (weights, biases, and batch-norm scales when there are any), each
        with an extra ``"lr_mult"`` key that set_learning_rate reads
    """
    norm_scales = {id(module.weight) for module in model.modules()
                   if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.weight is not None}
    weights, biases, norms = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.endswith(".bias") or name == "bias":
            biases.append(parameter)
        else:
            (norms if id(parameter) in norm_scales else weights).append(parameter)
    groups = [
        {"params": weights, "weight_decay": weight_decay, "lr_mult": 1.0},
        {"params": biases, "weight_decay": 0.0, "lr_mult": bias_lr_mult},
    ]
    if norms:
        groups.append({"params": norms, "weight_decay": 0.0, "lr_mult": 1.0})
    return groups


def make_optimizer(name, param_groups, lr, momentum):
    """Build the optimizer.

    :param name: "sgd" (the paper's) or "adamw"
    :param param_groups: from make_param_groups (their weight decay is already set)
    :param lr: base learning rate (overwritten every step by set_learning_rate)
    :param momentum: SGD momentum, or AdamW's beta1
    :return: a torch.optim.Optimizer
    """
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum)
    # AdamW's decay is decoupled (lr * wd * w), so 5e-4 is far weaker than SGD's L2 of 5e-4; fine for the
    # short runs AdamW is offered for.
    return torch.optim.AdamW(param_groups, lr=lr, betas=(momentum, 0.999))


def set_learning_rate(optimizer, lr):
    """Give every param group ``lr`` times its ``lr_mult`` (biases: 2x)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


# =====================================================================================
# Data: an endless, resumable stream of batches
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


def make_train_dataset(args, preprocess=None):
    """The training set as the arguments ask: difficult objects kept, optionally un-augmented or truncated.

    :param preprocess: the model's ``preprocess_config`` (None: ImageNet mean/std; --init-from a converted COCO
        checkpoint may name another)
    :return: a Dataset of ``(image (3, 300, 300), boxes (n, 4) fractional, labels (n,), difficulties (n,))``
    """
    from datasets import PascalVOCDataset

    dataset = PascalVOCDataset(args.data_folder, "TRAIN", keep_difficult=not args.skip_difficult,
                               augment=not args.no_augment, image_size=args.image_size, preprocess=preprocess)
    if args.max_images is not None:
        dataset = Subset(dataset, range(min(args.max_images, len(dataset))))
    if len(dataset) == 0:
        raise TrainingSetupError(f"{args.data_folder}: the TRAIN split has no images")
    return dataset


def ignore_ctrl_c(worker_id):
    """DataLoader worker_init_fn: workers ignore SIGINT.

    Ctrl-C in a terminal reaches the whole process group; a worker that died of it would make the main
    process's next batch fail before it could save its checkpoint. The main process stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_train_loader(dataset, args, dist_info, start_iteration):
    """An endless DataLoader over ``dataset``, positioned at ``start_iteration``.

    :return: (DataLoader yielding (images (N, 3, 300, 300), boxes list, labels list, difficulties list),
              the DistributedSampler it draws from)
    """
    from datasets import collate_fn

    # DistributedSampler also on a single process (world size 1): one code path, and its seeded per-epoch
    # permutation is what makes the data order resumable.
    sampler = DistributedSampler(dataset, num_replicas=dist_info["world_size"], rank=dist_info["rank"],
                                 shuffle=True, seed=args.seed, drop_last=False)
    batch_sampler = InfiniteBatchSampler(sampler, args.batch_size, start_iteration)
    loader = DataLoader(
        SeededAugmentation(dataset, args.seed),
        batch_sampler=batch_sampler,
        collate_fn=collate_fn,
        num_workers=args.workers,
        pin_memory=dist_info["device"].type == "cuda",
        worker_init_fn=ignore_ctrl_c,
        # A private generator: creating the loader's iterator must not draw from the global RNG, or a resumed
        # run's global RNG stream would drift from the uninterrupted run's.
        generator=torch.Generator().manual_seed(args.seed),
    )
    return loader, sampler


# =====================================================================================
# Checkpoints
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


def prune_checkpoints(checkpoint_dir, keep):
    """Delete all but the newest ``keep`` checkpoints (``keep`` <= 0: delete none)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(checkpoint_dir)[:-keep]:
        os.remove(path)


def save_atomically(state, path):
    """torch.save ``state`` to ``path`` atomically (utils.write_atomically): a crash or Ctrl-C while
    writing leaves the previous checkpoint intact, never half a checkpoint."""
    write_atomically(path, lambda file: torch.save(state, file), binary=True)


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
        found = list_checkpoints(checkpoint_dir)
        if not found:
            raise FileNotFoundError(f"{checkpoint_dir}: --resume latest found no ssd300_iter_*.pt / ssd512_iter_*.pt checkpoint")
        return found[-1][1]
    if not os.path.isfile(resume):
        raise FileNotFoundError(f"{resume}: --resume checkpoint does not exist")
    return resume


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
# Logging: CSV rows, a JSON summary and the loss curve
# =====================================================================================


class TrainingLog:
    """train_log.csv (one row every --log-every iterations, plus eval rows) and loss_curve.png.

    When resuming, rows after the resumed iteration (written by the interrupted run after its last
    checkpoint) are dropped, so the log reads like one uninterrupted run.

    :param folder: where the files go
    :param start_iteration: the iteration training (re)starts from
    :param enabled: False on ranks other than 0, which must not write
    """

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
            map_axis.plot(xs, ys, "k-o", label="mAP (11-point, TEST)")
            map_axis.set_ylabel("mAP")
            map_axis.set_ylim(0, 1)
            map_axis.legend(loc="upper center")
        axis.legend(loc="upper right")
        axis.set_title("SSD training")
        figure.tight_layout()
        figure.savefig(self.png_path, dpi=100)
        plt.close(figure)


# =====================================================================================
# Distributed set-up
# =====================================================================================


def setup_distributed(device_argument):
    """Pick the device and, under torchrun, join the process group.

    torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; NCCL is the backend for GPUs, gloo for CPUs.

    :param device_argument: the --device value (None: cuda if available, else cpu)
    :return: dict with rank, world_size, local_rank, device (torch.device), is_main (bool)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_argument is None:
        device_argument = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_argument)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return {"rank": rank, "world_size": world_size, "local_rank": local_rank, "device": device,
            "is_main": rank == 0}


def all_ranks_sum(values, dist_info):
    """Sum a list of floats over all processes (identity on a single process).

    :return: list of floats, the sums
    """
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist_info["world_size"] > 1:
        # gloo reduces CPU tensors, NCCL only CUDA ones.
        tensor = tensor.to(dist_info["device"])
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()


@contextmanager
def stop_on_signals(flag):
    """While inside, SIGINT (Ctrl-C) and SIGTERM only set ``flag["stop"]``; a second Ctrl-C aborts at once.

    The loop checks the flag after each step, saves a checkpoint, and leaves cleanly. Signal handlers can only
    be installed from the main thread; elsewhere (a test thread) the block runs without them.
    """
    def request_stop(signum, frame):
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# =====================================================================================
# The training loop
# =====================================================================================


def build_model(args, n_classes, device):
    """The SSD of ``--base`` and ``--image-size`` on ``device`` (channels_last on CUDA, where cuDNN's
    convolutions are fastest in NHWC).

    :return: the model in train mode
    """
    from model import build_ssd

    try:
        model = build_ssd(n_classes, base=args.base, image_size=args.image_size,
                          pretrained_base=not args.no_pretrained)
    except Exception as error:  # typically: ImageNet weights cannot be downloaded
        if args.no_pretrained:
            raise
        raise RuntimeError(f"could not load the ImageNet {args.base} base ({error}); "
                           "download it once with network access, or pass --no-pretrained") from error
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def make_checkpoint(model, optimizer, scaler, iteration, label_map, args):
    """The checkpoint dict: tensors and plain Python only, so torch.load(weights_only=True) reads it."""
    from model import network_config

    return {
        "model": model.state_dict(),
        "config": network_config(model, label_map),
        "iteration": iteration,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "args": vars(args),
    }


def save_checkpoint(model, optimizer, scaler, iteration, label_map, args, log):
    """Write ``ssd300_iter_<iteration>.pt`` (``ssd512_...``) atomically, prune old ones and redraw the loss curve.

    :return: the path written
    """
    path = checkpoint_path(args.checkpoint_dir, iteration, args.image_size)
    save_atomically(make_checkpoint(model, optimizer, scaler, iteration, label_map, args), path)
    prune_checkpoints(args.checkpoint_dir, args.keep_checkpoints)
    log.plot()
    return path


def load_resume_state(path, model, optimizer, scaler, label_map):
    """Load a checkpoint into the model, optimizer and scaler.

    :return: (iteration the checkpoint was written after, its RNG states dict or None)
    """
    # On the CPU first: the RNG states must stay CPU tensors; load_state_dict moves the rest where it belongs.
    from model import apply_checkpoint_config, configured_network

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = checkpoint.get("config", {})
    saved_network = configured_network(config)
    if saved_network != (model.base_name, model.image_size):
        raise TrainingSetupError(f"{path}: checkpoint holds an SSD{saved_network[1]} with base {saved_network[0]}, "
                                 f"but this run asks for --base {model.base_name} --image-size {model.image_size}")
    saved_map = config.get("label_map")
    if saved_map is not None and dict(saved_map) != dict(label_map):
        raise TrainingSetupError(f"{path}: checkpoint was trained with labels {sorted(saved_map, key=saved_map.get)}, "
                         f"but the data folder has {sorted(label_map, key=label_map.get)}")
    apply_checkpoint_config(model, config)  # a run fine-tuned from converted weights keeps their priors and input
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    return int(checkpoint["iteration"]), checkpoint.get("rng")


def forward_and_loss(model, loss_fn, images, boxes, labels, autocast_context):
    """One forward pass and the MultiBox loss.

    The network runs under autocast (if enabled); the loss is computed in float32, since its log-sum-exp and
    hard-negative sort are where fp16 loses precision.

    :return: (scalar loss tensor, dict of loss parts as floats)
    """
    with autocast_context:
        predicted_locs, predicted_scores = model(images)
    loss = loss_fn(predicted_locs.float(), predicted_scores.float(), boxes, labels)
    parts = getattr(loss_fn, "last_parts", {}) or {}
    return loss, {key: float(value) for key, value in parts.items()}


def evaluate_map(model, args, label_map, device):
    """VOC mAP on the TEST split (eval.evaluate); puts the model back in train mode afterwards.

    :return: eval.evaluate's dict ({"map_11pt": float, ...})
    """
    from datasets import PascalVOCDataset, collate_fn
    from eval import evaluate

    test_set = PascalVOCDataset(args.data_folder, "TEST", keep_difficult=True, image_size=args.image_size,
                                preprocess=model.preprocess_config)
    loader = DataLoader(test_set, batch_size=args.eval_batch_size, shuffle=False, collate_fn=collate_fn,
                        num_workers=args.workers, pin_memory=device.type == "cuda")
    model.eval()
    try:
        return evaluate(model, loader, label_map, device, progress=False)
    finally:
        model.train()


def main(argv=None):
    """Train SSD300.

    :param argv: command-line arguments (None: sys.argv[1:]); see parse_args
    :return: dict with "model" (the trained SSD300, unwrapped from DDP), "checkpoint" (path of the last
             checkpoint written, or None on ranks other than 0), "iteration" (steps done), "log" (list of the
             CSV row dicts), "eval" (last eval.evaluate result or None), "interrupted" (bool)
    :raises NonFiniteLossError: when the loss becomes NaN/inf (the last good checkpoint stays as it was)
    """
    args = parse_args(argv)
    dist_info = setup_distributed(args.device)
    try:
        return train(args, dist_info)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def prepare_training(args, dist_info):
    """Build everything a run needs, restored from ``--resume`` if given.

    :return: SimpleNamespace with model (DDP-wrapped when distributed), model_without_ddp, loss_fn, optimizer,
             scaler, autocast (a context manager), label_map, start_iteration, last_checkpoint, batches (an endless
             iterator of (images, boxes, labels, difficulties)) and n_images
    """
    from datasets import load_label_map

    earlier = list_checkpoints(args.checkpoint_dir)
    if not args.resume and earlier:
        # A fresh run would restart the log, and pruning (newest iterations first) would delete its own
        # checkpoints in favour of the earlier run's.
        raise TrainingSetupError(f"{args.checkpoint_dir}: holds checkpoints of an earlier run (newest "
                                 f"{os.path.basename(earlier[-1][1])}); continue it with --resume latest, or "
                                 f"pick another --checkpoint-dir")
    device = dist_info["device"]
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 300x300 input: let cuDNN pick its fastest kernels

    label_map = load_label_map(args.data_folder)
    model = build_model(args, len(label_map), device)
    if args.init_from and not args.resume:  # a resumed run continues from its own weights
        from convert_weights import init_from_checkpoint

        try:
            init_from_checkpoint(model, args.init_from, label_map, log=print if dist_info["is_main"] else None)
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
    if args.freeze_base:
        from detector import freeze_backbone_stages

        freeze_backbone_stages(model, 5 - args.freeze_base)  # before the optimizer: frozen weights are left out
    optimizer = make_optimizer(args.optimizer, make_param_groups(model, args.weight_decay, args.bias_lr_mult),
                               args.lr, args.momentum)
    amp_dtype = torch.bfloat16 if args.amp_dtype == "bf16" else torch.float16
    # fp16 has too few exponent bits for small gradients, hence the loss scaling; bf16 has float32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype == torch.float16)

    start_iteration, rng_state, last_checkpoint = 0, None, None
    if args.resume:
        last_checkpoint = resolve_resume_path(args.resume, args.checkpoint_dir)
        start_iteration, rng_state = load_resume_state(last_checkpoint, model, optimizer, scaler, label_map)
        if dist_info["is_main"]:
            print(f"Resumed from {last_checkpoint} at iteration {start_iteration}.", flush=True)

    dataset = make_train_dataset(args, model.preprocess_config)
    batches = iter(make_train_loader(dataset, args, dist_info, start_iteration)[0])
    if rng_state is not None:
        # After the loader's iterator is made, so that nothing else draws from the restored generators.
        restore_rng_state(rng_state)

    wrapped = model
    if dist_info["world_size"] > 1:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return SimpleNamespace(
        model=wrapped, model_without_ddp=model, loss_fn=MultiBoxLoss(model.priors_cxcy), optimizer=optimizer,
        scaler=scaler, autocast=torch.autocast(device.type, dtype=amp_dtype) if args.amp else nullcontext(),
        label_map=label_map, start_iteration=start_iteration, last_checkpoint=last_checkpoint, batches=batches,
        n_images=len(dataset))


def next_batch(run, device):
    """The next training batch, on ``device`` (images channels_last on CUDA).

    :return: images (N, 3, 300, 300), boxes list of (n_i, 4) fractional, labels list of (n_i,)
    """
    images, boxes, labels, _ = next(run.batches)
    images = images.to(device, non_blocking=True)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return (images, [b.to(device, non_blocking=True) for b in boxes],
            [label.to(device, non_blocking=True) for label in labels])


def train_step(run, images, boxes, labels, args, dist_info, stop_requested, iteration):
    """One optimizer step: forward, loss, (checks), backward, step.

    :param stop_requested: whether this process received SIGINT/SIGTERM
    :param iteration: number of steps done before this one (the log calls this step iteration + 1)
    :return: dict with the loss, loc and conf averaged over all processes, and "stop" (True when any process
             asked to stop)
    :raises NonFiniteLossError: before any weight is touched, when the loss is NaN/inf on any process
    """
    loss, parts = forward_and_loss(run.model, run.loss_fn, images, boxes, labels, run.autocast)
    # One all-reduce per step carries the loss for the log and tells every rank whether any rank saw a
    # non-finite loss or a stop signal, so that all of them stop at the same iteration (a rank that skipped
    # backward() would leave the others waiting in DDP's gradient all-reduce forever).
    world = dist_info["world_size"]
    sums = all_ranks_sum([loss.item(), parts.get("loc", math.nan), parts.get("conf", math.nan),
                          float(stop_requested)], dist_info)
    stats = {"loss": sums[0] / world, "loc": sums[1] / world, "conf": sums[2] / world, "stop": sums[3] > 0}
    if not math.isfinite(stats["loss"]):
        raise NonFiniteLossError(
            f"the loss is not finite at iteration {iteration + 1} (loss {stats['loss']}, localization {stats['loc']}, "
            f"confidence {stats['conf']}); training stopped. The last good checkpoint is "
            f"{run.last_checkpoint or 'none (none was written yet)'}. Try a lower --lr, a longer --warmup, "
            f"--grad-clip, or --amp-dtype bf16 instead of fp16.")

    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if args.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), args.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return stats


def write_summary(args, log, run, iteration, interrupted, eval_result, wall_time):
    """Write train_summary.json (what was run, how far it got, the last loss and mAP)."""
    summary = {"iterations_done": iteration, "interrupted": interrupted, "last_checkpoint": run.last_checkpoint,
               "wall_time_s": round(wall_time, 1),
               "final_loss": next((float(r["loss"]) for r in reversed(log.rows) if r["loss"] != ""), None),
               "eval": eval_result, "args": vars(args)}
    with open(os.path.join(args.checkpoint_dir, "train_summary.json"), "w") as file:
        json.dump(summary, file, indent=2)


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


def evaluate_and_log(run, args, log, progress, iteration, dist_info, run_start):
    """--eval-every: the TEST mAP on rank 0 (the others wait), written to the log.

    :return: eval.evaluate's dict on rank 0, None elsewhere
    """
    result = None
    if dist_info["is_main"]:
        result = evaluate_map(run.model_without_ddp, args, run.label_map, dist_info["device"])
        log.add(iteration=iteration, map_11pt=f"{result['map_11pt']:.4f}",
                elapsed_s=f"{time.perf_counter() - run_start:.1f}")
        progress.write(f"iteration {iteration}: TEST mAP (11-point) {result['map_11pt']:.4f}")
    if dist_info["world_size"] > 1:
        dist.barrier()
    return result


def checkpoint_now(run, args, log, iteration, dist_info):
    """Save a checkpoint (rank 0 writes, the others wait); sets ``run.last_checkpoint``.

    :raises NonFiniteLossError: when the weights are not finite; checked on every rank (their weights are
        identical) so that all of them stop together, and nothing is written: the newest checkpoint on disk
        is always a good one
    """
    if not weights_are_finite(run.model_without_ddp):
        raise NonFiniteLossError(f"the weights are not finite after iteration {iteration}; training stopped "
                                 f"without saving. The last good checkpoint is {run.last_checkpoint or 'none'}.")
    if dist_info["is_main"]:
        run.last_checkpoint = save_checkpoint(run.model_without_ddp, run.optimizer, run.scaler, iteration,
                                              run.label_map, args, log)
    if dist_info["world_size"] > 1:
        dist.barrier()


def train(args, dist_info):
    """The body of main(), once the process group (if any) is up. Same return value as main()."""
    device, is_main, world = dist_info["device"], dist_info["is_main"], dist_info["world_size"]
    run = prepare_training(args, dist_info)
    log = TrainingLog(args.checkpoint_dir, run.start_iteration, enabled=is_main)
    if is_main:
        print(f"Training SSD{args.image_size} ({args.base}) on {run.n_images} images, {len(run.label_map) - 1} classes, {world} process(es) x "
              f"batch {args.batch_size} on {device}, iterations {run.start_iteration} -> {args.iterations}.",
              flush=True)

    flag, meter, run_start = {"stop": False}, ThroughputMeter(), time.perf_counter()
    eval_result, interrupted, iteration = None, False, run.start_iteration
    progress = tqdm(total=args.iterations, initial=iteration, desc="train", unit="it", dynamic_ncols=True,
                    disable=not is_main or args.no_progress)
    with stop_on_signals(flag), progress:
        while iteration < args.iterations:
            step_start = time.perf_counter()
            lr = learning_rate_at(iteration, args.lr, args.decay_at, args.lr_gamma, args.warmup, args.warmup_factor)
            set_learning_rate(run.optimizer, lr)
            images, boxes, labels = next_batch(run, device)
            stats = train_step(run, images, boxes, labels, args, dist_info, flag["stop"], iteration)
            iteration += 1
            meter.add(images.shape[0] * world, time.perf_counter() - step_start)
            interrupted = stats["stop"] and iteration < args.iterations
            finished = iteration == args.iterations

            if iteration % args.log_every == 0 or finished or interrupted:
                images_per_s = meter.read_and_reset()
                log.add(iteration=iteration, loss=f"{stats['loss']:.5f}", loc_loss=f"{stats['loc']:.5f}",
                        conf_loss=f"{stats['conf']:.5f}", lr=f"{lr:.3g}", images_per_s=f"{images_per_s:.2f}",
                        elapsed_s=f"{time.perf_counter() - run_start:.1f}")
                progress.set_postfix(loss=f"{stats['loss']:.3f}", loc=f"{stats['loc']:.3f}",
                                     conf=f"{stats['conf']:.3f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.1f}",
                                     refresh=False)
            progress.update(1)
            if args.eval_every and (iteration % args.eval_every == 0 or finished):
                eval_result = evaluate_and_log(run, args, log, progress, iteration, dist_info, run_start)
            if iteration % args.save_every == 0 or finished or interrupted:
                checkpoint_now(run, args, log, iteration, dist_info)
            if interrupted:
                if is_main:
                    progress.write(f"Stopped at iteration {iteration}; saved {run.last_checkpoint}. "
                                   f"Continue with --resume {run.last_checkpoint}")
                break

    if is_main:
        log.plot()
        write_summary(args, log, run, iteration, interrupted, eval_result, time.perf_counter() - run_start)
    if world > 1:
        # Printed by every rank: identical digests show that DDP kept the replicas in sync.
        print(f"rank {dist_info['rank']}: final weights sha256 {weights_digest(run.model_without_ddp)}", flush=True)
    return {"model": run.model_without_ddp, "checkpoint": run.last_checkpoint if is_main else None,
            "iteration": iteration, "log": log.rows, "eval": eval_result, "interrupted": interrupted}


if __name__ == "__main__":
    try:
        result = main()
    except (NonFiniteLossError, TrainingSetupError, FileNotFoundError) as error:
        sys.exit(f"train.py: {error}")
    sys.exit(130 if result["interrupted"] else 0)
