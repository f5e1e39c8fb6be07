"""Detect objects in images with a trained SSD (SSD300, SSD512 or the ResNet-50 SSD300) and draw them.

    python detect.py photo.jpg                              # the latest checkpoint in checkpoints/
    python detect.py photos/ "more/*.png" --checkpoint ckpt.pt --output detections/
    python detect.py photo.jpg --checkpoint checkpoints/ssd300_vgg16_coco.pt   # convert_weights.py's COCO SSD300
    python detect.py clip.mp4 --classes person,dog          # a video: output/clip_detections.webm (or .mp4)
    python detect.py --webcam 0                             # a live window; q or Esc quits (OpenCV)
    python detect.py --webcam 0 --output stream/ --max-frames 500   # headless: the annotated stream saved
    python detect.py photo.jpg --onnx ssd300_nms.onnx       # an export.py --with-postprocess model, no torch
    python detect.py photos/ --save-voc voc/ --save-yolo yolo/ --save-coco detections.json   # other tools' formats

For every image it writes <name>_detections.jpg (the image with its boxes, class names and scores) and
<name>_detections.json ({"image": the file as given, "width", "height": its upright size in pixels,
"detections": [{"label", "score", "box": [x1, y1, x2, y2]} in pixels of that image]}) into --output. A missing
file, or one that is not an image, gets a one-line error; the other images are still processed and the exit
status is 1.

The detections can also be written for other tools (ssd_support/detection_formats.py): --save-voc DIR, one
Pascal VOC XML per image (labelImg, CVAT, Label Studio; create_data_lists.py --annotations DIR reads it back);
--save-yolo DIR, a YOLO data set (images/ linked or copied, labels/ with "class cx cy w h" per line, the score
as a sixth value with --save-scores, and data.yaml; create_data_lists.py --yolo DIR reads it back); --save-coco
FILE, one COCO json (pycocotools' COCO(FILE); its annotations, with scores, also load as results).

A video file (named explicitly: .mp4, .avi, .mov, .mkv, .webm, ...) gives an annotated video that browsers play
(ssd_support/video.py: <name>_detections.mp4, H.264, where PyAV is installed, else <name>_detections.webm, VP9
through OpenCV; same size, odd sides padded by a pixel, same frame rate) and <name>_detections.json ({"video",
"width", "height", "fps", "video_file", "frames": [{"frame": i, "detections": [...]}, ...]}); its frames go
through the model --batch-size at a time, as images do. --webcam SOURCE (a camera index, a stream URL or a
video file) shows the frames annotated in a window, or with --output saves them as a video and JSON instead,
without a window (a headless server; Ctrl-C ends the stream and keeps both files). --max-frames N stops a video
or a stream after N frames. Both need OpenCV (pip install opencv-python-headless for videos; the window needs
opencv-python).

Where the network runs: --backend auto (the default) runs a checkpoint's network in onnxruntime on a CPU where
onnxruntime and onnx are installed (faster there: bench/bench_detector.py --folder), in PyTorch otherwise and on a
GPU; --backend torch / onnxruntime choose. The first line printed says which. The detections are the same.

Which detections: --min-score and --top-k; --classes keeps only the named classes; --thresholds FILE gives
each class its own minimum score (eval.py --thresholds-out writes such a file); --agnostic-nms runs NMS over
all classes together, so that one object gets one box even when two classes score it.

From Python::

    from ssd_support.checkpoints import load_model_from_checkpoint
    from ssd_support.images import load_image
    from detect import detect
    model, label_map = load_model_from_checkpoint("ckpt.pt")
    annotated, detections = detect(load_image("photo.jpg"), model, label_map)   # or detect("photo.jpg", ...)
"""

import argparse
import glob
import json
import os
import sys

from PIL import Image

# The project's one image loader (upright, 8-bit RGB, one error type; no torch). Files are taken from a folder by
# IMAGE_EXTENSIONS, and a file named explicitly is tried whatever its extension.
from ssd_support.images import IMAGE_EXTENSIONS, UnreadableImageError, load_image, multi_frame_note, to_8bit_rgb
# The project's one box drawer (eval.py --plots draws with it too).
from ssd_support.drawing import draw_detections
from ssd_support import detection_formats
from ssd_support.files import write_atomically
from ssd_support.score_thresholds import class_min_scores, load_thresholds
from ssd_support.tiling import DEFAULT_TILE_OVERLAP, tiled_detect_fn
from ssd_support.video import AnnotatedVideoWriter, FrameDetectionsWriter, require_cv2

