"""Inference through torchvision's detection interface: our SSDDetector against torchvision's ssd300_vgg16.

The same call on both sides, ``model(list_of_images)`` in eval mode, with a list of [0, 1] images of
mixed sizes (as photos come): both resize, normalize, run the network, decode, run per-class NMS and scale
the boxes back to each image's pixels. Random weights (no download), the same for both networks (torchvision's
are copied into ours with ``torchvision_ssd_to_ssd300_state_dict``), 21 classes, the default settings of
both (score 0.01, NMS 0.45, 200 detections, 400 candidates per class). Untrained networks score every prior
alike, so the post-processing works on many candidates; ``--trained-like`` sharpens the class heads' bias
so that only a few hundred priors per image pass the score threshold, as with a trained detector.

    python bench/bench_detector.py                          # CPU, 4 images
    python bench/bench_detector.py --device cuda --batch-size 32 --repeats 20

It prints the images/s of both and their ratio (ours / torchvision's; above 1: ours is faster), timing the
models alternately so that a slow moment of the machine hits all of them. A third contender is ours with the
network's weights in channels-last memory (``detector.network.to(memory_format=torch.channels_last)``: oneDNN's
convolutions then run without reordering activations), checked to give the same detections as the default
layout (same labels, boxes within 1e-2 pixels, scores within 1e-5) before it is timed. On the CPU a fourth is
ours with the network run by onnxruntime on its ONNX export (``export.OnnxRuntimeSSD``, what ``detect.py
--backend onnxruntime`` uses), checked the same way.
"""

import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detector import SSDDetector  # noqa: E402
from model import SSD300, torchvision_ssd_to_ssd300_state_dict  # noqa: E402

N_CLASSES = 21
PHOTO_SIZES = ((375, 500), (500, 375), (333, 500), (480, 640), (427, 640), (500, 500))


def make_models(device, trained_like):
    """torchvision's ssd300_vgg16 and our SSDDetector holding the same random weights (eval mode).

    :param trained_like: make the class heads favour the background, so that few priors pass 0.01
    :return: (torchvision model, our detector)
    """
    from torchvision.models.detection import ssd300_vgg16

    torch.manual_seed(0)
    tv_model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES)
    if trained_like:
        with torch.no_grad():
            for head in tv_model.head.classification_head.module_list:
                bias = head.bias.view(-1, N_CLASSES)
                bias[:, 0] = 6.0  # background: softmax puts ~0.99 on it, a few priors still pass 0.01
    network = SSD300(N_CLASSES)
    network.load_state_dict(torchvision_ssd_to_ssd300_state_dict(tv_model.state_dict()), strict=False)
    ours = SSDDetector(network, antialias=False)  # torchvision resizes without antialiasing
    return tv_model.to(device).eval(), ours.to(device).eval()


def photos(batch_size, device, seed=0):
    """``batch_size`` random [0, 1] images of typical photo sizes, as a list of (3, H, W) tensors."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *PHOTO_SIZES[i % len(PHOTO_SIZES)], generator=generator).to(device)
            for i in range(batch_size)]


def time_call(model, images, device):
    """Seconds for one ``model(images)`` in inference mode (synchronized on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        detections = model(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, sum(len(d["boxes"]) for d in detections)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per model (after one warm-up call)")
    parser.add_argument("--trained-like", action="store_true", help="few candidates per image, as a trained net")
    parser.add_argument("--skip-onnxruntime", action="store_true", help="leave out the onnxruntime contender")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    tv_model, ours = make_models(device, args.trained_like)
    ours_channels_last = copy.deepcopy(ours)
    ours_channels_last.network.to(memory_format=torch.channels_last)
    models = {"torchvision": tv_model, "ours": ours, "ours, channels-last": ours_channels_last}
    images = photos(args.batch_size, device)
    if device.type == "cpu" and not args.skip_onnxruntime:
        try:
            from export import OnnxRuntimeSSD
            onnx_network = OnnxRuntimeSSD(copy.deepcopy(ours.network))
            models["ours, onnxruntime"] = SSDDetector(onnx_network, antialias=False).eval()
        except ImportError:
            print("onnxruntime or onnx not installed: the onnxruntime contender is left out")
    with torch.inference_mode():
        for name in list(models)[2:]:
            check_same_detections(ours(images), models[name](images), name)
    for model in models.values():
        time_call(model, images, device)  # warm-up: cuDNN autotuning, allocator, first-call costs

    times = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            seconds, n_detections = time_call(model, images, device)
            times[name].append(seconds)
    rates = {name: args.batch_size / min(values) for name, values in times.items()}
    print(f"device {device}, {args.batch_size} images of mixed sizes, best of {args.repeats} calls, "
          f"{'trained-like' if args.trained_like else 'untrained'} heads, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name in models:
        print(f"  {name:20s} {rates[name]:8.2f} images/s")
    for name in list(models)[1:]:
        print(f"  ratio {name} / torchvision: {rates[name] / rates['torchvision']:.2f}x")


def check_same_detections(expected, actual, name):
    """Raise AssertionError unless two lists of detections agree: same labels in the same order, boxes within
    1e-2 pixels, scores within 1e-5 (the backends sum the convolutions in different orders)."""
    for image_index, (a, b) in enumerate(zip(expected, actual)):
        same = (torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"], atol=1e-2)
                and torch.allclose(a["scores"], b["scores"], atol=1e-5))
        if not same:
            raise AssertionError(f"image {image_index}: {name}'s detections differ from the default layout's")


if __name__ == "__main__":
    main()
