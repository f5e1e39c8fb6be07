"""Detect objects in images with a trained SSD (SSD300, SSD512 or the ResNet-50 SSD300) and draw them.

    python detect.py photo.jpg                              # the latest checkpoint in checkpoints/
    python detect.py photos/ "more/*.png" --checkpoint ckpt.pt --output detections/
    python detect.py photo.jpg --checkpoint checkpoints/ssd300_vgg16_coco.pt   # convert_weights.py's COCO SSD300
    python detect.py clip.mp4 --classes person,dog          # a video: output/clip_detections.mp4 (OpenCV)
    python detect.py --webcam 0                             # a live window; q or Esc quits (OpenCV)
    python detect.py photo.jpg --onnx ssd300_nms.onnx       # an export.py --with-postprocess model, no torch

For every image it writes <name>_detections.jpg (the image with its boxes, class names and scores) and
<name>_detections.json (a list of {"label", "score", "box": [x1, y1, x2, y2]} in pixels of the original image)
into --output. A missing file, or one that is not an image, gets a one-line error; the other images are still
processed and the exit status is 1.

A video file (named explicitly: .mp4, .avi, .mov, .mkv, .webm, ...) gives <name>_detections.mp4 (every frame
annotated, same size and frame rate) and <name>_detections.json ([{"frame": i, "detections": [...]}, ...]); its
frames go through the model --batch-size at a time, as images do. --webcam SOURCE (a camera index, or a stream
URL) shows the camera's frames annotated in a window. Both need OpenCV (pip install opencv-python-headless for
videos; the window needs opencv-python).

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
    :param model: an SSD in eval mode, run on the device of its parameters (or an export.OnnxRuntimeSSD, on
        the CPU)
    :param label_map: {class name: label}, background 0
    :param min_score: minimum class score of a detection
    :param max_overlap: NMS IoU threshold
    :param top_k: at most this many detections per image
    :param suppress: class names not to report
    :param options: passed on to ``model.detect_objects``: ``class_min_scores`` (per-class floors, see
        :func:`class_min_scores`), ``class_agnostic`` (one NMS over all classes)
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


def format_detections_json(detections):
    """JSON text of an image's detections, one detection per line (readable, and still plain JSON).

    :param detections: list of {"label", "score", "box"}
    :return: the JSON text, ending with a newline
    """
    if not detections:
        return "[]\n"
    return "[\n" + ",\n".join("  " + json.dumps(detection) for detection in detections) + "\n]\n"


def _output_stem(path, used):
    """A unique output name for an input file: its name without extension, numbered on a clash."""
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, number = stem, 2
    while candidate in used:
        candidate, number = f"{stem}_{number}", number + 1
    used.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------------------------------
# Which detections: class filter, per-class thresholds
# ---------------------------------------------------------------------------------------------------------


def load_thresholds(path):
    """Read per-class minimum scores: eval.py --thresholds-out's file ({"thresholds": {class: score}, ...}), or
    a plain {class: score} JSON object. A null score (eval.py found no threshold at which any detection of the
    class was right) means the class is not reported at all.

    :return: {class name: float, inf for null}
    :raises ValueError: one line naming the file, when it is missing, not JSON or not such a mapping
    """
    try:
        with open(path) as file:
            document = json.load(file)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    thresholds = document.get("thresholds", document) if isinstance(document, dict) else None
    if not isinstance(thresholds, dict) or not all(
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            for value in thresholds.values()):
        raise ValueError(f"{path}: expected {{class: score or null}} (or eval.py --thresholds-out's file)")
    return {name: float("inf") if value is None else float(value) for name, value in thresholds.items()}


def class_min_scores(label_map, classes=None, thresholds=None):
    """Per-class score floors for ``detect_objects``: --classes and --thresholds in one list.

    :param label_map: {class name: label}, background 0, labels 1..n-1
    :param classes: names of the classes to keep (None: all), in any letter case
    :param thresholds: {class name: minimum score} (None: none; other classes keep --min-score alone), in any
        letter case
    :return: None when neither is given, else a list of n-1 floats, one per object class in label order: 0 (no
        floor), the class's threshold, or inf for a class left out
    :raises ValueError: naming the unknown class names and the known ones
    """
    if classes is None and thresholds is None:
        return None
    known = {name for name, label in label_map.items() if label != 0}
    # Names as people type them (Dog, dog): matched without regard to letter case, as create_data_lists does.
    classes = None if classes is None else {name.lower() for name in classes}
    thresholds = {name.lower(): score for name, score in (thresholds or {}).items()}
    for option, names in (("--classes", classes or ()), ("--thresholds", thresholds)):
        unknown = sorted(set(names) - {name.lower() for name in known})
        if unknown:
            raise ValueError(f"{option}: unknown class(es) {', '.join(unknown)}; the model knows "
                             f"{', '.join(sorted(known))}")
    floors = [0.0] * (max(label_map.values()))
    for name, label in label_map.items():
        if label == 0:
            continue
        if classes is not None and name.lower() not in classes:
            floors[label - 1] = float("inf")
        elif name.lower() in thresholds:
            floors[label - 1] = thresholds[name.lower()]
    return floors


# ---------------------------------------------------------------------------------------------------------
# Video files and cameras (OpenCV, optional)
# ---------------------------------------------------------------------------------------------------------


def is_video(path):
    """True for a file name with a video extension (VIDEO_EXTENSIONS)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def require_cv2():
    """Import OpenCV.

    :return: the cv2 module
    :raises ImportError: one line saying what to install
    """
    try:
        import cv2
    except ImportError:
        raise ImportError("videos and --webcam need OpenCV: pip install opencv-python-headless (or "
                          "opencv-python, for the --webcam window)") from None
    return cv2