# torch is imported where the network runs, not here: detect.py --onnx runs on machines without torch.

DEFAULT_CHECKPOINT_DIR = "checkpoints"  # train.py's default --checkpoint-dir
# A file named with one of these is read as a video (OpenCV), frame by frame.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

def expand_inputs(inputs):
    """Turn the command line's files, folders and glob patterns into a list of files.

    :param inputs: list of str; a folder gives its image files (sorted, not recursive), a pattern its matches
    :return: (files, errors): the files to process, in order, and one message per input that gave nothing
    """
    files, errors = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, name)))
            if not found:
                errors.append(f"{item}: folder has no image files")
            files.extend(found)
        elif os.path.exists(item) or not any(char in item for char in "*?["):
            files.append(item)  # a missing plain path is reported when it is opened
        else:
            found = sorted(path for path in glob.glob(item) if os.path.isfile(path))
            if not found:
                errors.append(f"{item}: no file matches")
            files.extend(found)
    return files, errors


def detect_batch(images, model, label_map, min_score=0.2, max_overlap=0.5, top_k=200, suppress=(), **options):
    """Detect objects in a batch of images in one forward pass.

    :param images: list of PIL RGB images, any sizes
    :param model: an SSD in eval mode, run on the device of its parameters (or an
        ssd_support.onnx_export.OnnxRuntimeSSD, on the CPU)
    :param label_map: {class name: label}, background 0
    :param min_score: minimum class score of a detection
    :param max_overlap: NMS IoU threshold
    :param top_k: at most this many detections per image
    :param suppress: class names not to report
    :param options: passed on to ``model.detect_objects``: ``class_min_scores`` (per-class floors, see
        :func:`ssd_support.score_thresholds.class_min_scores`), ``class_agnostic`` (one NMS over all classes)
    :return: one list per image of {"label": str, "score": float, "box": [x1, y1, x2, y2]} in pixels of that
        image, highest score first
    """
    import torch

    from utils import preprocess, preprocess_settings

    if not images:
        return []
    names = {label: name for name, label in label_map.items()}
    device = next(model.parameters()).device
    # The model's own preprocessing: a converted COCO checkpoint names its mean/std and resizing.
    settings = preprocess_settings(getattr(model, "preprocess_config", None))
    batch = torch.stack([preprocess(image, model.image_size, **settings) for image in images]).to(device)
    with torch.inference_mode():
        predicted_locs, predicted_scores = model(batch)
        boxes, labels, scores = model.detect_objects(predicted_locs, predicted_scores, min_score=min_score,
                                                     max_overlap=max_overlap, top_k=top_k, **options)
    results = []
    for image, image_boxes, image_labels, image_scores in zip(images, boxes, labels, scores):
        # The network works on fractions of the image; scale back to the original pixels.
        scale = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
        pixel_boxes = image_boxes.float().cpu() * scale
        order = image_scores.float().cpu().argsort(descending=True)
        detections = []
        for index in order.tolist():
            name = names.get(int(image_labels[index]), str(int(image_labels[index])))
            if name in suppress:
                continue
            detections.append({"label": name, "score": round(float(image_scores[index]), 4),
                               "box": [round(value, 1) for value in pixel_boxes[index].tolist()]})
        results.append(detections)
    return results


def detect(image, model, label_map, min_score=0.2, max_overlap=0.5, top_k=200, suppress=()):
    """Detect objects in one image and draw them.

    :param image: a PIL image (any mode) or the path of an image file
    :param model: an SSD in eval mode (see ``ssd_support.checkpoints.load_model_from_checkpoint``), on any device
    :param label_map: {class name: label}, background 0
    :param min_score: minimum class score of a detection
    :param max_overlap: NMS IoU threshold
    :param top_k: at most this many detections
    :param suppress: class names not to report
    :return: (annotated PIL image, detections: list of {"label", "score", "box": [x1, y1, x2, y2] in pixels})
    """
    image = load_image(image) if isinstance(image, (str, os.PathLike)) else to_8bit_rgb(image)
    detections = detect_batch([image], model, label_map, min_score, max_overlap, top_k, suppress)[0]
    return draw_detections(image, detections, label_map), detections


