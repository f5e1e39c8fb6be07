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

For a small data set, ``--epochs E`` says how long in passes over the images; it is turned into iterations
and decay points (the paper's 80k/100k of 120k, scaled) before training starts. ``--eval-every N`` measures
the mAP on the VAL split (create_data_lists.py --val-fraction) and keeps the best weights as best.pt; without
VAL lists it measures TEST, with a warning.

Written to --checkpoint-dir (by rank 0 only): ssd300_iter_<N>.pt (SSD512: ssd512_iter_<N>.pt) checkpoints (model, optimizer, AMP scaler,
RNG states, iteration and the label map; plain tensors, so torch.load(weights_only=True) reads them), written
atomically, the newest --keep-checkpoints kept; train_log.csv; loss_curve.png; train_summary.json.
Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits with status 130; a NaN/inf loss
stops training with a message naming the last good checkpoint.

This file is the recipe and the loop; what makes a run resumable, lockable, observable and distributable is
in train_support.py.
"""

import argparse
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from train_support import (CheckpointWriteError, DataLoadError, StopRequest, TensorBoardLog, ThroughputMeter,
                           TrainingLog, TrainingSetupError, all_ranks_sum, capture_rng_state, check_resume_settings,
                           checkpoint_path, claim_checkpoint_dir, convert_sync_batchnorm,
                           discard_checkpoint_on_trial, has_val_split, list_checkpoints,
                           loader_error_message, make_train_loader, prune_checkpoints, require_tensorboard,
                           resolve_resume_path, restore_rng_state, save_atomically, settle_device_options,
                           setup_distributed, split_size, stop_loader_workers, stop_on_signals,
                           stop_requested_anywhere, weights_are_finite, weights_digest)
from ssd_support.files import finite_or_null
from utils import MultiBoxLoss, normalize, preprocess_settings


class NonFiniteLossError(RuntimeError):
    """Raised when the loss (or the weights) stop being finite; the last good checkpoint is left untouched."""


@dataclass
class TrainingRun:
    """Everything the training loop works with, built by prepare_training."""

    model: torch.nn.Module  # DistributedDataParallel-wrapped under torchrun, else the SSD itself
    model_without_ddp: torch.nn.Module  # the SSD: what is saved and evaluated
    loss_fn: MultiBoxLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Any  # a context manager: torch.autocast, or nullcontext without --amp
    label_map: Dict[str, int]
    start_iteration: int
    last_checkpoint: Optional[str]  # the newest checkpoint written or resumed from: the last good one
    batches: Iterator  # endless (images, boxes, labels, difficulties) batches, uint8 images
    n_images: int
    normalization: Dict[str, Any]  # {"mean", "std"} the uint8 batches are normalized with, on the device
    eval_split: str = "TEST"  # what --eval-every measures: VAL when the data folder has it (prepare_evaluation)
    best_map: Optional[float] = None  # the best VAL mAP so far (best.pt holds those weights)
    best_checkpoint: Optional[str] = None
    tensorboard: Any = None  # a train_support.TensorBoardLog with --tensorboard, else None
    # (checkpoint written after the previous step, the good one before it): the next step's loss tells
    # whether training can go on from its weights (train_step)
    on_trial: Optional[tuple] = None


# =====================================================================================
# Command line
# =====================================================================================


def parse_args(argv=None):
    """Parse the command line; every default is the paper's recipe.

    :param argv: list of command-line strings (None: sys.argv[1:])
    :return: an argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description="Train SSD300 (or SSD512, or the ResNet-50 SSD300) with the paper's recipe. Run it with torchrun for several GPUs "
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
    length = recipe.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, default=120_000, help="optimizer steps in total")
    length.add_argument("--epochs", type=float, default=None, metavar="E",
                        help="train for E passes over the training images instead of --iterations: "
                             "ceil(E x images / (batch size x processes)) iterations, the learning-rate decays "
                             "at the paper's 80k/120k and 100k/120k of that (unless --decay-at gives other values), "
                             "--warmup cut to the first decay if longer")
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
    run.add_argument("--amp", action="store_true",
                     help="mixed precision (autocast) for the forward pass; on a CPU only with --amp-on-cpu")
    run.add_argument("--amp-on-cpu", action="store_true",
                     help="use --amp on a CPU too (without fast bf16/fp16 units a step is 20-40x slower)")
    run.add_argument("--amp-dtype", choices=("bf16", "fp16"), default="bf16",
                     help="autocast dtype; fp16 also uses a GradScaler, bf16 needs none")
    run.add_argument("--checkpoint-dir", default="checkpoints",
                     help="where checkpoints (ssd300_iter_N.pt), train_log.csv, train_summary.json and "
                          "loss_curve.png go")
    run.add_argument("--save-every", type=int, default=5000, help="write a checkpoint every N iterations")
    run.add_argument("--keep-checkpoints", type=int, default=3, help="keep only the newest N checkpoints (0: all)")
    run.add_argument("--resume", default=None,
                     help="checkpoint to continue from, or 'latest' for the newest one in --checkpoint-dir")
    run.add_argument("--allow-changed-settings", action="store_true",
                     help="--resume even though --batch-size, --seed, --no-augment, --skip-difficult, "
                          "--max-images, --optimizer or the number of processes differ from the checkpoint's "
                          "(the batches then differ from the uninterrupted run's; another optimizer starts afresh)")
    run.add_argument("--log-every", type=int, default=20, help="write a train_log.csv row every N iterations")
    run.add_argument("--eval-every", type=int, default=0,
                     help="compute the VOC mAP every N iterations and at the end (0: never), on the VAL split "
                          "when the data folder has one (create_data_lists.py --val-fraction; then the best "
                          "weights are kept as best.pt), else on TEST")
    run.add_argument("--tensorboard", default=None, metavar="DIR",
                     help="also write the losses, learning rate, images/s and mAP as TensorBoard events into "
                          "DIR (needs the tensorboard package; train_log.csv and loss_curve.png are kept)")
    run.add_argument("--sync-bn", action="store_true",
                     help="under torchrun, turn the batch norms (--base resnet50) into SyncBatchNorm, so that "
                          "their statistics come from the whole batch, not each GPU's share; a no-op with a "
                          "message for vgg16 (no batch norm) or a single process")
    run.add_argument("--eval-batch-size", type=int, default=32, help="batch size for --eval-every")
    run.add_argument("--no-progress", action="store_true",
                     help="no tqdm progress bar: a plain line per --log-every row instead (for logs under nohup or a "
                          "batch scheduler)")
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
    if args.epochs is not None and not args.epochs > 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    if args.base == "resnet50" and args.image_size != 300:
        parser.error("--base resnet50 is defined for --image-size 300 only (NVIDIA's SSD300)")
    if not 0 <= args.freeze_base <= 5:
        parser.error(f"--freeze-base must be between 0 and 5, got {args.freeze_base}")
    if args.init_from:
        args.no_pretrained = True  # every weight of the base comes from the checkpoint: no ImageNet download
    if args.base == "resnet50" and args.batch_size < 2:
        parser.error("--base resnet50 needs --batch-size 2 or more: its last extra block's batch norm sees a "
                     "1x1 map, and one value per channel has no batch statistics")
    if args.bias_lr_mult is None:
        args.bias_lr_mult = 2.0 if args.base == "vgg16" else 1.0
    return args