def frame_to_image(frame):
    """An OpenCV frame (H, W, 3) uint8 BGR as a PIL RGB image."""
    return Image.fromarray(frame[:, :, ::-1].copy())


def image_to_frame(image):
    """A PIL RGB image as an OpenCV frame (H, W, 3) uint8 BGR."""
    import numpy as np

    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def read_frames(capture, batch_size):
    """Frames of an OpenCV capture (anything with ``read() -> (ok, frame)``), ``batch_size`` at a time.

    :return: a generator of lists of BGR frames; it ends at the first failed read
    """
    batch = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def detect_video(path, output_stem, detect_fn, label_map, batch_size=8):
    """Detect objects in every frame of a video and write the annotated video and the detections.

    The frames go through ``detect_fn`` ``batch_size`` at a time, as images do. The video is written (mp4v, the
    input's size and frame rate) under a temporary name and renamed when complete, so an interrupted run leaves
    no half-written <stem>.mp4.

    :param path: the video file
    :param output_stem: output path without extension: <stem>.mp4 and <stem>.json are written
    :param detect_fn: list of PIL images -> list of detection lists (detect_batch with its settings bound)
    :param label_map: {class name: label}, for the box colours
    :param batch_size: frames per forward pass
    :return: the number of frames
    :raises ValueError: one line naming the file, when OpenCV cannot read it or cannot write the output
    :raises ImportError: without OpenCV
    """
    cv2 = require_cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open the video (missing, or a format OpenCV cannot read)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0  # some containers do not say; 25 is a common default
    partial = output_stem + ".partial.mp4"
    writer, per_frame = None, []
    try:
        for frames in read_frames(capture, batch_size):
            images = [frame_to_image(frame) for frame in frames]
            for image, detections in zip(images, detect_fn(images)):
                if writer is None:
                    writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"mp4v"), fps, image.size)
                    if not writer.isOpened():
                        raise ValueError(f"{partial}: OpenCV cannot write an mp4v video here")
                writer.write(image_to_frame(draw_detections(image, detections, label_map)))
                per_frame.append({"frame": len(per_frame), "detections": detections})
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not per_frame:
        raise ValueError(f"{path}: no frame could be read")
    os.replace(partial, output_stem + ".mp4")
    with open(output_stem + ".json", "w") as file:
        file.write("[\n" + ",\n".join(json.dumps(entry) for entry in per_frame) + "\n]\n")
    return len(per_frame)


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
    """Open ``--webcam SOURCE``: a camera index ("0") or a stream URL / device path.

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
    if args.backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError("--backend onnxruntime runs on the CPU: pass --device cpu")
        from export import OnnxRuntimeSSD  # an ImportError names the missing package

        model = OnnxRuntimeSSD(model)  # the network exported to a temporary file; post-processing unchanged
    floors = class_min_scores(label_map, classes, thresholds)
    options = {}
    if floors is not None:
        options["class_min_scores"] = torch.tensor(floors)
    if args.agnostic_nms:
        options["class_agnostic"] = True

    def detect_fn(images):
        return detect_batch(images, model, label_map, args.min_score, args.max_overlap, args.top_k, **options)

    return detect_fn, label_map, checkpoint


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
    parser.add_argument("--output", default="output",
                        help="folder for the annotated images / videos and JSON files")
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
                        help="detect live in a camera's frames (a camera index such as 0, or a stream URL), "
                             "shown in a window; q or Esc quits (needs opencv-python)")
    parser.add_argument("--batch-size", type=int, default=8, help="images (or video frames) per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="with --checkpoint: run the network in PyTorch, or in onnxruntime on the CPU (exported "
                             "on the fly; needs onnx and onnxruntime; often faster on a CPU, see bench_detector.py)")
    args = parser.parse_args(argv)
    if not args.images and args.webcam is None:
        parser.error("give image or video files, folders or patterns, or --webcam SOURCE")
    if args.onnx and (args.checkpoint or args.backend != "torch"):
        parser.error("--onnx runs an exported model with its own NMS: give it without --checkpoint and --backend")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
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
        detect_fn, label_map, _ = make_detector(args)
    except (ValueError, ImportError) as error:
        report(str(error).splitlines()[0])
        return 1

    files, errors = expand_inputs(args.images)
    for message in errors:
        report(message)
    failed = bool(errors)
    videos = [path for path in files if is_video(path)]
    files = [path for path in files if not is_video(path)]
    os.makedirs(args.output, exist_ok=True)
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
            stem = os.path.join(args.output, _output_stem(path, used_stems) + "_detections")
            draw_detections(image, detections, label_map).save(stem + ".jpg", quality=92)
            with open(stem + ".json", "w") as file:
                file.write(format_detections_json(detections))
            print(f"{path}: {len(detections)} objects -> {stem}.jpg")
    for path in videos:
        stem = os.path.join(args.output, _output_stem(path, used_stems) + "_detections")
        try:
            n_frames = detect_video(path, stem, detect_fn, label_map, args.batch_size)
            print(f"{path}: {n_frames} frames -> {stem}.mp4")
        except (ValueError, ImportError) as error:
            report(str(error))
            failed = True
    if args.webcam is not None:
        try:
            capture = open_camera(args.webcam)
            try:
                print(f"--webcam {args.webcam}: {run_webcam(capture, detect_fn, label_map)} frames shown")
            finally:
                capture.release()
        except (ValueError, ImportError) as error:
            report(str(error))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
