"""Train SSD300 (or SSD512, or the ResNet-50 SSD300) on Pascal VOC, COCO or the toy set, with the paper's recipe.

    python train.py --data-folder data                      # the paper's recipe on one GPU
    torchrun --nproc_per_node=4 train.py --data-folder data --batch-size 8   # 4 GPUs, 32 images per step
    python train.py --data-folder data --resume latest      # continue where the last run stopped

The recipe (Liu et al., ECCV 2016, and the Caffe ``ssd_pascal.py`` it was trained with): an ImageNet VGG16
base, batch 32, SGD with momentum 0.9, learning rate 1e-3 (biases at 2x, without weight decay), weight decay
5e-4, 120,000 iterations with the learning rate divided by 10 at 80,000 and 100,000, difficult objects kept
for training. A short linear warmup (as lufficc/SSD and mmdetection use) avoids the early NaN losses that a
cold start at 1e-3 sometimes gives.

Read top down: the options, ``main``, the loop, one step (``train_step``), the loss (``forward_and_loss``), then
the recipe's pieces (learning rate, parameter groups) and the set-up. Training is counted in iterations, as in
the paper; a run resumed at iteration k sees exactly the batches of the uninterrupted run
(ssd_support/resumable_loader.py). Written to --checkpoint-dir (rank 0): ssd300_iter_<N>.pt checkpoints
(ssd_support/checkpoints.py), train_log.csv and loss_curve.png (ssd_support/run_log.py), train_summary.json.
Ctrl-C or SIGTERM finishes the step, saves and exits with status 130 (on every rank; torchrun itself then exits
1, ``python -m ssd_support.launch`` with torchrun's arguments exits 130); a NaN/inf loss stops with a message
naming the last good checkpoint (ssd_support/training_run.py).
"""

import argparse
import math
import os
import random
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from datasets import PascalVOCDataset, collate_fn, load_label_map
from eval import evaluate
from model import build_ssd
from utils import MultiBoxLoss, normalize, preprocess_settings

# The product layers: checkpoints and resume, the log, torchrun, the resumable loader, the run's safety nets.
from ssd_support.checkpoints import list_checkpoints, load_resume_state, resolve_resume_path, restore_rng_state
from ssd_support.cpu_layout import channels_last_convolutions
from ssd_support.distributed import (STOPPED_EXIT_CODE, all_ranks_sum, convert_sync_batchnorm, report_exit_status,
                                     setup_distributed, stop_requested_anywhere, weights_digest)
from ssd_support.ema import ModelEMA, load_ema
from ssd_support.previews import PREVIEW_BATCHES, write_batch_preview
from ssd_support.resumable_loader import (before_forking_workers, init_loader_worker, make_train_loader,
                                         stop_loader_workers)
from ssd_support.run_log import RunLog, ThroughputMeter, require_tensorboard
from ssd_support.split_loss import SplitLoss
from ssd_support.training_data import (add_data_options, augment_steps, check_data_options, empty_images_note,
                                       make_train_dataset, train_objects, train_repeat_factors)
from ssd_support.training_run import (CheckpointWriteError, DataLoadError, LogWriteError, NonFiniteLossError,
                                      StopRequest, TrainingRun, TrainingSetupError, add_run_options,
                                      check_evaluation_split, check_recipe_options, check_run_options, choose_amp_dtype,
                                      claim_checkpoint_dir, evaluation_split, split_size, stop_on_signals, use_amp_on)


