"""Where detect.py's network runs, and the model the command line names as one ``detect_fn(images)``.

A checkpoint's network runs in PyTorch, or in onnxruntime on the CPU (``ssd_support.onnx_export.OnnxRuntimeSSD``:
exported on the fly, PyTorch's post-processing unchanged); ``--backend auto`` picks onnxruntime on a CPU where it
is installed (faster there: bench/bench_detector.py --folder), PyTorch otherwise and on a GPU. An
``export.py --with-postprocess`` model (``--onnx``) runs in onnxruntime alone (``ssd_support.onnx_detector``, no
torch). Either way the selection options (minimum score, NMS, top-k, classes, per-class thresholds, class-agnostic
NMS) are bound into the one function detect.py calls on every batch of images and video frames.

torch is imported where a checkpoint is loaded, not here: ``detect.py --onnx`` runs on machines without torch.
"""

import os
import sys

from ssd_support.score_thresholds import class_min_scores, load_thresholds

DEFAULT_CHECKPOINT_DIR = "checkpoints"  # train.py's default --checkpoint-dir


def make_detector(detect_batch, checkpoint=None, onnx_file=None, device=None, requested_backend="auto", min_score=0.2,
                  max_overlap=0.5, top_k=200, classes=None, thresholds_file=None, agnostic_nms=False):
    """The model the command line names, as ``detect_fn(images) -> list of detection lists``, with every
    selection option (--min-score, --max-overlap, --top-k, --classes, --thresholds, --agnostic-nms) bound.

    :param detect_batch: runs a PyTorch SSD on a list of PIL images, ``detect.detect_batch`` (passed in: the package
        imports no script)
    :param checkpoint: --checkpoint (None: the highest-iteration checkpoint in DEFAULT_CHECKPOINT_DIR)
    :param onnx_file: --onnx, an ``export.py --with-postprocess`` model run in onnxruntime instead of a checkpoint
    :param device: --device, "cpu", "cuda", ... (None: cuda when available)
    :param requested_backend: --backend, "auto", "torch" or "onnxruntime" (:func:`choose_backend`)
    :param min_score: --min-score, minimum class score of a detection
    :param max_overlap: --max-overlap, NMS IoU threshold
    :param top_k: --top-k, at most this many detections per image
    :param classes: --classes, comma-separated class names to report (None: all)
    :param thresholds_file: --thresholds, per-class minimum scores (ssd_support.score_thresholds; None: none)
    :param agnostic_nms: --agnostic-nms, one NMS over all classes
    :return: (detect_fn, label_map, description)
    :raises ValueError: one line, for a missing or unreadable model or a bad option value
    """
    classes = None if classes is None else [name.strip() for name in classes.split(",") if name.strip()]
    thresholds = load_thresholds(thresholds_file) if thresholds_file else None
    never = sorted(name for name, score in (thresholds or {}).items() if score == float("inf"))
    if never:
        print(f"detect.py: note: {thresholds_file} has no threshold for {', '.join(never)} (no detection of theirs "
              f"was right where it was measured): they are not reported", file=sys.stderr)
    if onnx_file:
        from ssd_support.onnx_detector import OnnxDetector  # no torch on this path

        detector = OnnxDetector(onnx_file)
        floors = class_min_scores(detector.label_map, classes, thresholds)

        def detect_fn(images):
            return detector(images, min_score, top_k, floors, agnostic_nms, max_overlap)

        settings = ", ".join(f"{key} {value}" for key, value in detector.settings.items())
        return detect_fn, detector.label_map, f"{onnx_file} (onnxruntime; exported with {settings})"

    import torch

    from ssd_support.checkpoints import load_model_from_checkpoint  # here: importing detect loads no network code
    from ssd_support.cpu_layout import use_fast_cpu_layout
    from ssd_support.checkpoints import latest_checkpoint

    checkpoint = checkpoint or latest_checkpoint(DEFAULT_CHECKPOINT_DIR)
    if checkpoint is None:
        raise ValueError(f"{DEFAULT_CHECKPOINT_DIR}: no ssd300_iter_N.pt / ssd512_iter_N.pt checkpoint found; "
                         "pass --checkpoint")
    if not os.path.isfile(checkpoint):
        raise ValueError(f"{checkpoint}: checkpoint not found")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model, label_map = load_model_from_checkpoint(checkpoint, device=device)
    except (KeyError, RuntimeError) as error:
        raise ValueError(str(error).splitlines()[0]) from None
    use_fast_cpu_layout(model)  # channels-last weights on the CPU: same detections, faster (bench/bench_detector.py)
    backend, why = choose_backend(requested_backend, device.type)
    if backend == "onnxruntime":
        from ssd_support.onnx_export import OnnxRuntimeSSD  # an ImportError names the missing package

        try:
            model = OnnxRuntimeSSD(model)  # the network exported to a temporary file; post-processing unchanged
        except Exception as error:  # noqa: BLE001 -- auto only: any failure of the export falls back, said
            if requested_backend != "auto":
                raise
            backend, why = "torch", (f"--backend auto: the onnxruntime export failed ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''}), so PyTorch")
    floors = class_min_scores(label_map, classes, thresholds)
    options = {}
    if floors is not None:
        options["class_min_scores"] = torch.tensor(floors)
    if agnostic_nms:
        options["class_agnostic"] = True

    def detect_fn(images):
        return detect_batch(images, model, label_map, min_score, max_overlap, top_k, **options)

    return detect_fn, label_map, f"{checkpoint} on {device}, network in {BACKEND_NAMES[backend]} ({why})"


BACKEND_NAMES = {"torch": "PyTorch", "onnxruntime": "onnxruntime"}


def onnxruntime_installed():
    """True when onnxruntime and onnx (the export's) can be imported; neither is imported here."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def choose_backend(requested, device_type, installed=None):
    """Where a checkpoint's network runs: --backend auto picks onnxruntime on a CPU where it is installed (faster
    there, same detections: bench/bench_detector.py --folder, tests/test_detect_features.py), PyTorch otherwise
    and on a GPU.

    :param requested: "auto", "torch" or "onnxruntime"
    :param device_type: the torch device's type ("cpu", "cuda", ...)
    :param installed: whether onnxruntime and onnx are installed (None: :func:`onnxruntime_installed`)
    :return: ("torch" or "onnxruntime", why, as the first line says it)
    :raises ValueError: for --backend onnxruntime on another device than the CPU
    """
    if requested == "torch":
        return "torch", "--backend torch"
    if requested == "onnxruntime":
        if device_type != "cpu":
            raise ValueError("--backend onnxruntime runs on the CPU: pass --device cpu")
        return "onnxruntime", "--backend onnxruntime"
    if device_type != "cpu":
        return "torch", f"--backend auto: PyTorch on {device_type}"
    if not (onnxruntime_installed() if installed is None else installed):
        return "torch", "--backend auto: onnxruntime is not installed (pip install onnx onnxruntime: faster on a CPU)"
    return "onnxruntime", "--backend auto: onnxruntime on the CPU"