# =====================================================================================
# The recipe: learning-rate schedule, parameter groups, optimizer
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


# The paper's schedule: 120k iterations, the learning rate divided by 10 at 80k and at 100k.
PAPER_ITERATIONS = 120_000
PAPER_DECAY_AT = (80_000, 100_000)


def schedule_for_epochs(epochs, n_images, batch_size, world_size, warmup, decay_at=PAPER_DECAY_AT):
    """The iterations, decay points and warmup of a run counted in epochs (passes over the training images).

    One iteration consumes ``batch_size x world_size`` images, so E epochs are
    ``ceil(E x n_images / (batch_size x world_size))`` iterations. The decays keep the paper's proportions
    (80k/120k and 100k/120k of the run) unless other ``decay_at`` values are given, which are kept as they
    are. The warmup is kept unless it would run past the first decay (or the end), where it is cut to end there.

    :param epochs: passes over the data (float, > 0)
    :param n_images: images in the training set
    :param batch_size: images per step per process
    :param world_size: processes (GPUs)
    :param warmup: --warmup, in iterations
    :param decay_at: --decay-at; the paper's values are scaled, others kept
    :return: (iterations, decay_at list, warmup)
    """
    iterations = max(1, math.ceil(epochs * n_images / (batch_size * world_size)))
    if tuple(decay_at) == PAPER_DECAY_AT:
        decay_at = [round(iterations * milestone / PAPER_ITERATIONS) for milestone in PAPER_DECAY_AT]
    decay_at = list(decay_at)
    warmup = min(warmup, min(decay_at + [iterations]))
    return iterations, decay_at, warmup


