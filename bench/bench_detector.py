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
    python bench/bench_detector.py --folder                 # detect.py's path on a folder of JPEG photos
    python bench/bench_detector.py --folder DIR             # ... on the images of DIR
    python bench/bench_detector.py --onnxruntime-profile    # where onnxruntime's time goes, by operator and batch size
    python bench/bench_detector.py --int8                   # adds ours with the network in INT8 (onnxruntime)
    python bench/bench_detector.py --int8 --onnxruntime-profile   # ... and where the INT8 network's time goes

It prints the images/s of both and their ratio (ours / torchvision's; above 1: ours is faster), timing the
models alternately so that a slow moment of the machine hits all of them. A third contender is ours with the
network's weights in channels-last memory (``detector.network.to(memory_format=torch.channels_last)``: oneDNN's
convolutions then run without reordering activations), checked to give the same detections as the default
layout (same labels, boxes within 1e-2 pixels, scores within 1e-5) before it is timed. On the CPU a fourth is
ours with the network run by onnxruntime on its ONNX export (``onnx_export.OnnxRuntimeSSD``, what ``detect.py
--backend onnxruntime`` uses), checked the same way.

``--int8`` adds ours with the network quantized to INT8 (``ssd_support/quantization.py``, calibrated on 8
photo-like JPEGs written for it; what ``export.py --int8`` writes) run by ``OnnxRuntimeSSD``; its detections are
not the float network's, so they are not compared, only timed.

``--folder`` times what ``detect.py`` does with a folder of photos instead, file reading and JPEG decoding
included, batch by batch (``--batch-size``): images.load_image, then detect.detect_batch on the network as
detect.py prepares it (channels-last weights on the CPU; ``--backend onnxruntime``: onnx_export.OnnxRuntimeSSD), and
names which of the two is detect.py's default on this machine (``--backend auto``: onnxruntime on a CPU where it is
installed, PyTorch otherwise), with
torchvision's settings (score 0.01, NMS 0.45, 200 detections per image), against torchvision's documented
inference (``PIL.Image.open`` -> ``to_tensor`` -> ``model(images)``) with the same weights. The detections of
detect.py's two backends are checked to agree (same labels, boxes within 0.1 pixel, scores within 1e-4, as
detect.py rounds them); drawing and writing the results, the same for every backend, is left out.
"""

import argparse
import copy
import glob
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detect import detect_batch  # noqa: E402
from ssd_support.backends import choose_backend  # noqa: E402
from ssd_support.detector import SSDDetector  # noqa: E402
from ssd_support.images import load_image  # noqa: E402
from model import SSD300  # noqa: E402
from ssd_support.cpu_layout import use_fast_cpu_layout  # noqa: E402
from ssd_support.weights import torchvision_ssd_to_ssd300_state_dict  # noqa: E402
from ssd_support.toy_data import photo_like_pixels  # noqa: E402

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
    parser.add_argument("--folder", nargs="?", const="", default=None,
                        help="time detect.py's path on the JPEGs of this folder (none named: --photos written ones)")
    parser.add_argument("--photos", type=int, default=24, help="photos written for --folder without a folder")
    parser.add_argument("--onnxruntime-profile", action="store_true",
                        help="print onnxruntime's time per operator type and its ms per image at batch 1, 2, 4, 8")
    parser.add_argument("--int8", action="store_true", help="add ours with the network in INT8 in onnxruntime (CPU)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.onnxruntime_profile:
        return onnxruntime_profile(args.repeats, args.int8)
    if args.folder is not None:
        return folder_benchmark(args, device)
    tv_model, ours = make_models(device, args.trained_like)
    ours_channels_last = copy.deepcopy(ours)
    ours_channels_last.network.to(memory_format=torch.channels_last)
    models = {"torchvision": tv_model, "ours": ours, "ours, channels-last": ours_channels_last}
    images = photos(args.batch_size, device)
    if device.type == "cpu" and not args.skip_onnxruntime:
        try:
            from ssd_support.onnx_export import OnnxRuntimeSSD
            onnx_network = OnnxRuntimeSSD(copy.deepcopy(ours.network))
            models["ours, onnxruntime"] = SSDDetector(onnx_network, antialias=False).eval()
        except ImportError:
            print("onnxruntime or onnx not installed: the onnxruntime contender is left out")
    compared = list(models)[2:]
    if device.type == "cpu" and args.int8:
        from ssd_support.onnx_export import OnnxRuntimeSSD

        with tempfile.TemporaryDirectory() as folder:
            path = int8_network(ours.network, folder)
            models["ours, onnxruntime INT8"] = SSDDetector(OnnxRuntimeSSD(copy.deepcopy(ours.network), onnx_path=path),
                                                           antialias=False).eval()
    with torch.inference_mode():
        for name in compared:
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
    return 0


def int8_network(network, folder):
    """Export ``network`` alone to ONNX and quantize it to INT8 as ``export.py --int8`` does, calibrated on 8
    photo-like JPEGs written into ``folder``; the INT8 file's path (in ``folder``)."""
    from ssd_support.onnx_export import export_network
    from ssd_support.quantization import quantize_int8

    float_path, int8_path = os.path.join(folder, "network.onnx"), os.path.join(folder, "network_int8.onnx")
    export_network(network, float_path)
    import onnx

    model = onnx.load(float_path)  # export_network writes no metadata: add what quantize_int8 reads
    model.metadata_props.add(key="image_size", value=str(network.image_size))
    model.metadata_props.add(key="preprocess", value=json.dumps({"antialias": False}))
    onnx.save(model, float_path)
    quantize_int8(float_path, int8_path, write_photos(folder, 8, seed=1))
    return int8_path


