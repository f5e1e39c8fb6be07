"""Run an exported SSD (``export.py --with-postprocess``) in onnxruntime, without PyTorch.

    python detect.py photo.jpg --onnx ssd300_nms.onnx

For devices that have onnxruntime but no torch: this file imports neither torch nor the repository's torch
code. The label map, input side and the settings the graph was exported with are read from the ONNX file's
metadata (export.py writes them), and so is the preprocessing: ``utils.preprocess`` redone in NumPy and
Pillow, bilinear resize to S x S (antialiased as torchvision's ``antialias=True``: Pillow's bilinear filter
widens when it shrinks; plain bilinear for a checkpoint converted from torchvision's SSD), [0, 1] RGB, then
the mean and std the file names (ImageNet's when it names none).

The NMS is inside the graph (per class, at the exported ``max_overlap``, keeping up to the exported
``top_k``); --min-score, --top-k, --classes and --thresholds then select among those detections, and
--agnostic-nms runs a class-agnostic NMS over them. (With PyTorch, the class filters act before the NMS; here
the graph's NMS is fixed, so they act after it: a left-out class can use up some of the exported top_k.)
"""

import numpy as np
from PIL import Image

from ssd_support.files import parse_json
from ssd_support.limits import IMAGE_SIZES

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DETECTION_OUTPUTS = ("detection_boxes", "detection_scores", "detection_labels", "num_detections")


class OnnxModelError(ValueError):
    """The ONNX file cannot be used: missing, not ONNX, or exported without the post-processing."""


def bilinear_resize(pixels, size):
    """Plain bilinear resizing (no low-pass filter), as ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False, antialias=False)`` computes it, rounded to whole grey levels as torch does for uint8.

    :param pixels: (H, W, 3) array
    :param size: output side
    :return: float32 array (size, size, 3) of whole numbers 0-255
    """
    def axis(n_in):
        source = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)  # torch clamps below at 0
        low = np.minimum(np.floor(source).astype(np.int64), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), (source - low).astype(np.float32)

    pixels = np.asarray(pixels, dtype=np.float32)
    y0, y1, wy = axis(pixels.shape[0])
    x0, x1, wx = axis(pixels.shape[1])
    rows = pixels[y0] * (1 - wy)[:, None, None] + pixels[y1] * wy[:, None, None]
    out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return np.clip(np.round(out), 0, 255)


def preprocess_numpy(image, size, mean=IMAGENET_MEAN, std=IMAGENET_STD, antialias=True):
    """``utils.preprocess`` without torch: resize, scale to [0, 1], normalize.

    :param image: a PIL RGB image
    :param size: the model's input side (300 or 512)
    :param mean: per-channel mean of [0, 1] RGB (the file's metadata "preprocess"; ImageNet's by default)
    :param std: per-channel standard deviation
    :param antialias: low-pass filter when shrinking (False: a checkpoint converted from torchvision's SSD)
    :return: float32 array (3, size, size)
    """
    image = image.convert("RGB")
    if antialias:
        resized = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32)
    else:
        resized = bilinear_resize(np.asarray(image), size)
    mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return ((resized / 255.0 - mean) / std).transpose(2, 0, 1).astype(np.float32)