def format_detections_json(detections, image=None, width=None, height=None):
    """JSON text of an image's detections, one detection per line (readable, and still plain JSON).

    :param detections: list of {"label", "score", "box"}
    :param image: the image file as given (None: the bare list of detections, without image, width and height)
    :param width: the image's upright width in pixels (the boxes' frame)
    :param height: its upright height in pixels
    :return: the JSON text, ending with a newline: {"image", "width", "height", "detections": [...]}
    """
    listed = "[]" if not detections else (
        "[\n" + ",\n".join("  " + json.dumps(detection) for detection in detections) + "\n]")
    if image is None:
        return listed + "\n"
    return (f'{{"image": {json.dumps(str(image))}, "width": {int(width)}, "height": {int(height)},\n'
            f'"detections": {listed}}}\n')


def _output_stem(path, used):
    """A unique output name for an input file: its name without extension, numbered on a clash."""
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, number = stem, 2
    while candidate in used:
        candidate, number = f"{stem}_{number}", number + 1
    used.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------------------------------
# Video files and cameras (OpenCV, optional)
# ---------------------------------------------------------------------------------------------------------


def stream_name(source):
    """The output name of ``--webcam SOURCE``: "webcam0" for camera 0, else the source's last path part without
    its extension ("rtsp://host/live.sdp" -> "live"), in letters, digits, "-", "_" and "." only."""
    if str(source).isdigit():
        return f"webcam{source}"
    name = os.path.splitext(os.path.basename(str(source).rstrip("/\\")))[0]
    name = "".join(char if char.isalnum() or char in "-_." else "_" for char in name).strip("._")
    return name or "stream"