def apply_epochs(args, n_images, world_size):
    """--epochs: set ``args.iterations``, ``args.decay_at`` and ``args.warmup`` (schedule_for_epochs).

    :return: a sentence saying what the run became, for the start-up line ("" without --epochs)
    """
    if args.epochs is None:
        return ""
    args.iterations, args.decay_at, args.warmup = schedule_for_epochs(
        args.epochs, n_images, args.batch_size, world_size, args.warmup, args.decay_at)
    return (f" --epochs {args.epochs:g} = {args.iterations} iterations ({n_images} images / ({args.batch_size} x "
            f"{world_size})), learning-rate decay at {', '.join(map(str, args.decay_at)) or 'none'}, "
            f"warmup {args.warmup}.")


def make_param_groups(model, weight_decay, bias_lr_mult=2.0):
    """Split the parameters the way Caffe's SSD recipe does.

    Biases: ``lr_mult 2, decay_mult 0``. Weights, and the conv4_3 L2-norm rescale factors: ``lr_mult 1,
    decay_mult 1`` -- Caffe's Normalize layer declares no param spec, so its scale gets the default weight
    decay, and we follow Caffe there. Batch-norm scales (the ResNet-50
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
# The model and the data
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


def make_train_dataset(args, preprocess=None):
    """The training set as the arguments ask: difficult objects kept, optionally un-augmented or truncated.

    :param preprocess: the model's ``preprocess_config`` (None: ImageNet mean/std; --init-from a converted COCO
        checkpoint may name another)
    :return: a Dataset of ``(image (3, 300, 300) uint8, boxes (n, 4) fractional, labels (n,), difficulties (n,))``:
        the images are normalized on the device, a batch at a time (next_batch)
    """
    from datasets import PascalVOCDataset

    dataset = PascalVOCDataset(args.data_folder, "TRAIN", keep_difficult=not args.skip_difficult,
                               augment=not args.no_augment, image_size=args.image_size, preprocess=preprocess,
                               normalized=False)
    if args.max_images is not None:
        dataset = Subset(dataset, range(min(args.max_images, len(dataset))))
    if len(dataset) == 0:
        raise TrainingSetupError(f"{args.data_folder}: the TRAIN split has no images")
    return dataset


def prepare_training(args, dist_info):
    """Build everything a run needs, restored from ``--resume`` if given.

    :return: a TrainingRun with model (DDP-wrapped when distributed), model_without_ddp, loss_fn, optimizer,
             scaler, autocast (a context manager), label_map, start_iteration, last_checkpoint, batches (an endless
             iterator of (images, boxes, labels, difficulties)), n_images and normalization
    """
    from datasets import load_label_map

    earlier = list_checkpoints(args.checkpoint_dir)
    if not args.resume and earlier:
        # A fresh run would restart the log, and pruning (newest iterations first) would delete its own
        # checkpoints in favour of the earlier run's.
        raise TrainingSetupError(f"{args.checkpoint_dir}: holds checkpoints of an earlier run (newest "
                                 f"{os.path.basename(earlier[-1][1])}); continue it with --resume latest, or "
                                 f"pick another --checkpoint-dir")
    device = dist_info.device
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    label_map = load_label_map(args.data_folder)
    model = build_model(args, len(label_map), device)
    if args.init_from and not args.resume:  # a resumed run continues from its own weights
        from convert_weights import init_from_checkpoint

        try:
            init_from_checkpoint(model, args.init_from, label_map, log=print if dist_info.is_main else None)
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
    if args.freeze_base:
        from ssd_support.detector import freeze_backbone_stages

        freeze_backbone_stages(model, 5 - args.freeze_base)  # before the optimizer: frozen weights are left out
    optimizer = make_optimizer(args.optimizer, make_param_groups(model, args.weight_decay, args.bias_lr_mult),
                               args.lr, args.momentum)
    amp_dtype = torch.bfloat16 if args.amp_dtype == "bf16" else torch.float16
    # fp16 has too few exponent bits for small gradients, hence the loss scaling; bf16 has float32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype == torch.float16)

    start_iteration, rng_state, last_checkpoint = 0, None, None
    if args.resume:
        last_checkpoint = resolve_resume_path(args.resume, args.checkpoint_dir)
        start_iteration, rng_state = load_resume_state(last_checkpoint, model, optimizer, scaler, label_map, args,
                                                       dist_info.world_size)
        if dist_info.is_main:
            print(f"Resumed from {last_checkpoint} at iteration {start_iteration}.", flush=True)

    dataset = make_train_dataset(args, model.preprocess_config)
    batches = iter(make_train_loader(dataset, args, dist_info, start_iteration)[0])
    if rng_state is not None:
        # After the loader's iterator is made, so that nothing else draws from the restored generators.
        restore_rng_state(rng_state)

    settings = preprocess_settings(model.preprocess_config)
    normalization = {"mean": settings["mean"], "std": settings["std"]}  # the rest (antialias) is the loader's
    model = convert_sync_batchnorm(model, args, dist_info)
    wrapped = model
    if dist_info.world_size > 1:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return TrainingRun(
        model=wrapped, model_without_ddp=model, loss_fn=MultiBoxLoss(model.priors_cxcy), optimizer=optimizer,
        scaler=scaler, autocast=torch.autocast(device.type, dtype=amp_dtype) if args.amp else nullcontext(),
        label_map=label_map, start_iteration=start_iteration, last_checkpoint=last_checkpoint, batches=batches,
        n_images=len(dataset), normalization=normalization)


def next_batch(run, device):
    """The next training batch, on ``device``, normalized there (channels-last memory on CUDA, as the network).

    The loader hands over uint8 images, a quarter of the bytes of float ones through shared memory, pinned memory
    and the copy to the GPU; normalizing a batch on the GPU costs next to nothing, in a loader worker a tenth or
    more of the TRAIN pipeline's time (bench/bench_transforms.py).

    :return: images (N, 3, S, S) normalized float (S = --image-size), boxes list of (n_i, 4) fractional, labels
        list of (n_i,)
    :raises TypeError: a batch of images that are not uint8 (already normalized ones would be normalized twice)
    """
    images, boxes, labels, _ = next(run.batches)
    if images.dtype != torch.uint8:
        raise TypeError(f"the training loader must hand over uint8 images (normalized here, on {device}), "
                        f"got {images.dtype}: PascalVOCDataset(..., normalized=False)")
    # In the network's layout (build_model: channels-last on CUDA, the default elsewhere). The loader's batches are
    # channels-last already (stack_images); against default-layout weights on the CPU they made a step slower.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    images = normalize(images, **run.normalization)
    return (images, [b.to(device, non_blocking=True) for b in boxes],
            [label.to(device, non_blocking=True) for label in labels])


# =====================================================================================
# The training loop
# =====================================================================================


def forward_and_loss(model, loss_fn, images, boxes, labels, autocast_context):
    """One forward pass and the MultiBox loss.

    The network runs under autocast (if enabled); the loss is computed in float32, since its log-sum-exp and
    hard-negative sort are where fp16 loses precision.

    :return: (scalar loss tensor, the sum of the two terms; dict of the terms "loc" and "conf" as floats)
    """
    with autocast_context:
        predicted_locs, predicted_scores = model(images)
    loc_loss, conf_loss = loss_fn(predicted_locs.float(), predicted_scores.float(), boxes, labels)
    return loc_loss + conf_loss, {"loc": loc_loss.item(), "conf": conf_loss.item()}


def train_step(run, images, boxes, labels, args, dist_info, iteration):
    """One optimizer step: forward, loss, (checks), backward, step.

    :param iteration: number of steps done before this one (the log calls this step iteration + 1)
    :return: dict with the loss, loc and conf averaged over all processes
    :raises NonFiniteLossError: before any weight is touched, when the loss is NaN/inf on any process
    """
    loss, parts = forward_and_loss(run.model, run.loss_fn, images, boxes, labels, run.autocast)
    # One all-reduce per step carries the loss for the log and tells every rank whether any rank saw a
    # non-finite loss, so that all of them stop at the same iteration (a rank that skipped backward() would
    # leave the others waiting in DDP's gradient all-reduce forever).
    world = dist_info.world_size
    sums = all_ranks_sum([loss.item(), parts["loc"], parts["conf"]], dist_info)
    stats = {"loss": sums[0] / world, "loc": sums[1] / world, "conf": sums[2] / world}
    if not math.isfinite(stats["loss"]):
        last_good = discard_checkpoint_on_trial(run, dist_info)
        advice = (f"The last good checkpoint is {last_good}: continue from it with --resume {last_good} and a "
                  f"lower --lr" if last_good else "There is no last good checkpoint yet: try a lower --lr")
        raise NonFiniteLossError(
            f"the loss is not finite at iteration {iteration + 1} (loss {stats['loss']}, localization {stats['loc']}, "
            f"confidence {stats['conf']}); training stopped. {advice}, a longer --warmup, --grad-clip, or "
            f"--amp-dtype bf16 instead of fp16.")
    run.on_trial = None  # the checkpoint of the previous step gives a finite loss: one can train on from it

    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if args.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), args.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return stats


def train(args, dist_info):
    """The body of main(), once the process group (if any) is up. Same return value as main()."""
    device, is_main = dist_info.device, dist_info.is_main
    # The folder is checked and locked before the model is built (a minute with ImageNet weights), and held
    # until the run ends.
    with claim_checkpoint_dir(args.checkpoint_dir, enabled=is_main):
        settle_device_options(args, device)
        eval_split = "VAL" if has_val_split(args.data_folder) else "TEST"
        if args.eval_every and split_size(args.data_folder, eval_split) == 0:
            if is_main:
                print(f"train.py: note: {args.data_folder} has no {eval_split} images; --eval-every is ignored",
                      file=sys.stderr, flush=True)
            args.eval_every = 0
        if args.tensorboard and is_main:
            require_tensorboard()  # before the model is built: a missing package should not cost a minute
        run = prepare_training(args, dist_info)
        try:
            epochs_note = apply_epochs(args, run.n_images, dist_info.world_size)
            prepare_evaluation(run, args, dist_info)
            if args.tensorboard and is_main:
                run.tensorboard = TensorBoardLog(args.tensorboard, run.start_iteration)
            return run_training(args, dist_info, run, epochs_note)
        finally:
            stop_loader_workers(run.batches)


def run_training(args, dist_info, run, epochs_note=""):
    """The training loop of a prepared run, then the summary. Same return value as main().

    :param epochs_note: what --epochs made of the run, for the start-up line
    """
    device, is_main, world = dist_info.device, dist_info.is_main, dist_info.world_size
    log = TrainingLog(args.checkpoint_dir, run.start_iteration, enabled=is_main)
    log.eval_split = run.eval_split
    if is_main:
        print(f"Training SSD{args.image_size} ({args.base}) on {run.n_images} images, {len(run.label_map) - 1} classes, {world} process(es) x "
              f"batch {args.batch_size} on {device}, iterations {run.start_iteration} -> {args.iterations}."
              + epochs_note, flush=True)

    stop_request, meter, run_start = StopRequest(), ThroughputMeter(), time.perf_counter()
    eval_result, interrupted, iteration = None, False, run.start_iteration
    progress = tqdm(total=args.iterations, initial=iteration, desc="train", unit="it", dynamic_ncols=True,
                    disable=not is_main or args.no_progress)
    with stop_on_signals(stop_request), progress:
        while iteration < args.iterations:
            step_start = time.perf_counter()
            lr = learning_rate_at(iteration, args.lr, args.decay_at, args.lr_gamma, args.warmup, args.warmup_factor)
            set_learning_rate(run.optimizer, lr)
            try:
                images, boxes, labels = next_batch(run, device)
            except (OSError, ValueError, RuntimeError) as error:  # an image deleted or overwritten mid-run
                save_after_loader_error(run, args, log, iteration, dist_info, error)
            stats = train_step(run, images, boxes, labels, args, dist_info, iteration)
            iteration += 1
            meter.add(images.shape[0] * world, time.perf_counter() - step_start)
            # Read after the step, so that a signal during step k stops after step k (SIGTERM's grace period is
            # often 30 s: shorter than a step on a CPU).
            interrupted = stop_requested_anywhere(stop_request, dist_info) and iteration < args.iterations
            finished = iteration == args.iterations

            if iteration % args.log_every == 0 or finished or interrupted:
                images_per_s = meter.read_and_reset()
                log.add(iteration=iteration, loss=f"{stats['loss']:.5f}", loc_loss=f"{stats['loc']:.5f}",
                        conf_loss=f"{stats['conf']:.5f}", lr=f"{lr:.3g}", images_per_s=f"{images_per_s:.2f}",
                        elapsed_s=f"{time.perf_counter() - run_start:.1f}")
                if run.tensorboard is not None:
                    run.tensorboard.add(iteration, {"loss/total": stats["loss"], "loss/localization": stats["loc"],
                                                    "loss/confidence": stats["conf"], "lr": lr,
                                                    "images_per_s": images_per_s})
                progress.set_postfix(loss=f"{stats['loss']:.3f}", loc=f"{stats['loc']:.3f}",
                                     conf=f"{stats['conf']:.3f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.1f}",
                                     refresh=False)
                if args.no_progress and is_main:  # under nohup or a batch scheduler: a plain line per log row
                    print(f"iteration {iteration}: loss {stats['loss']:.4f} (localization {stats['loc']:.4f}, "
                          f"confidence {stats['conf']:.4f}), lr {lr:.3g}, {images_per_s:.1f} images/s", flush=True)
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

    if run.tensorboard is not None:
        run.tensorboard.close()
    if is_main:
        log.plot()
        write_summary(args, log, run, iteration, interrupted, eval_result, time.perf_counter() - run_start)
    if world > 1:
        # Printed by every rank: identical digests show that DDP kept the replicas in sync.
        print(f"rank {dist_info.rank}: final weights sha256 {weights_digest(run.model_without_ddp)}", flush=True)
    return {"model": run.model_without_ddp, "checkpoint": run.last_checkpoint if is_main else None,
            "iteration": iteration, "log": log.rows, "eval": eval_result, "interrupted": interrupted}


def save_after_loader_error(run, args, log, iteration, dist_info, error):
    """A batch could not be loaded: save the progress since the last checkpoint (as on Ctrl-C), then stop.

    :param error: the loader's exception (from a worker, its type with the worker's traceback as message)
    :raises DataLoadError: always, one line naming the file and the checkpoint to continue from
    """
    reason = loader_error_message(error)
    if dist_info.world_size > 1:  # the other ranks wait in a collective: no consistent checkpoint is possible
        raise DataLoadError(f"cannot load a training batch: {reason}") from error
    if iteration > run.start_iteration and (run.last_checkpoint is None or
                                            not run.last_checkpoint.endswith(f"_iter_{iteration:06d}.pt")):
        checkpoint_now(run, args, log, iteration, dist_info)
    where = (f"saved {run.last_checkpoint}; once the file is readable again (or the lists are rebuilt), continue "
             f"with --resume {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint to save yet")
    raise DataLoadError(f"cannot load a training batch at iteration {iteration + 1}: {reason} ({where})") from None


def evaluate_and_log(run, args, log, progress, iteration, dist_info, run_start):
    """--eval-every: the mAP of ``run.eval_split`` (VAL, else TEST) on rank 0 (the others wait), written to the
    log; on VAL, a new best is kept as best.pt (keep_best).

    :return: eval.evaluate's dict on rank 0, None elsewhere
    """
    result = None
    if dist_info.is_main:
        result = evaluate_map(run.model_without_ddp, args, run.label_map, dist_info.device, run.eval_split)
        log.add(iteration=iteration, map_11pt=f"{result['map_11pt']:.4f}",
                elapsed_s=f"{time.perf_counter() - run_start:.1f}")
        note = ""
        if run.eval_split == "VAL" and keep_best(run, args, iteration, result["map_11pt"], dist_info.world_size):
            note = f" (best so far: {run.best_checkpoint})"
        progress.write(f"iteration {iteration}: {run.eval_split} mAP (11-point) {result['map_11pt']:.4f}{note}")
        if run.tensorboard is not None:
            run.tensorboard.add(iteration, {f"mAP_11pt/{run.eval_split}": result["map_11pt"]})
    if dist_info.world_size > 1:
        dist.barrier()
    return result


def evaluate_map(model, args, label_map, device, split="TEST"):
    """VOC mAP on a split (eval.evaluate); puts the model back in train mode afterwards.

    :param split: "VAL" or "TEST"
    :return: eval.evaluate's dict ({"map_11pt": float, ...})
    """
    from datasets import PascalVOCDataset, collate_fn
    from eval import evaluate

    test_set = PascalVOCDataset(args.data_folder, split, keep_difficult=True, image_size=args.image_size,
                                preprocess=model.preprocess_config)
    loader = DataLoader(test_set, batch_size=args.eval_batch_size, shuffle=False, collate_fn=collate_fn,
                        num_workers=args.workers, pin_memory=device.type == "cuda")
    model.eval()
    try:
        return evaluate(model, loader, label_map, device, progress=False)
    finally:
        model.train()


BEST_CHECKPOINT = "best.pt"  # not ssd300_iter_N.pt: --resume latest and pruning never see it


def prepare_evaluation(run, args, dist_info):
    """Decide what --eval-every measures and, when resuming, what the best VAL mAP so far was.

    VAL when the data folder has it; otherwise TEST, with a warning: picking a checkpoint or a setting by its
    TEST mAP tunes on the test set, and then no best.pt is kept. Sets ``run.eval_split``, ``run.best_map``
    and ``run.best_checkpoint``.
    """
    if not args.eval_every:
        return
    run.eval_split = "VAL" if has_val_split(args.data_folder) else "TEST"
    if run.eval_split == "TEST":
        if dist_info.is_main:
            print(f"warning: {args.data_folder} has no VAL split, so --eval-every measures TEST: choosing a "
                  f"checkpoint by it tunes on the test set, and no {BEST_CHECKPOINT} is kept. Make one with "
                  f"create_data_lists.py --val-fraction 0.1.", file=sys.stderr, flush=True)
        return
    path = os.path.join(args.checkpoint_dir, BEST_CHECKPOINT)
    if run.start_iteration > 0 and os.path.isfile(path):
        # Resuming: a later evaluation must beat the best of the run so far, not just of this session.
        from model import read_checkpoint

        saved = read_checkpoint(path)
        if saved.get("iteration", 0) <= run.start_iteration and saved.get("val_map_11pt") is not None:
            run.best_map, run.best_checkpoint = float(saved["val_map_11pt"]), path


def keep_best(run, args, iteration, val_map, world_size=1):
    """Write best.pt (atomically, the periodic checkpoints' format plus ``val_map_11pt``) when ``val_map`` beats
    the best VAL mAP so far. Rank 0 only.

    :return: True when best.pt was written
    """
    if run.best_map is not None and not val_map > run.best_map:
        return False
    path = os.path.join(args.checkpoint_dir, BEST_CHECKPOINT)
    state = make_checkpoint(run.model_without_ddp, run.optimizer, run.scaler, iteration, run.label_map, args,
                            world_size)
    state["val_map_11pt"] = float(val_map)
    save_atomically(state, path)
    run.best_map, run.best_checkpoint = float(val_map), path
    return True


def checkpoint_now(run, args, log, iteration, dist_info):
    """Save a checkpoint (rank 0 writes, the others wait); sets ``run.last_checkpoint``.

    :raises NonFiniteLossError: when the weights are not finite; checked on every rank (their weights are
        identical) so that all of them stop together, and nothing is written: the newest checkpoint on disk
        is always a good one
    """
    if not weights_are_finite(run.model_without_ddp):
        raise NonFiniteLossError(f"the weights are not finite after iteration {iteration}; training stopped "
                                 f"without saving. The last good checkpoint is {run.last_checkpoint or 'none'}.")
    previous = run.last_checkpoint
    if dist_info.is_main:
        run.last_checkpoint = save_checkpoint(run.model_without_ddp, run.optimizer, run.scaler, iteration,
                                              run.label_map, args, log, dist_info.world_size, protect=previous)
    else:
        run.last_checkpoint = checkpoint_path(args.checkpoint_dir, iteration, args.image_size)
    run.on_trial = (run.last_checkpoint, previous)
    if dist_info.world_size > 1:
        dist.barrier()


def write_summary(args, log, run, iteration, interrupted, eval_result, wall_time):
    """Write train_summary.json (what was run, how far it got, the last loss and mAP); NaN/inf are written as
    null, since strict JSON parsers reject a bare NaN."""
    summary = {"iterations_done": iteration, "interrupted": interrupted, "last_checkpoint": run.last_checkpoint,
               "eval_split": run.eval_split if args.eval_every else None,
               "best_checkpoint": run.best_checkpoint, "best_val_map_11pt": run.best_map,
               "wall_time_s": round(wall_time, 1),
               "final_loss": next((float(r["loss"]) for r in reversed(log.rows) if r["loss"] != ""), None),
               "eval": eval_result, "args": vars(args)}
    with open(os.path.join(args.checkpoint_dir, "train_summary.json"), "w") as file:
        json.dump(finite_or_null(summary), file, indent=2, allow_nan=False)


# =====================================================================================
# Checkpoints: what is saved, and resuming from one
# =====================================================================================


def make_checkpoint(model, optimizer, scaler, iteration, label_map, args, world_size=1):
    """The checkpoint dict: tensors and plain Python only, so torch.load(weights_only=True) reads it.

    ``args`` and ``world_size`` (the number of processes) are what a resume checks (check_resume_settings).
    """
    from model import network_config

    return {
        "model": model.state_dict(),
        "config": network_config(model, label_map),
        "iteration": iteration,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "args": vars(args),
        "world_size": world_size,
    }


def save_checkpoint(model, optimizer, scaler, iteration, label_map, args, log, world_size=1, protect=None):
    """Write ``ssd300_iter_<iteration>.pt`` (``ssd512_...``) atomically, prune old ones and redraw the loss curve.

    :param protect: a checkpoint that pruning must keep (the last one known to be good)
    :return: the path written
    :raises CheckpointWriteError: when the file cannot be written (disk full...); nothing is pruned then
    """
    path = checkpoint_path(args.checkpoint_dir, iteration, args.image_size)
    save_atomically(make_checkpoint(model, optimizer, scaler, iteration, label_map, args, world_size), path)
    prune_checkpoints(args.checkpoint_dir, args.keep_checkpoints, protect=protect)
    log.plot()
    return path


def load_resume_state(path, model, optimizer, scaler, label_map, args, world_size=1):
    """Load a checkpoint into the model, optimizer and scaler, after checking it fits this run.

    :return: (iteration the checkpoint was written after, its RNG states dict or None)
    :raises TrainingSetupError: one line naming the file: not a readable checkpoint, another network or label
        map, or changed settings (check_resume_settings)
    """
    # On the CPU first: the RNG states must stay CPU tensors; load_state_dict moves the rest where it belongs.
    from model import apply_checkpoint_config, configured_network, read_checkpoint

    try:  # on the CPU: the RNG states must stay CPU tensors; load_state_dict moves the rest where it belongs
        checkpoint = read_checkpoint(path, required=("model", "optimizer", "iteration"))
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    config = checkpoint.get("config", {})
    saved_network = configured_network(config)
    if saved_network != (model.base_name, model.image_size):
        raise TrainingSetupError(f"{path}: checkpoint holds an SSD{saved_network[1]} with base {saved_network[0]}, "
                                 f"but this run asks for --base {model.base_name} --image-size {model.image_size}")
    saved_map = config.get("label_map")
    if saved_map is not None and dict(saved_map) != dict(label_map):
        raise TrainingSetupError(f"{path}: checkpoint was trained with labels {sorted(saved_map, key=saved_map.get)}, "
                         f"but the data folder has {sorted(label_map, key=label_map.get)}")
    changed = check_resume_settings(checkpoint, path, args, world_size)
    if changed:
        print(f"train.py: warning: resuming with changed settings: {', '.join(changed)}", file=sys.stderr, flush=True)
    try:
        apply_checkpoint_config(model, config)  # a run fine-tuned from converted weights keeps their priors and input
        model.load_state_dict(checkpoint["model"])
        if (checkpoint.get("args") or {}).get("optimizer", args.optimizer) == args.optimizer:
            optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise TrainingSetupError(f"{path}: does not fit this run ({str(error).splitlines()[0]})") from None
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    return int(checkpoint["iteration"]), checkpoint.get("rng")


# =====================================================================================
# Entry point
# =====================================================================================


def main(argv=None):
    """Train an SSD (``--base``, ``--image-size``).

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


if __name__ == "__main__":
    try:
        result = main()
    except (NonFiniteLossError, TrainingSetupError, FileNotFoundError, ImportError, CheckpointWriteError,
            DataLoadError) as error:
        sys.exit(f"train.py: {error}")
    sys.exit(130 if result["interrupted"] else 0)
