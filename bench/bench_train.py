"""Training throughput (images/s) of our SSD300 + MultiBoxLoss against torchvision's ssd300_vgg16, same run.

One training step = forward + loss + backward + optimizer step, on one fixed synthetic batch (random images,
three random boxes per image, 21 classes), so that only the model, the loss and the optimizer are timed, not
data loading. Both models start from random weights (no download) and use SGD with the paper's settings; ours
goes through train.py's own step functions (param groups, autocast, float32 loss), torchvision's through its
``model(images, targets)`` training API (which also runs its GeneralizedRCNNTransform: normalize + resize).

    python bench/bench_train.py                                   # CPU, batch 2, a few steps (tiny)
    python bench/bench_train.py --device cuda --batch-size 32 --steps 30
    python bench/bench_train.py --device cuda --batch-size 32 --steps 30 --amp      # bf16 autocast
    python bench/bench_train.py --device cuda --batch-size 32 --steps 30 --amp --amp-dtype fp16

It prints the images/s of both and their ratio (ours / torchvision's; above 1: ours is faster).
"""

import argparse
import os
import sys
import time
from contextlib import nullcontext

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model import SSD300  # noqa: E402
from train import forward_and_loss, make_optimizer, make_param_groups  # noqa: E402
from utils import MultiBoxLoss  # noqa: E402


def synthetic_batch(batch_size, n_classes, device, seed=0):
    """A fixed batch: normalized-looking images and three random objects per image.

    :return: images (N, 3, 300, 300), boxes list of (3, 4) fractional x1y1x2y2, labels list of (3,) int64
    """
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, 300, 300, generator=generator)
    boxes, labels = [], []
    for _ in range(batch_size):
        corner = torch.rand(3, 2, generator=generator) * 0.6
        size = 0.1 + torch.rand(3, 2, generator=generator) * 0.3
        boxes.append(torch.cat([corner, corner + size], dim=1).to(device))
        labels.append(torch.randint(1, n_classes, (3,), generator=generator).to(device))
    return images.to(device), boxes, labels


def make_autocast(device, amp, amp_dtype):
    """An autocast context for the device (a no-op context when AMP is off)."""
    if not amp:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp_dtype == "bf16" else torch.float16)


def backward_and_step(loss, optimizer, scaler):
    """The half of a training step both models share: backward (loss-scaled for fp16) and the SGD step.

    :return: the loss as a float (``.item()`` synchronizes with the GPU, as train.py's logging does)
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def ours_step_fn(batch, n_classes, device, amp, amp_dtype):
    """Build our model, loss and optimizer; return a function that runs one training step."""
    images, boxes, labels = batch
    model = SSD300(n_classes).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    loss_fn = MultiBoxLoss(model.priors_cxcy)
    optimizer = make_optimizer("sgd", make_param_groups(model, 5e-4, 2.0), 1e-3, 0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == "fp16")
    autocast = make_autocast(device, amp, amp_dtype)

    def step():
        loss, _ = forward_and_loss(model, loss_fn, images, boxes, labels, autocast)
        return backward_and_step(loss, optimizer, scaler)

    return step


def torchvision_step_fn(batch, n_classes, device, amp, amp_dtype):
    """Build torchvision's ssd300_vgg16 (random weights) and SGD; return a function that runs one step."""
    from torchvision.models.detection import ssd300_vgg16

    images, boxes, labels = batch
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=n_classes).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    # torchvision wants a list of un-normalized images and absolute pixel boxes.
    image_list = [image for image in images]
    targets = [{"boxes": b * 300, "labels": l} for b, l in zip(boxes, labels)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == "fp16")
    autocast = make_autocast(device, amp, amp_dtype)

    def step():
        with autocast:
            losses = model(image_list, targets)
        return backward_and_step(sum(losses.values()), optimizer, scaler)

    return step


def time_one_step(step, device):
    """Wall time of one call of ``step``, synchronized with the GPU.

    :return: seconds (float)
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()  # .item() in step() synchronizes with the GPU every step, as train.py's logging does
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_interleaved(steps_by_name, device, warmup_steps, steps):
    """Time several step functions, alternating between them step by step.

    Whichever model runs first on a cold process is slower (allocator, oneDNN primitive caches, CPU
    clocks), which made a one-after-the-other comparison favour the second model by ~10% on the CPU;
    alternating gives both the same conditions.

    :param steps_by_name: dict from name to a function that runs one training step
    :return: dict from name to mean seconds per step
    """
    for step in steps_by_name.values():
        for _ in range(warmup_steps):
            step()
    totals = dict.fromkeys(steps_by_name, 0.0)
    for _ in range(steps):
        for name, step in steps_by_name.items():
            totals[name] += time_one_step(step, device)
    return {name: total / steps for name, total in totals.items()}


def main(argv=None):
    """Time both training steps and print images/s and the ratio.

    :return: dict with "ours" and "torchvision" images/s and "ratio"
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first (cuDNN autotuning...)")
    parser.add_argument("--n-classes", type=int, default=21)
    parser.add_argument("--amp", action="store_true", help="autocast the forward pass of both models")
    parser.add_argument("--amp-dtype", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    batch = synthetic_batch(args.batch_size, args.n_classes, device, args.seed)
    precision = f"AMP {args.amp_dtype}" if args.amp else "float32"
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"batch {args.batch_size}, {precision}, {args.warmup_steps} warm-up + {args.steps} timed steps, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    steps_by_name = {name: builder(batch, args.n_classes, device, args.amp, args.amp_dtype)
                     for name, builder in (("ours", ours_step_fn), ("torchvision", torchvision_step_fn))}
    seconds = time_interleaved(steps_by_name, device, args.warmup_steps, args.steps)
    results = {}
    for name in steps_by_name:
        results[name] = args.batch_size / seconds[name]
        print(f"{name:>12}: {results[name]:8.2f} images/s  ({seconds[name] * 1000:.1f} ms per step)", flush=True)
    results["ratio"] = results["ours"] / results["torchvision"]
    print(f"ratio ours / torchvision: {results['ratio']:.2f}x")
    return results


if __name__ == "__main__":
    main()