def onnxruntime_profile(repeats, int8=False):
    """Where OnnxRuntimeSSD's time goes: onnxruntime's profiler, summed by operator type (batch 4), and the
    best time per image of ``repeats`` calls at batch 1, 2, 4 and 8 (random weights and images: the same
    convolutions as a trained network's). ``int8``: of the INT8 network (:func:`int8_network`), with the ten
    nodes that take the most time."""
    import collections
    import json

    import onnxruntime

    from ssd_support.onnx_export import OnnxRuntimeSSD, export_network

    torch.manual_seed(0)
    network = SSD300(N_CLASSES).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "network.onnx")
        export_network(network, path)  # once: every session below runs this file
        if int8:
            path = int8_network(network, folder)
        for batch_size in (1, 2, 4, 8):
            model, images = OnnxRuntimeSSD(network, onnx_path=path), torch.randn(batch_size, 3, 300, 300)
            model(images)  # warm-up
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(images)
                seconds.append(time.perf_counter() - start)
            print(f"  batch {batch_size}: {min(seconds) / batch_size * 1000:.0f} ms per image")
        options = onnxruntime.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        images = torch.randn(4, 3, 300, 300).numpy()
        for _ in range(repeats):
            session.run(None, {"images": images})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    microseconds, by_node = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            microseconds[event["args"]["op_name"]] += event["dur"]
            by_node[(event["args"]["op_name"], event["name"][:-len("_kernel_time")])] += event["dur"]
    total = sum(microseconds.values())
    print(f"onnxruntime {onnxruntime.__version__}, {'INT8' if int8 else 'float32'} network, batch 4, {repeats} calls, "
          f"time by operator type:")
    for op_type, spent in microseconds.most_common(8):
        print(f"  {op_type:16s} {100 * spent / total:5.1f}%")
    if int8:
        print("the ten nodes that take the most time:")
        for (op_type, name), spent in by_node.most_common(10):
            print(f"  {op_type:16s} {100 * spent / total:5.1f}%  {name}")
    return 0