def nms_numpy(boxes, scores, iou_threshold):
    """Greedy NMS in NumPy: keep the best box, drop those overlapping it by more than ``iou_threshold``, repeat.

    :param boxes: (n, 4) x1y1x2y2
    :param scores: (n,)
    :param iou_threshold: IoU above which a box is suppressed
    :return: indices of the kept boxes, best first
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = intersection / np.maximum(areas[best] + areas[rest] - intersection, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def check_preprocess_metadata(preprocess):
    """An ONNX file's "preprocess" metadata, checked: None / {} (ImageNet's) or {"mean": 3 numbers, "std": 3
    positive numbers, "antialias": bool}, any of them left out.

    :return: the keyword arguments of ``preprocess_numpy``, a dict
    :raises ValueError: for anything else
    """
    if not preprocess:
        return {}
    if not isinstance(preprocess, dict) or not set(preprocess) <= {"mean", "std", "antialias"}:
        raise ValueError(f"preprocess: expected {{'mean', 'std', 'antialias'}}, got {preprocess!r}"[:200])
    checked = {}
    for key in ("mean", "std"):
        if key in preprocess:
            values = np.asarray(preprocess[key], dtype=np.float64)
            if values.shape != (3,) or not np.all(np.isfinite(values)) or (key == "std" and np.any(values <= 0)):
                raise ValueError(f"preprocess {key}: expected 3 finite numbers (std positive), got {preprocess[key]!r}")
            checked[key] = values.astype(np.float32)
    if "antialias" in preprocess:
        if not isinstance(preprocess["antialias"], bool):
            raise ValueError(f"preprocess antialias: expected true or false, got {preprocess['antialias']!r}")
        checked["antialias"] = preprocess["antialias"]
    return checked


def check_input_size(path, image_size, inputs):
    """Check an ONNX file's metadata image_size against the bound (``limits.IMAGE_SIZES``) and the graph's input.

    :param path: the file, for the message
    :param image_size: the metadata's, an int
    :param inputs: ``session.get_inputs()``: the graph must take "images" (N, 3, image_size, image_size); a
        dimension the graph leaves free (a name) fits any size
    :raises OnnxModelError: one line naming the file, the metadata's size and the graph's input shape
    """
    if image_size not in IMAGE_SIZES:
        raise OnnxModelError(f"{path}: metadata image_size {image_size} is none of the sizes an SSD takes "
                             f"({', '.join(map(str, IMAGE_SIZES))}); export it with export.py")
    shapes = {graph_input.name: list(graph_input.shape) for graph_input in inputs}
    shape = shapes.get("images")
    fits = shape is not None and len(shape) == 4 and all(
        not isinstance(dim, int) or dim == wanted for dim, wanted in zip(shape[1:], (3, image_size, image_size)))
    if not fits:
        raise OnnxModelError(f"{path}: metadata image_size {image_size} does not fit the graph's input "
                             f"({', '.join(f'{name} {dims}' for name, dims in shapes.items())}; expected images "
                             f"[N, 3, {image_size}, {image_size}])")


class OnnxDetector:
    """An ``export.py --with-postprocess`` model in an onnxruntime session, called like detect.detect_batch.

    :param path: the .onnx file
    :param providers: onnxruntime execution providers (default: CUDA when onnxruntime has it, else CPU)
    :raises OnnxModelError: one line naming the file, when it cannot be loaded or has no detection outputs
    :raises ImportError: when onnxruntime is not installed
    """

    def __init__(self, path, providers=None):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("--onnx needs onnxruntime: pip install onnxruntime") from None
        if providers is None:
            available = onnxruntime.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for missing / broken files
            raise OnnxModelError(f"{path}: cannot load the ONNX model ({str(error).splitlines()[0]})") from None
        outputs = [output.name for output in self.session.get_outputs()]
        if not set(DETECTION_OUTPUTS) <= set(outputs):
            raise OnnxModelError(f"{path}: has no detection outputs (outputs {', '.join(outputs)}); export it "
                                 f"with export.py --with-postprocess")
        metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.label_map = {name: int(label) for name, label in
                              parse_json(metadata["label_map"], "label_map").items()}
            self.image_size = int(metadata["image_size"])
            # How the exported network wants its input (a converted COCO checkpoint names its own); files
            # exported before this was recorded used ImageNet's mean/std with antialiasing.
            self.preprocess = check_preprocess_metadata(parse_json(metadata.get("preprocess", "null"), "preprocess"))
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise OnnxModelError(f"{path}: no usable label_map / image_size / preprocess metadata "
                                 f"({type(error).__name__}: {error}); export it with export.py") from None
        # The metadata is checked against the graph before any image is resized to its size: a file saying
        # image_size 20000 would have every image resized to 20000x20000 float32 (14 GB) before the graph refused it.
        check_input_size(path, self.image_size, self.session.get_inputs())
        # The settings baked into the graph (for the start-up line; they cannot be changed at run time).
        self.settings = {key: metadata[key] for key in ("min_score", "max_overlap", "top_k", "max_candidates")
                         if key in metadata}
        self.output_names = list(DETECTION_OUTPUTS)

    def __call__(self, images, min_score=0.2, top_k=200, class_min_scores=None, class_agnostic=False,
                 max_overlap=0.5):
        """Detect objects in a batch of images (one run of the session).

        :param images: list of PIL RGB images, any sizes
        :param min_score: keep detections scoring above this
        :param top_k: at most this many per image
        :param class_min_scores: optional sequence (n_classes - 1,) of per-class floors (object classes in label
            order; inf drops a class): a detection scoring below its class's floor is dropped
        :param class_agnostic: after the graph's per-class NMS, suppress boxes overlapping a better box of any
            class by more than ``max_overlap``
        :param max_overlap: IoU of that class-agnostic NMS
        :return: one list per image of {"label", "score", "box": [x1, y1, x2, y2] in that image's pixels},
            highest score first (as detect.detect_batch)
        """
        if not images:
            return []
        names = {label: name for name, label in self.label_map.items()}
        batch = np.stack([preprocess_numpy(image, self.image_size, **self.preprocess) for image in images])
        boxes, scores, labels, counts = self.session.run(self.output_names, {"images": batch})
        floors = None if class_min_scores is None else np.asarray(class_min_scores, dtype=np.float64)
        results = []
        for i, image in enumerate(images):
            n = int(counts[i])
            image_boxes, image_scores, image_labels = boxes[i, :n], scores[i, :n], labels[i, :n].astype(np.int64)
            keep = image_scores > min_score
            if floors is not None:
                keep &= image_scores >= floors[image_labels - 1]
            image_boxes, image_scores, image_labels = image_boxes[keep], image_scores[keep], image_labels[keep]
            if class_agnostic and len(image_scores):
                kept = nms_numpy(image_boxes.astype(np.float64), image_scores, max_overlap)
                image_boxes, image_scores, image_labels = image_boxes[kept], image_scores[kept], image_labels[kept]
            order = np.argsort(-image_scores, kind="stable")[:top_k]
            scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float64)
            results.append([{"label": names.get(int(image_labels[j]), str(int(image_labels[j]))),
                             "score": round(float(image_scores[j]), 4),
                             "box": [round(float(v), 1) for v in image_boxes[j].astype(np.float64) * scale]}
                            for j in order])
        return results