def is_video(path):
    """True for a file name with a video extension (VIDEO_EXTENSIONS)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def frame_to_image(frame):
    """An OpenCV frame (H, W, 3) uint8 BGR as a PIL RGB image."""
    return Image.fromarray(frame[:, :, ::-1].copy())


def image_to_frame(image):
    """A PIL RGB image as an OpenCV frame (H, W, 3) uint8 BGR."""
    import numpy as np

    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def read_frames(capture, batch_size, max_frames=None):
    """Frames of an OpenCV capture (anything with ``read() -> (ok, frame)``), ``batch_size`` at a time.

    :param max_frames: stop after this many frames (None: at the first failed read only)
    :return: a generator of lists of BGR frames; it ends at the first failed read or at ``max_frames``
    """
    batch, n_read = [], 0
    while max_frames is None or n_read < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(frame)
        n_read += 1
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def annotate_capture(capture, source, output_stem, detect_fn, label_map, batch_size=8, max_frames=None,
                     codec="auto", stream=False):
    """Detect objects in the frames of an opened capture and write the annotated video and the per-frame JSON.

    The video plays in browsers (ssd_support/video.py: H.264 MP4 where PyAV is installed, else VP9 WebM; the
    capture's frame rate, 25 where it says none). Both files are written under temporary names and renamed when
    complete. A video file that fails half-way leaves neither; a stream (``stream``) ended by Ctrl-C keeps both,
    up to the last frame written: on a headless server that is how a stream is stopped.

    :param capture: an opened cv2.VideoCapture (anything with ``read() -> (ok, BGR frame)``; ``get`` for the fps)
    :param source: what the frames come from, for the JSON and the messages (the file, or "--webcam 0")
    :param output_stem: output path without extension: <stem>.mp4 or <stem>.webm, and <stem>.json
    :param detect_fn: list of PIL images -> list of detection lists (detect_batch with its settings bound)
    :param label_map: {class name: label}, for the box colours
    :param batch_size: frames per forward pass (1 for a live stream: the newest frame, not a batch of old ones)
    :param max_frames: stop after this many frames (None: when the capture ends)
    :param codec: "auto", "h264" or "vp9" (ssd_support.video.choose_codec)
    :param stream: Ctrl-C ends the capture and keeps what was written (else it propagates, and nothing is kept)
    :return: {"frames": n, "video": its path, "json": its path, "codec": e.g. "VP9 WebM (OpenCV)", "stopped":
        True when Ctrl-C ended a stream}
    :raises ValueError: one line naming the source when no frame can be read, or the output when it cannot be
        written
    :raises ImportError: without OpenCV (or PyAV for codec "h264")
    """
    cv2 = require_cv2()
    fps = (capture.get(cv2.CAP_PROP_FPS) if hasattr(capture, "get") else 0) or 25.0  # some sources do not say
    video = log = None
    stopped, complete = False, False
    try:
        try:
            for frames in read_frames(capture, batch_size, max_frames):
                images = [frame_to_image(frame) for frame in frames]
                for image, detections in zip(images, detect_fn(images)):
                    if video is None:
                        video = AnnotatedVideoWriter(output_stem, fps, image.size, codec)
                        log = FrameDetectionsWriter(output_stem + ".json", {
                            "video": str(source), "width": image.width, "height": image.height, "fps": fps,
                            "video_file": os.path.basename(video.path), "codec": video.description})
                    video.write(image_to_frame(draw_detections(image, detections, label_map)))
                    log.add(detections)
        except KeyboardInterrupt:
            if not stream:
                raise
            stopped = True
        complete = True
    finally:
        for writer in (video, log):
            if writer is not None:
                writer.close(keep=complete)
    if video is None:
        raise ValueError(f"{source}: no frame could be read")
    return {"frames": video.frames, "video": video.path, "json": log.path, "codec": video.description,
            "stopped": stopped}


def detect_video(path, output_stem, detect_fn, label_map, batch_size=8, max_frames=None, codec="auto"):
    """Detect objects in every frame of a video file and write the annotated video and the detections.

    The frames go through ``detect_fn`` ``batch_size`` at a time, as images do (:func:`annotate_capture`).

    :param path: the video file
    :param output_stem: output path without extension
    :return: :func:`annotate_capture`'s dict
    :raises ValueError: one line naming the file, when OpenCV cannot read it or the output cannot be written
    :raises ImportError: without OpenCV
    """
    cv2 = require_cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open the video (missing, or a format OpenCV cannot read)")
    try:
        return annotate_capture(capture, path, output_stem, detect_fn, label_map, batch_size, max_frames, codec)
    finally:
        capture.release()


def show_in_window(frame, title="detect.py (q or Esc quits)"):
    """Show a BGR frame in an OpenCV window.

    :return: False when the user pressed q or Esc (stop), True otherwise
    :raises ImportError: when this OpenCV has no window support (the headless build)
    """
    cv2 = require_cv2()
    try:
        cv2.imshow(title, frame)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error:
        raise ImportError("--webcam shows a window, which the headless OpenCV cannot: pip install "
                          "opencv-python") from None
    return key not in (ord("q"), 27)


def run_webcam(capture, detect_fn, label_map, show=None, max_frames=None):
    """Detect objects in a camera's frames, live: read a frame, detect, draw, show; until ``show`` says stop,
    the camera stops, or ``max_frames``.

    One frame per forward pass (the same detect_fn as images and videos): live video wants the newest frame,
    not a batch of old ones.

    :param capture: an opened cv2.VideoCapture (anything with ``read() -> (ok, BGR frame)``)
    :param detect_fn: list of PIL images -> list of detection lists
    :param label_map: {class name: label}, for the box colours
    :param show: called with each annotated BGR frame, returns False to stop (default: show_in_window)
    :param max_frames: stop after this many frames (None: no limit)
    :return: the number of frames shown
    """
    show = show or show_in_window
    shown = 0
    while max_frames is None or shown < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        image = frame_to_image(frame)
        annotated = draw_detections(image, detect_fn([image])[0], label_map)
        shown += 1
        if not show(image_to_frame(annotated)):
            break
    return shown


def open_camera(source):
    """Open ``--webcam SOURCE``: a camera index ("0"), a stream URL, a device path or a video file.

    :raises ValueError: one line naming the source, when it cannot be opened
    """
    cv2 = require_cv2()
    capture = cv2.VideoCapture(int(source) if str(source).isdigit() else source)
    if not capture.isOpened():
        raise ValueError(f"--webcam {source}: cannot open the camera")
    return capture


# ---------------------------------------------------------------------------------------------------------
# The model: a PyTorch checkpoint, or an exported ONNX file
# ---------------------------------------------------------------------------------------------------------


def make_detector(args):
    """The model the command line names, as ``detect_fn(images) -> list of detection lists``, with every
    selection option (--min-score, --max-overlap, --top-k, --classes, --thresholds, --agnostic-nms) bound.

    :return: (detect_fn, label_map, description)
    :raises ValueError: one line, for a missing or unreadable model or a bad option value
    """
    classes = None if args.classes is None else [name.strip() for name in args.classes.split(",") if name.strip()]
    thresholds = load_thresholds(args.thresholds) if args.thresholds else None
    never = sorted(name for name, score in (thresholds or {}).items() if score == float("inf"))
    if never:
        print(f"detect.py: note: {args.thresholds} has no threshold for {', '.join(never)} (no detection of theirs "
              f"was right where it was measured): they are not reported", file=sys.stderr)
    if args.onnx:
        from ssd_support.onnx_detector import OnnxDetector  # no torch on this path

        detector = OnnxDetector(args.onnx)
        floors = class_min_scores(detector.label_map, classes, thresholds)

        def detect_fn(images):
            return detector(images, args.min_score, args.top_k, floors, args.agnostic_nms, args.max_overlap)

        settings = ", ".join(f"{key} {value}" for key, value in detector.settings.items())
        return detect_fn, detector.label_map, f"{args.onnx} (onnxruntime; exported with {settings})"

    import torch

    from ssd_support.checkpoints import load_model_from_checkpoint  # here: importing detect loads no network code
    from ssd_support.cpu_layout import use_fast_cpu_layout
    from ssd_support.checkpoints import latest_checkpoint

    checkpoint = args.checkpoint or latest_checkpoint(DEFAULT_CHECKPOINT_DIR)
    if checkpoint is None:
        raise ValueError(f"{DEFAULT_CHECKPOINT_DIR}: no ssd300_iter_N.pt / ssd512_iter_N.pt checkpoint found; "
                         "pass --checkpoint")
    if not os.path.isfile(checkpoint):
        raise ValueError(f"{checkpoint}: checkpoint not found")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model, label_map = load_model_from_checkpoint(checkpoint, device=device)
    except (KeyError, RuntimeError) as error:
        raise ValueError(str(error).splitlines()[0]) from None
    use_fast_cpu_layout(model)  # channels-last weights on the CPU: same detections, faster (bench/bench_detector.py)
    backend, why = choose_backend(args.backend, device.type)
    if backend == "onnxruntime":
        from ssd_support.onnx_export import OnnxRuntimeSSD  # an ImportError names the missing package

        try:
            model = OnnxRuntimeSSD(model)  # the network exported to a temporary file; post-processing unchanged
        except Exception as error:  # noqa: BLE001 -- auto only: any failure of the export falls back, said
            if args.backend != "auto":
                raise
            backend, why = "torch", (f"--backend auto: the onnxruntime export failed ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''}), so PyTorch")
    floors = class_min_scores(label_map, classes, thresholds)
    options = {}
    if floors is not None:
        options["class_min_scores"] = torch.tensor(floors)
    if args.agnostic_nms:
        options["class_agnostic"] = True

    def detect_fn(images):
        return detect_batch(images, model, label_map, args.min_score, args.max_overlap, args.top_k, **options)

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


class DetectionExports:
    """detect.py --save-voc / --save-yolo / --save-coco: each image's detections in other tools' formats
    (ssd_support/detection_formats.py), as the images are processed; the COCO file once all are.

    :param label_map: {class name: label}, background 0
    :param image_root: the folder the images' COCO file names are relative to (the common folder of the inputs)
    :param voc_folder: one <stem>.xml per image here (None: none)
    :param yolo_folder: a YOLO data set here: images/<stem>.<ext> (hard link or copy of the file), labels/<stem>.txt,
        data.yaml (None: none)
    :param yolo_scores: the score as a sixth value of each YOLO line
    :param coco_file: one COCO json of every image (None: none)
    :raises ValueError: when the label map's labels are not 1..n (YOLO class ids)
    """

    def __init__(self, label_map, image_root, voc_folder=None, yolo_folder=None, yolo_scores=False, coco_file=None):
        self.label_map, self.image_root = label_map, image_root
        self.voc_folder, self.yolo_folder, self.yolo_scores, self.coco_file = (voc_folder, yolo_folder, yolo_scores,
                                                                               coco_file)
        self.coco_images, self.placed, self.left_out, self.n_images = [], {"linked": 0, "copied": 0, "saved": 0}, 0, 0
        if voc_folder:
            os.makedirs(voc_folder, exist_ok=True)
        if yolo_folder:
            self.yolo_names = detection_formats.yolo_class_names(label_map)
            for sub in ("images", "labels"):
                os.makedirs(os.path.join(yolo_folder, sub), exist_ok=True)

    @property
    def active(self):
        """True when any format is asked for."""
        return bool(self.voc_folder or self.yolo_folder or self.coco_file)

    def add(self, path, stem, image, detections):
        """Write one image's detections in every asked-for format.

        :param path: the image file
        :param stem: its unique output name (no extension): <stem>.xml, labels/<stem>.txt
        :param image: the decoded upright PIL image (its size is the boxes' frame)
        :param detections: detect_batch's list for it, boxes in pixels
        """
        self.n_images += 1
        self.left_out += sum(not detection_formats.has_area(detection["box"]) for detection in detections)
        if self.voc_folder:
            text, _ = detection_formats.voc_xml(detections, os.path.basename(path), image.width, image.height,
                                                image_path=os.path.abspath(path))
            write_atomically(os.path.join(self.voc_folder, stem + ".xml"), lambda file: file.write(text))
        if self.yolo_folder:
            extension = os.path.splitext(path)[1]
            if extension.lower() in IMAGE_EXTENSIONS:
                how = detection_formats.place_image(path, os.path.join(self.yolo_folder, "images", stem + extension))
            else:  # a file named explicitly with another extension: YOLO readers find images by extension
                image.save(os.path.join(self.yolo_folder, "images", stem + ".png"))
                how = "saved"
            self.placed[how] += 1
            text, _ = detection_formats.yolo_label_lines(detections, self.label_map, image.width, image.height,
                                                         self.yolo_scores)
            write_atomically(os.path.join(self.yolo_folder, "labels", stem + ".txt"), lambda file: file.write(text))
        if self.coco_file:
            self.coco_images.append({"file_name": os.path.relpath(os.path.abspath(path), self.image_root).replace(
                os.sep, "/"), "width": image.width, "height": image.height, "detections": detections})

    def close(self):
        """Write what is written once (data.yaml, the COCO json).

        :return: the lines to print: one per format, with the command that reads it back
        """
        lines = []
        if self.voc_folder:
            lines.append(f"--save-voc: {self.n_images} Pascal VOC XML files -> {self.voc_folder} (read back: python "
                         f"create_data_lists.py --annotations {self.voc_folder} --images {self.image_root})")
        if self.yolo_folder:
            yaml_path = os.path.join(self.yolo_folder, "data.yaml")
            text = detection_formats.yolo_data_yaml(self.yolo_names)
            write_atomically(yaml_path, lambda file: file.write(text))
            how = ", ".join(f"{count} {name}" for name, count in self.placed.items() if count)
            lines.append(f"--save-yolo: {self.n_images} images ({how or 'none'}) and YOLO label files, and data.yaml "
                         f"-> {self.yolo_folder} (read back: python create_data_lists.py --yolo {self.yolo_folder})")
        if self.coco_file:
            document, _ = detection_formats.coco_document(self.coco_images, self.label_map)
            text = detection_formats.coco_json_text(document)
            write_atomically(self.coco_file, lambda file: file.write(text))
            lines.append(f"--save-coco: {len(document['images'])} images, {len(document['annotations'])} detections "
                         f"-> {self.coco_file} (file names relative to {self.image_root})")
        if self.left_out:
            lines.append(f"Note: {self.left_out} detection(s) of zero width or height (a box clamped onto the image's "
                         f"edge) are not in these files: no tool reads such a box as an object.")
        return lines


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Detect objects in images, videos or a camera's frames with a "
                                                 "trained SSD.")
    parser.add_argument("images", nargs="*",
                        help="image files, folders or glob patterns, and video files (.mp4, .avi, .mov, ...)")
    parser.add_argument("--checkpoint", default=None,
                        help=f"checkpoint (default: the highest-iteration ssd*_iter_N.pt in {DEFAULT_CHECKPOINT_DIR}/)")
    parser.add_argument("--onnx", default=None, metavar="FILE",
                        help="run this export.py --with-postprocess model in onnxruntime instead of a checkpoint "
                             "(no torch needed); its label map and settings come from the file's metadata")
    parser.add_argument("--output", default=None,
                        help="folder for the annotated images / videos and JSON files (default: output; with "
                             "--webcam, saves the annotated stream there instead of showing a window)")
    parser.add_argument("--min-score", type=float, default=0.2, help="minimum detection score")
    parser.add_argument("--max-overlap", type=float, default=0.5,
                        help="NMS IoU threshold (with --onnx, fixed at export; used by --agnostic-nms only)")
    parser.add_argument("--top-k", type=int, default=200, help="at most this many detections per image")
    parser.add_argument("--classes", default=None, metavar="NAMES",
                        help="comma-separated class names to report, e.g. person,dog (default: all)")
    parser.add_argument("--thresholds", default=None, metavar="FILE",
                        help="per-class minimum scores, a JSON file from eval.py --thresholds-out (or "
                             "{class: score}); classes it does not name keep --min-score")
    parser.add_argument("--agnostic-nms", action="store_true",
                        help="class-agnostic NMS: a box overlapping a better box of any class is dropped, so an "
                             "object gets one box even when two classes score it")
    parser.add_argument("--webcam", default=None, metavar="SOURCE",
                        help="detect live in a camera's frames (a camera index such as 0, a stream URL or a video "
                             "file), shown in a window, q or Esc quits (needs opencv-python); with --output, saved "
                             "there as a video and JSON without a window, Ctrl-C ends it")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop a video or --webcam stream after N frames (default: when it ends)")
    parser.add_argument("--video-codec", choices=("auto", "h264", "vp9"), default="auto",
                        help="annotated videos: H.264 MP4 (needs PyAV: pip install av) or VP9 WebM (OpenCV's "
                             "wheel); auto: H.264 where PyAV is installed, else VP9. Both play in browsers")
    formats = parser.add_argument_group("detections for other tools (images; a video's are in its JSON)")
    formats.add_argument("--save-voc", default=None, metavar="DIR",
                         help="one Pascal VOC XML per image (labelImg, CVAT, Label Studio; create_data_lists.py "
                              "--annotations DIR --images ... reads it back)")
    formats.add_argument("--save-yolo", default=None, metavar="DIR",
                         help="a YOLO data set: images/ (linked or copied), labels/ ('class cx cy w h', fractions), "
                              "data.yaml (Ultralytics, CVAT, Label Studio; create_data_lists.py --yolo DIR)")
    formats.add_argument("--save-scores", action="store_true",
                         help="--save-yolo: the score as a sixth value on each line (Ultralytics' save_conf)")
    formats.add_argument("--save-coco", default=None, metavar="FILE",
                         help="one COCO json of every image (images, categories, annotations with bbox and score; "
                              "pycocotools' COCO(FILE), and its annotations as results with loadRes)")
    parser.add_argument("--tile", type=int, default=None, metavar="SIZE",
                        help="large images: detect on overlapping SIZE x SIZE pixel crops and merge them with NMS "
                             "(ssd_support/tiling.py); boxes in the image's pixels")
    parser.add_argument("--tile-overlap", type=float, default=DEFAULT_TILE_OVERLAP, metavar="F",
                        help="with --tile: fraction of a crop shared with its neighbour, in [0, 1)")
    parser.add_argument("--tile-full-image", action="store_true",
                        help="with --tile: also detect on the whole image (objects larger than a tile)")
    parser.add_argument("--batch-size", type=int, default=8, help="images (or video frames) per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                        help="with --checkpoint: run the network in PyTorch, or in onnxruntime on the CPU (exported "
                             "on the fly, a few seconds; needs onnx and onnxruntime; faster on a CPU, see "
                             "bench/bench_detector.py --folder); auto: onnxruntime on a CPU where it is installed, "
                             "PyTorch otherwise and on a GPU")
    args = parser.parse_args(argv)
    if not args.images and args.webcam is None:
        parser.error("give image or video files, folders or patterns, or --webcam SOURCE")
    if args.onnx and (args.checkpoint or args.backend != "auto"):
        parser.error("--onnx runs an exported model with its own NMS: give it without --checkpoint and --backend")
    if args.tile is not None and args.tile < 1:
        parser.error(f"--tile must be at least 1 pixel, got {args.tile}")
    if not 0 <= args.tile_overlap < 1:
        parser.error(f"--tile-overlap must be in [0, 1), got {args.tile_overlap}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.save_scores and not args.save_yolo:
        parser.error("--save-scores adds the score to --save-yolo's label files: give --save-yolo DIR too")
    return args


def main(argv=None):
    """Detect objects in the given images and videos (or a camera) and write annotated copies and JSON files.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status: 0 when every input was processed, 1 when any failed
    """
    args = parse_args(argv)

    def report(message):
        print(f"detect.py: error: {message}", file=sys.stderr)

    try:
        detect_fn, label_map, description = make_detector(args)
    except (ValueError, ImportError) as error:
        report(str(error).splitlines()[0])
        return 1
    if args.tile is not None:  # crops in batches of --batch-size, merged back into each image's pixels
        detect_fn = tiled_detect_fn(detect_fn, args.tile, args.tile_overlap, args.tile_full_image, args.max_overlap,
                                    args.top_k, args.agnostic_nms, args.batch_size)
    print(f"detect.py: {description}")  # the first line: which model, where, on which backend

    files, errors = expand_inputs(args.images)
    for message in errors:
        report(message)
    failed = bool(errors)
    videos = [path for path in files if is_video(path)]
    files = [path for path in files if not is_video(path)]
    output = args.output or "output"
    os.makedirs(output, exist_ok=True)
    image_root = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in files]) if files else "."
    try:
        exports = DetectionExports(label_map, image_root, args.save_voc, args.save_yolo, args.save_scores,
                                   args.save_coco)
    except ValueError as error:
        report(str(error))
        return 1
    if exports.active and videos:
        print("Note: --save-voc / --save-yolo / --save-coco hold images; a video's detections are in its JSON.")
    used_stems = set()
    for start in range(0, len(files), args.batch_size):
        paths, images = [], []
        for path in files[start:start + args.batch_size]:
            try:
                images.append(load_image(path))
                paths.append(path)
                note = multi_frame_note(path)  # an animated GIF or multi-page TIFF: only its first frame is detected
                if note:
                    print(note)
            except UnreadableImageError as error:
                report(str(error))
                failed = True
        all_detections = detect_fn(images)
        for path, image, detections in zip(paths, images, all_detections):
            name = _output_stem(path, used_stems)
            stem = os.path.join(output, name + "_detections")
            draw_detections(image, detections, label_map).save(stem + ".jpg", quality=92)
            with open(stem + ".json", "w") as file:
                file.write(format_detections_json(detections, path, image.width, image.height))
            exports.add(path, name, image, detections)
            print(f"{path}: {len(detections)} objects -> {stem}.jpg")
    if exports.active and exports.n_images:
        for line in exports.close():
            print(line)
    for path in videos:
        stem = os.path.join(output, _output_stem(path, used_stems) + "_detections")
        try:
            result = detect_video(path, stem, detect_fn, label_map, args.batch_size, args.max_frames, args.video_codec)
            print(f"{path}: {result['frames']} frames -> {result['video']} ({result['codec']}) and {result['json']}")
        except (ValueError, ImportError) as error:
            report(str(error))
            failed = True
    if args.webcam is not None:
        try:
            capture = open_camera(args.webcam)
            try:
                if args.output is None:
                    shown = run_webcam(capture, detect_fn, label_map, max_frames=args.max_frames)
                    print(f"--webcam {args.webcam}: {shown} frames shown")
                else:  # headless: the annotated stream saved, no window
                    stem = os.path.join(output, _output_stem(stream_name(args.webcam), used_stems) + "_detections")
                    result = annotate_capture(capture, f"--webcam {args.webcam}", stem, detect_fn, label_map, 1,
                                              args.max_frames, args.video_codec, stream=True)
                    print(f"--webcam {args.webcam}: {result['frames']} frames -> {result['video']} "
                          f"({result['codec']}) and {result['json']}" + (" (stopped by Ctrl-C)" if result["stopped"]
                                                                         else ""))
            finally:
                capture.release()
        except (ValueError, ImportError) as error:
            report(str(error))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