def write_photos(folder, n_photos, seed=0):
    """Write ``n_photos`` JPEGs of typical photo sizes (toy_data.photo_like_pixels, quality 90); their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_photos):
        height, width = PHOTO_SIZES[i % len(PHOTO_SIZES)]
        paths.append(os.path.join(folder, f"photo_{i:03d}.jpg"))
        Image.fromarray(photo_like_pixels(rng, height, width)).save(paths[-1], quality=90)
    return paths


def folder_benchmark(args, device):
    """Time detect.py's path (both backends on the CPU) and torchvision's inference on a folder of photos."""
    from torchvision.transforms.functional import to_tensor

    tv_model, ours = make_models(device, trained_like=True)
    network = use_fast_cpu_layout(ours.network)  # as detect.py prepares a checkpoint's network
    label_map = {f"class_{label}": label for label in range(1, N_CLASSES)}
    settings = {"min_score": 0.01, "max_overlap": 0.45, "top_k": 200}  # torchvision's score threshold

    def torchvision_path(paths):
        images = [to_tensor(Image.open(path).convert("RGB")).to(device) for path in paths]
        with torch.inference_mode():
            return tv_model(images)

    def detect_py_path(model):
        return lambda paths: detect_batch([load_image(path) for path in paths], model, label_map, **settings)

    contenders = {"torchvision": torchvision_path, "detect.py --backend torch": detect_py_path(network)}
    # detect.py's default, --backend auto, on this machine: the same rule detect.py applies.
    default = "detect.py --backend " + choose_backend("auto", device.type)[0]
    if default == "detect.py --backend onnxruntime" and args.skip_onnxruntime:
        default = "detect.py --backend torch"
    if device.type == "cpu" and not args.skip_onnxruntime:
        from ssd_support.onnx_export import OnnxRuntimeSSD

        start = time.perf_counter()
        onnx_network = OnnxRuntimeSSD(copy.deepcopy(network))
        print(f"(--backend onnxruntime: exporting the network took {time.perf_counter() - start:.1f} s at start-up)")
        contenders["detect.py --backend onnxruntime"] = detect_py_path(onnx_network)

    with tempfile.TemporaryDirectory() as temporary:
        paths = (sorted(p for p in glob.glob(os.path.join(args.folder, "*")) if p.lower().endswith((".jpg", ".jpeg")))
                 if args.folder else write_photos(temporary, args.photos))
        batches = [paths[i:i + args.batch_size] for i in range(0, len(paths), args.batch_size)]
        if "detect.py --backend onnxruntime" in contenders:
            for batch in batches:
                check_same_pixel_detections(contenders["detect.py --backend torch"](batch),
                                            contenders["detect.py --backend onnxruntime"](batch))
        for run in contenders.values():
            run(batches[0])  # warm-up
        times = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, run in contenders.items():  # alternately, so that a slow moment hits all of them
                start = time.perf_counter()
                for batch in batches:
                    run(batch)
                times[name].append(time.perf_counter() - start)
    rates = {name: len(paths) / min(values) for name, values in times.items()}
    print(f"device {device}, {len(paths)} JPEG photos ({args.folder or 'written'}), batches of {args.batch_size}, "
          f"file reading and decoding included, best of {args.repeats} passes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:8.2f} images/s" + ("   <- detect.py's default here (--backend auto)"
                                                       if name == default else ""))
    for name in list(rates)[1:]:
        print(f"  ratio {name} / torchvision: {rates[name] / rates['torchvision']:.2f}x")
    print(f"  ratio detect.py's default (--backend auto = {default.split()[-1]}) / torchvision: "
          f"{rates[default] / rates['torchvision']:.2f}x")
    return 0


def check_same_pixel_detections(expected, actual):
    """Raise AssertionError unless detect_batch's results of two backends agree: every detection of each has one
    in the other with the same label, its box within 0.1 pixel and its score within 1e-4 (detect.py rounds boxes
    to 0.1 pixel and scores to 1e-4). Near-equal scores may come in either order, and those within 1e-4 of the
    last one kept may be cut by top_k in one backend and not the other."""
    def matched(a, b):
        cut = min((d["score"] for d in a), default=0) + 1.01e-4
        return all(any(x["label"] == y["label"] and abs(x["score"] - y["score"]) <= 1.01e-4
                       and max(abs(p - q) for p, q in zip(x["box"], y["box"])) <= 0.11 for y in b)
                   for x in a if x["score"] > cut)

    for image_index, (a, b) in enumerate(zip(expected, actual)):
        if not (matched(a, b) and matched(b, a)):
            raise AssertionError(f"image {image_index}: the onnxruntime backend's detections differ from torch's")


def check_same_detections(expected, actual, name):
    """Raise AssertionError unless two lists of detections agree: same labels in the same order, boxes within
    1e-2 pixels, scores within 1e-5 (the backends sum the convolutions in different orders)."""
    for image_index, (a, b) in enumerate(zip(expected, actual)):
        same = (torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"], atol=1e-2)
                and torch.allclose(a["scores"], b["scores"], atol=1e-5))
        if not same:
            raise AssertionError(f"image {image_index}: {name}'s detections differ from the default layout's")


if __name__ == "__main__":
    sys.exit(main())
