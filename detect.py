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
FILE, one COCO json (pycocotools' COCO(FILE); its annotations, with scores, also load as results). No input is
ever replaced (a YOLO set's own images/ stay in place), and a file that exists is replaced only with --overwrite:
both are refused before any image is processed (ssd_support.files.RunOutputs). A YOLO set's own data.yaml is
never replaced: kept when its names are the model's, the set refused otherwise (its labels would change classes).

A video file (named explicitly: .mp4, .avi, .mov, .mkv, .webm, ...) gives an annotated video that browsers play
(ssd_support/video.py: <name>_detections.mp4, H.264, where PyAV is installed, else <name>_detections.webm, VP9
through OpenCV; same size, odd sides padded by a pixel, same frame rate) and <name>_detections.json ({"video",
"width", "height", "fps", "video_file", "frames": [{"frame": i, "detections": [...]}, ...]}); its frames go
through the model --batch-size at a time, as images do. --webcam SOURCE (a camera index, a stream URL or a
video file) shows the frames annotated in a window, or with --output saves them as a video and JSON instead,
without a window (a headless server; Ctrl-C ends the stream and keeps both files). --max-frames N stops a video
or a stream after N frames. Both need OpenCV (pip install opencv-python-headless for videos; the window needs
opencv-python).

Where the network runs (ssd_support/backends.py): --backend auto (the default) runs a checkpoint's network in
onnxruntime on a CPU where onnxruntime and onnx are installed (faster there: bench/bench_detector.py --folder), in
PyTorch otherwise and on a GPU; --backend torch / onnxruntime choose. The first line printed says which. The
detections are the same.

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
import json
import os
import sys

# The project's one image loader (upright, 8-bit RGB, one error type; no torch).
from ssd_support.images import load_image, multi_frame_note, to_8bit_rgb
# The project's one box drawer (eval.py --plots draws with it too).
from ssd_support.drawing import draw_detections
# The product around the lesson, one module each: which files, which backend, videos and cameras, other formats.
from ssd_support.input_files import expand_inputs, output_stem
from ssd_support.limits import JPEG_MAX_SIDE, MIN_TILE_SIZE
from ssd_support.backends import DEFAULT_CHECKPOINT_DIR, make_detector
from ssd_support.video import annotate_capture, detect_video, is_video, open_camera, run_webcam, stream_name
from ssd_support.detection_formats import DetectionExports
from ssd_support.files import RunOutputs, output_file_argument, output_folder_argument, write_atomically
from ssd_support.tiling import DEFAULT_TILE_OVERLAP, check_tile_count, tiled_detect_fn

# torch is imported where the network runs, not here: detect.py --onnx runs on machines without torch.


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
    parser.add_argument("--output", type=output_folder_argument,
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
    formats.add_argument("--save-voc", type=output_folder_argument, metavar="DIR",
                         help="one Pascal VOC XML per image (labelImg, CVAT, Label Studio; create_data_lists.py "
                              "--annotations DIR --images ... reads it back)")
    formats.add_argument("--save-yolo", type=output_folder_argument, metavar="DIR",
                         help="a YOLO data set: images/ (linked or copied), labels/ ('class cx cy w h', fractions), "
                              "data.yaml (Ultralytics, CVAT, Label Studio; create_data_lists.py --yolo DIR)")
    formats.add_argument("--save-scores", action="store_true",
                         help="--save-yolo: the score as a sixth value on each line (Ultralytics' save_conf)")
    formats.add_argument("--save-coco", type=output_file_argument(".json", "a COCO json"), metavar="FILE",
                         help="one COCO json of every image (images, categories, annotations with bbox and score; "
                              "pycocotools' COCO(FILE), and its annotations as results with loadRes)")
    formats.add_argument("--overwrite", action="store_true",
                         help="let --save-voc / --save-yolo / --save-coco replace files that exist (an earlier run's, "
                              "or a data set's own XML and labels); without it they are refused before any work. "
                              "An input is never replaced, nor a YOLO set's own data.yaml: kept when its names are "
                              "the model's, refused otherwise")
    parser.add_argument("--tile", type=int, default=None, metavar="SIZE",
                        help="large images: detect on overlapping SIZE x SIZE pixel crops (at least "
                             f"{MIN_TILE_SIZE}) and merge them with NMS (ssd_support/tiling.py); boxes in the image's "
                             "pixels. An image of more than ssd_support.limits.MAX_TILES_PER_IMAGE crops is refused")
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
    if args.tile is not None and args.tile < MIN_TILE_SIZE:  # far below the network's input: upsampled > ~10x
        parser.error(f"--tile must be at least {MIN_TILE_SIZE} pixels (ssd_support.limits.MIN_TILE_SIZE), "
                     f"got {args.tile}")
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
        detect_fn, label_map, description = make_detector(
            detect_batch, checkpoint=args.checkpoint, onnx_file=args.onnx, device=args.device,
            requested_backend=args.backend, min_score=args.min_score, max_overlap=args.max_overlap, top_k=args.top_k,
            classes=args.classes, thresholds_file=args.thresholds, agnostic_nms=args.agnostic_nms)
        if args.tile is not None:  # crops in batches of --batch-size, merged back into each image's pixels
            detect_fn = tiled_detect_fn(detect_fn, args.tile, args.tile_overlap, args.tile_full_image,
                                        args.max_overlap, args.top_k, args.agnostic_nms, args.batch_size)
    except (ValueError, ImportError) as error:
        report(str(error).splitlines()[0])
        return 1
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
    outputs = RunOutputs([*files, *videos, args.checkpoint, args.onnx, args.thresholds], args.overwrite)
    try:
        exports = DetectionExports(label_map, image_root, args.save_voc, args.save_yolo, args.save_scores,
                                   args.save_coco, outputs)
        planned = set()  # the files' names as the loops below give them: no annotated file may be an input
        stems = [output_stem(path, planned) for path in files + videos]
        for stem in stems:
            for extension in (".jpg", ".json", ".mp4", ".webm"):
                outputs.refuse_input(os.path.join(output, stem + "_detections" + extension), "--output")
        exports.check_before_writing(files, stems)
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
                image = load_image(path)
                if args.tile is not None:  # too many crops: this image is refused, the others run
                    check_tile_count(image.width, image.height, args.tile, args.tile_overlap, path)
                images.append(image)
                paths.append(path)
                note = multi_frame_note(path)  # an animated GIF or multi-page TIFF: only its first frame is detected
                if note:
                    print(note)
            except ValueError as error:  # an unreadable file (images.UnreadableImageError), or too many tiles
                report(str(error))
                failed = True
        all_detections = detect_fn(images)
        for path, image, detections in zip(paths, images, all_detections):
            name = output_stem(path, used_stems)
            stem = os.path.join(output, name + "_detections")
            drawn = stem + ".jpg"
            try:
                if max(image.size) > JPEG_MAX_SIDE:  # asked anyway, libjpeg would print a line of its own
                    raise ValueError(f"JPEG holds at most {JPEG_MAX_SIDE} pixels a side")
                # Atomically: a link planted at this name is replaced, never the file it points to (a photo).
                annotated = draw_detections(image, detections, label_map)
                write_atomically(drawn, lambda file: annotated.save(file, format="JPEG", quality=92), binary=True)
            except (OSError, ValueError) as error:
                # A 100000x1 image, a full disk: this image's error, not the batch's.
                if os.path.islink(drawn) or os.path.isfile(drawn):
                    os.remove(drawn)  # an earlier run's copy, which would now show other detections
                report(f"{path}: its annotated copy cannot be written as {drawn} ({image.width}x{image.height}: "
                       + " ".join(str(error).split()) + "); its detections are in the JSON file")
                failed, drawn = True, None
            text = format_detections_json(detections, path, image.width, image.height)
            write_atomically(stem + ".json", lambda file: file.write(text))
            try:
                exports.add(path, name, image, detections)
            except ValueError as error:  # a file this run may not write (ssd_support.files.RunOutputs)
                report(str(error))
                return 1
            print(f"{path}: {len(detections)} objects -> {drawn or stem + '.json'}")
    if exports.active and exports.n_images:
        for line in exports.close():
            print(line)
    for path in videos:
        stem = os.path.join(output, output_stem(path, used_stems) + "_detections")
        try:
            result = detect_video(path, stem, detect_fn, label_map, args.batch_size, args.max_frames, args.video_codec)
            print(f"{path}: {result['frames']} frames -> {result['video']} ({result['codec']}) and {result['json']}")
        except (ValueError, ImportError) as error:
            message = str(error)  # a frame of too many tiles (tiling.check_tile_count) does not know the file
            report(message if message.startswith(path) else f"{path}: {message}")
            failed = True
    if args.webcam is not None:
        try:
            capture = open_camera(args.webcam)
            try:
                if args.output is None:
                    shown = run_webcam(capture, detect_fn, label_map, max_frames=args.max_frames)
                    print(f"--webcam {args.webcam}: {shown} frames shown")
                else:  # headless: the annotated stream saved, no window
                    stem = os.path.join(output, output_stem(stream_name(args.webcam), used_stems) + "_detections")
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