def parse_args(argv=None):
    """Parse the command line; the defaults train the paper's recipe on VOC (the run's options:
    training_run.add_run_options).

    :param argv: list of command-line strings (None: sys.argv[1:])
    :return: an argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description="Train SSD300 (or SSD512, or the ResNet-50 SSD300) with the paper's recipe. Run it with torchrun "
        "for several GPUs (torchrun --nproc_per_node=N train.py ...): DistributedDataParallel, one process per GPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(parser)  # the lists, the augmentation and its parts, the levers (training_data.py)

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
    recipe.add_argument("--lr-schedule", choices=("step", "cosine"), default="step",
                        help="step: the paper's decays at --decay-at; cosine: after the warmup, a half cosine down to "
                             "--lr x 0.01 at the last iteration (--decay-at and --lr-gamma unused)")
    recipe.add_argument("--warmup", type=int, default=500,
                        help="iterations of linear warmup from --warmup-factor x lr up to lr (0: none)")
    recipe.add_argument("--warmup-factor", type=float, default=1.0 / 3, help="learning-rate fraction at iteration 0")
    recipe.add_argument("--no-pretrained", action="store_true",
                        help="start the base from random weights instead of ImageNet (no download needed; "
                             "expect a much worse detector on real data)")

    network = parser.add_argument_group("network")
    network.add_argument("--base", choices=("vgg16", "resnet50"), default="vgg16",
                         help="vgg16: the paper's SSD; resnet50: NVIDIA's SSD300 v1.1 (ResNet-50 up to conv4_x, "
                              "batch norm in the extra layers, no weight decay on batch norm and biases)")
    network.add_argument("--image-size", type=int, choices=(300, 512), default=300,
                         help="input side: 300 (SSD300) or 512 (SSD512, VGG16 only: 24,564 priors)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    check_recipe_options(parser, args)
    check_data_options(parser, args)
    check_run_options(parser, args)
    return args


def main(argv=None):
    """Train an SSD (``--base``, ``--image-size``).

    :param argv: command-line arguments (None: sys.argv[1:]); see parse_args
    :return: dict with "model" (the trained SSD, unwrapped from DDP), "checkpoint" (path of the last
             checkpoint written, or None on ranks other than 0), "iteration" (steps done), "log" (list of the
             CSV row dicts), "eval" (last eval.evaluate result or None), "interrupted" (bool), "stopped_early"
             (why --patience ended the run, or None)
    :raises NonFiniteLossError: when the loss becomes NaN/inf (the last good checkpoint stays as it was)
    """
    args = parse_args(argv)
    stop_request = StopRequest()
    # From here to the last file written, SIGINT/SIGTERM only note a stop, acted on after the next step: a stop
    # while the model is built or a checkpoint is read (a minute) is not a crash, and under torchrun the first
    # rank to leave with 130 makes torchrun SIGTERM the others, which would kill rank 0 mid-summary.
    with stop_on_signals(stop_request):
        dist_info = setup_distributed(args.device, args.dist_timeout_minutes)
        try:
            # The folder is checked and locked before the model is built (a minute with ImageNet weights), and
            # held until the run ends.
            with claim_checkpoint_dir(args.checkpoint_dir, enabled=dist_info.is_main):
                run = prepare_training(args, dist_info)
                try:
                    return train(run, args, stop_request)
                finally:
                    stop_loader_workers(run.batches)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


# =====================================================================================
# The training loop
# =====================================================================================


def train(run, args, stop_request):
    """The training loop of a prepared run, then the summary. Same return value as main().

    :param stop_request: the StopRequest that SIGINT/SIGTERM set (main's stop_on_signals)
    """
    result = training_loop(run, args, stop_request)
    finish_run(run, result)
    return result


def training_loop(run, args, stop_request):
    """Steps from ``run.start_iteration`` to ``args.iterations``, logging, evaluating and saving on the way; leaves
    after the step during which ``stop_request`` was set (on any rank), or when --patience runs out.

    :return: main()'s dict
    """
    is_main, world = run.dist_info.is_main, run.dist_info.world_size
    meter = ThroughputMeter()
    eval_result, interrupted, stopped_early, iteration = None, False, None, run.start_iteration
    log = RunLog(args.checkpoint_dir, run.start_iteration, args.iterations, enabled=is_main,
                 tensorboard_dir=args.tensorboard, progress=not args.no_progress, eval_split=run.eval_split)
    previews = is_main and not args.no_previews and run.start_iteration == 0  # a resumed run keeps the first ones
    with log:
        while iteration < args.iterations:
            step_start = time.perf_counter()
            if args.lr_schedule == "cosine":
                lr = cosine_learning_rate_at(iteration, args.lr, args.iterations, args.warmup, args.warmup_factor)
            else:
                lr = learning_rate_at(iteration, args.lr, args.decay_at, args.lr_gamma, args.warmup, args.warmup_factor)
            set_learning_rate(run.optimizer, lr)
            try:
                images, boxes, labels = next_batch(run)  # (N, 3, 300, 300) normalized; lists of (n_i, 4), (n_i,)
            except (OSError, ValueError, RuntimeError) as error:  # an image deleted or overwritten mid-run
                run.stop_after_loader_error(iteration, log, error)
            if previews and iteration < PREVIEW_BATCHES:  # what the network is fed, before the first steps
                write_batch_preview(os.path.join(args.checkpoint_dir, f"train_batch{iteration}.jpg"), images, boxes,
                                    labels, run.label_map, **run.normalization)
            stats = train_step(run, images, boxes, labels, iteration, args.grad_clip)
            iteration += 1
            meter.add(images.shape[0] * world, time.perf_counter() - step_start)
            # Read after the step, so that a signal during step k stops after step k (SIGTERM's grace period is
            # often 30 s: shorter than a step on a CPU).
            interrupted = stop_requested_anywhere(stop_request, run.dist_info) and iteration < args.iterations
            finished = iteration == args.iterations

            if iteration % args.log_every == 0 or finished or interrupted:
                log.add(iteration, loss=stats["loss"], loc_loss=stats["loc"], conf_loss=stats["conf"], lr=lr,
                        images_per_s=meter.read_and_reset(), elapsed_s=run.elapsed())
            log.step()
            evaluated = args.eval_every and (iteration % args.eval_every == 0 or finished)
            if evaluated:
                eval_result = run.evaluate(iteration, log)
            saved = iteration % args.save_every == 0 or finished or interrupted
            if saved:
                run.save_checkpoint(iteration, log)
            if evaluated and args.patience and not finished and run.patience_ran_out(log, args.patience):
                stopped_early = (f"{args.patience} evaluations in a row brought no better {run.eval_split} mAP than "
                                 f"{run.best_map:.4f} ({run.best_checkpoint})")
                if not saved:
                    run.save_checkpoint(iteration, log)
                log.write(f"Stopped early at iteration {iteration}: {stopped_early}.")
                break
            if (evaluated or saved) and not (interrupted or finished):
                # A signal during the evaluation or the save (they can take minutes) is acted on now, not after
                # one more step.
                interrupted = stop_requested_anywhere(stop_request, run.dist_info)
                if interrupted and not saved:
                    run.save_checkpoint(iteration, log)
            if interrupted:
                log.write(f"Stopped at iteration {iteration}; saved {run.last_checkpoint}. "
                          f"Continue with --resume {run.last_checkpoint}")
                break
    return {"model": run.model_without_ddp, "checkpoint": run.last_checkpoint if is_main else None,
            "iteration": iteration, "log": log.rows, "eval": eval_result, "interrupted": interrupted,
            "stopped_early": stopped_early}


def finish_run(run, result):
    """train_summary.json (rank 0), then every rank leaves together and tells ssd_support.launch how it ends.

    :param result: training_loop's dict
    """
    if run.dist_info.is_main:
        run.write_summary(result["iteration"], result["interrupted"], result["eval"], result["log"],
                          result["stopped_early"])
    if run.dist_info.world_size > 1:
        # Printed by every rank: identical digests show that DDP kept the replicas in sync.
        print(f"rank {run.dist_info.rank}: final weights sha256 {weights_digest(run.model_without_ddp)}", flush=True)
        dist.barrier()  # no rank leaves (and has torchrun stop the others) before rank 0 has written everything
    report_exit_status(STOPPED_EXIT_CODE if result["interrupted"] else 0)  # torchrun alone turns 130 into 1


def train_step(run, images, boxes, labels, iteration, grad_clip=None):
    """One optimizer step: forward, loss, (checks), backward, step.

    :param images: (N, 3, S, S) normalized images on the device
    :param boxes: list of N (n_i, 4) fractional boundary boxes
    :param labels: list of N (n_i,) labels
    :param iteration: number of steps done before this one (the log calls this step iteration + 1)
    :param grad_clip: clip the gradient norm to this (None: no clipping)
    :return: dict with the loss, loc and conf averaged over all processes
    :raises NonFiniteLossError: before any weight is touched, when the loss is NaN/inf on any process
    """
    loss, parts = forward_and_loss(run.model, run.loss_fn, images, boxes, labels, run.autocast)
    # One all-reduce per step carries the loss for the log and tells every rank whether any rank saw a
    # non-finite loss, so that all of them stop at the same iteration (a rank that skipped backward() would
    # leave the others waiting in DDP's gradient all-reduce forever).
    world = run.dist_info.world_size
    sums = all_ranks_sum([loss.item(), parts["loc"], parts["conf"]], run.dist_info)
    stats = {"loss": sums[0] / world, "loc": sums[1] / world, "conf": sums[2] / world}
    if not math.isfinite(stats["loss"]):
        last_good = run.discard_checkpoint_on_trial()
        advice = (f"The last good checkpoint is {last_good}: continue from it with --resume {last_good} and a "
                  f"lower --lr (--allow-changed-settings)" if last_good else
                  "There is no last good checkpoint yet: try a lower --lr")
        raise NonFiniteLossError(
            f"the loss is not finite at iteration {iteration + 1} (loss {stats['loss']}, localization {stats['loc']}, "
            f"confidence {stats['conf']}); training stopped. {advice}, a longer --warmup, --grad-clip, or "
            f"--amp-dtype bf16 instead of fp16.")
    run.on_trial = None  # the checkpoint of the previous step gives a finite loss: one can train on from it

    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if grad_clip is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model_without_ddp)  # the averaged weights follow (--ema)
    return stats


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


def next_batch(run):
    """The next training batch, on the run's device, normalized there (channels-last memory on CUDA, as the network).

    The loader hands over uint8 images, a quarter of the bytes of float ones through shared memory, pinned memory
    and the copy to the GPU; normalizing a batch on the GPU costs next to nothing, in a loader worker a tenth or
    more of the TRAIN pipeline's time (bench/bench_transforms.py).

    :return: images (N, 3, S, S) normalized float (S = --image-size), boxes list of (n_i, 4) fractional, labels
        list of (n_i,)
    :raises TypeError: a batch of images that are not uint8 (already normalized ones would be normalized twice)
    """
    device = run.dist_info.device
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


def cosine_learning_rate_at(iteration, base_lr, iterations, warmup=500, warmup_factor=1.0 / 3, final_fraction=0.01):
    """--lr-schedule cosine: the same linear warmup, then a half cosine from ``base_lr`` down to
    ``base_lr * final_fraction`` at the last iteration (not the paper's; a common choice for short fine-tuning runs).

    A pure function of the iteration, as learning_rate_at.

    :param iteration: 0-based index of the optimizer step
    :param iterations: the run's length (the last step is ``iterations - 1``)
    :param final_fraction: the rate at the end, as a fraction of ``base_lr``
    :return: the learning rate (float)
    """
    if iteration < warmup:
        return base_lr * (warmup_factor + (1.0 - warmup_factor) * iteration / warmup)
    progress = (iteration - warmup) / max(iterations - 1 - warmup, 1)
    return base_lr * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


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
        # On a handful of images both scaled decays can round to one iteration, dividing the rate by 100 at once:
        # each decay comes at least one iteration after the one before.
        for index in range(1, len(decay_at)):
            decay_at[index] = max(decay_at[index], decay_at[index - 1] + 1)
    decay_at = list(decay_at)
    warmup = min(warmup, min(decay_at + [iterations]))
    return iterations, decay_at, warmup


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
# Set-up: the model, the data, resuming
# =====================================================================================


def build_model(base, image_size, n_classes, device, pretrained=True):
    """The SSD of a base and an input size on ``device`` (channels_last on CUDA, where cuDNN's convolutions are
    fastest in NHWC).

    :param pretrained: load torchvision's ImageNet weights into the base (downloaded once)
    :return: the model in train mode
    :raises RuntimeError: the ImageNet weights cannot be loaded (one line: how to do without them)
    """
    try:
        model = build_ssd(n_classes, base=base, image_size=image_size, pretrained_base=pretrained)
    except Exception as error:  # typically: ImageNet weights cannot be downloaded
        if not pretrained:
            raise
        raise RuntimeError(f"could not load the ImageNet {base} base ({error}); "
                           "download it once with network access, or pass --no-pretrained") from error
    model = model.to(device)
    if device.type == "cuda":
        channels_last_convolutions(model)  # not rescale_factors: DDP would warn about its gradient's strides
    return model.train()


def evaluation_on(data_folder, label_map, batch_size, workers, device, loss_fn, operating_score):
    """The --eval-every measurement: a function (model, split) -> eval.evaluate's dict (the VOC mAP of a split,
    its "operating_point") plus "loss", the split's MultiBox loss, from the same forward pass (SplitLoss).

    :param data_folder: where the split's lists are
    :param label_map: {class name: label}
    :param batch_size: images per evaluation batch
    :param workers: loader worker processes
    :param device: where the model is
    :param loss_fn: the run's MultiBoxLoss
    :param operating_score: the score of the precision and recall (--operating-score)
    """
    def evaluate_split(model, split):
        dataset = PascalVOCDataset(data_folder, split, keep_difficult=True, image_size=model.image_size,
                                   preprocess=model.preprocess_config)
        # The training loader's worker set-up: workers ignore SIGINT/SIGTERM, which the main process acts on, so
        # a stop during an evaluation does not kill them with a traceback.
        before_forking_workers(workers)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                            num_workers=workers, pin_memory=device.type == "cuda", worker_init_fn=init_loader_worker)
        split_loss = SplitLoss(loss_fn)
        result = evaluate(model, loader, label_map, device, progress=False, split_loss=split_loss,
                          operating_score=operating_score)
        return {**result, "loss": split_loss.result()}

    return evaluate_split


def prepare_training(args, dist_info):
    """Build everything a run needs, restored from ``--resume`` if given.

    :return: a TrainingRun (training_run.py)
    :raises TrainingSetupError: one line naming the file or the option that does not fit
    """
    device, is_main = dist_info.device, dist_info.is_main
    args.amp = use_amp_on(device, args.amp, args.amp_on_cpu)
    eval_split = evaluation_split(args.data_folder)
    if args.eval_every and split_size(args.data_folder, eval_split) == 0:
        if is_main:
            print(f"train.py: note: {args.data_folder} has no {eval_split} images; --eval-every is ignored",
                  file=sys.stderr, flush=True)
        args.eval_every = 0
    if args.eval_every:
        check_evaluation_split(args.data_folder, eval_split)  # before the model is built (a minute)
    if args.tensorboard and is_main:
        require_tensorboard()  # before the model is built: a missing package should not cost a minute
    earlier = list_checkpoints(args.checkpoint_dir)
    if not args.resume and earlier:
        # A fresh run would restart the log, and pruning (newest iterations first) would delete its own
        # checkpoints in favour of the earlier run's.
        raise TrainingSetupError(f"{args.checkpoint_dir}: holds checkpoints of an earlier run (newest "
                                 f"{os.path.basename(earlier[-1][1])}); continue it with --resume latest, or "
                                 f"pick another --checkpoint-dir")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    label_map = load_label_map(args.data_folder)
    model = build_model(args.base, args.image_size, len(label_map), device, pretrained=not args.no_pretrained)
    if args.init_from and not args.resume:  # a resumed run continues from its own weights
        from ssd_support.weights import init_from_checkpoint  # here: only --init-from needs the converters

        try:
            init_from_checkpoint(model, args.init_from, label_map, log=print if is_main else None)
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
    if args.freeze_base:
        from ssd_support.detector import freeze_backbone_stages

        freeze_backbone_stages(model, 5 - args.freeze_base)  # before the optimizer: frozen weights are left out
    optimizer = make_optimizer(args.optimizer, make_param_groups(model, args.weight_decay, args.bias_lr_mult),
                               args.lr, args.momentum)
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    amp_dtype, amp_note = choose_amp_dtype(args.amp_dtype, device.type, capability)
    if args.amp and amp_note and is_main:
        print(amp_note, file=sys.stderr, flush=True)
    # fp16 has too few exponent bits for small gradients, hence the loss scaling; bf16 has float32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype == torch.float16)

    start_iteration, rng_state, last_checkpoint = 0, None, None
    if args.resume:
        last_checkpoint = resolve_resume_path(args.resume, args.checkpoint_dir)
        start_iteration, rng_state, changed = load_resume_state(
            last_checkpoint, model, optimizer, scaler, label_map, vars(args), dist_info.world_size,
            allow_changed=args.allow_changed_settings)
        if changed:
            print(f"train.py: warning: resuming with changed settings: {', '.join(changed)}", file=sys.stderr,
                  flush=True)
        if is_main:
            print(f"Resumed from {last_checkpoint} at iteration {start_iteration}.", flush=True)

    dataset = make_train_dataset(args.data_folder, args.image_size, keep_difficult=not args.skip_difficult,
                                 augment_steps=augment_steps(args), reference_augment=args.reference_augment,
                                 max_images=args.max_images, preprocess=model.preprocess_config)
    objects = train_objects(args.data_folder, len(dataset))
    factors, factors_note = train_repeat_factors(objects, args.repeat_factor_threshold, not args.skip_difficult)
    batches = iter(make_train_loader(dataset, args.batch_size, args.seed, args.workers, dist_info,
                                     start_iteration, repeat_factors=factors)[0])
    if rng_state is not None:
        # After the loader's iterator is made, so that nothing else draws from the restored generators.
        restore_rng_state(rng_state)
    epochs_note = apply_epochs(args, len(dataset), dist_info.world_size)

    ema = ModelEMA(model, args.ema_decay) if args.ema else None  # before DDP: it averages the SSD itself
    if ema is not None and last_checkpoint is not None:
        load_ema(ema, last_checkpoint)
    settings = preprocess_settings(model.preprocess_config)
    normalization = {"mean": settings["mean"], "std": settings["std"]}  # the rest (antialias) is the loader's
    if args.sync_bn:
        model = convert_sync_batchnorm(model, dist_info)
    wrapped = model
    if dist_info.world_size > 1:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = TrainingRun(
        model=wrapped, model_without_ddp=model, optimizer=optimizer, ema=ema,
        loss_fn=MultiBoxLoss(model.priors_cxcy, negatives_per_empty_image=args.negatives_per_empty_image),
        scaler=scaler, autocast=torch.autocast(device.type, dtype=amp_dtype) if args.amp else nullcontext(),
        label_map=label_map, start_iteration=start_iteration, last_checkpoint=last_checkpoint, batches=batches,
        n_images=len(dataset), normalization=normalization, dist_info=dist_info,
        checkpoint_dir=args.checkpoint_dir, keep_checkpoints=args.keep_checkpoints, settings=vars(args))
    if args.eval_every:
        run.evaluate_split = evaluation_on(args.data_folder, label_map, args.eval_batch_size, args.workers, device,
                                           run.loss_fn, args.operating_score)
        run.prepare_evaluation(args.data_folder)
        if args.patience and run.eval_split != "VAL":
            print("train.py: note: --patience stops by the VAL mAP, and the data folder has no VAL split: it is "
                  "ignored (create_data_lists.py --val-fraction makes one)", file=sys.stderr, flush=True)
            args.patience = 0
    if is_main:
        print(f"Training SSD{args.image_size} ({args.base}) on {run.n_images} images, {len(label_map) - 1} classes, "
              f"{dist_info.world_size} process(es) x batch {args.batch_size} on {device}, iterations "
              f"{start_iteration} -> {args.iterations}." + epochs_note, flush=True)
        for note in (empty_images_note(objects, not args.skip_difficult, args.negatives_per_empty_image), factors_note):
            if note:
                print(note, flush=True)
    return run


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


if __name__ == "__main__":
    try:
        result = main()
    except (NonFiniteLossError, TrainingSetupError, FileNotFoundError, ImportError, CheckpointWriteError,
            LogWriteError, DataLoadError) as error:
        sys.exit(f"train.py: {error}")
    sys.exit(STOPPED_EXIT_CODE if result["interrupted"] else 0)
