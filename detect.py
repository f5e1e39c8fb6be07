"""Detect objects in images with a trained SSD300 and draw them.

    python detect.py photo.jpg                              # newest checkpoint in checkpoints/
    python detect.py photos/ "more/*.png" --checkpoint ckpt.pt --output detections/

For every image it writes <name>_detections.jpg (the image with its boxes, class names and scores) and
<name>_detections.json (a list of {"label", "score", "box": [x1, y1, x2, y2]} in pixels of the original image)
into --output. A missing file, or one that is not an image, gets a one-line error; the other images are still
processed and the exit status is 1.

From Python::

    from model import load_model_from_checkpoint
    from detect import detect
    model, label_map = load_model_from_checkpoint("ckpt.pt")
    annotated, detections = detect(PIL.Image.open("photo.jpg"), model, label_map)
"""

import argparse
import glob
import json
import os
import sys

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from utils import preprocess

# Files taken from a folder; a file named explicitly is tried whatever its extension.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# Distinct colours (the tutorial's palette), cycled through by label.
BOX_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#0082c8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
               "#d2f53c", "#fabebe", "#008080", "#000080", "#aa6e28", "#fffac8", "#800000", "#aaffc3",
               "#808000", "#ffd8b1", "#e6beff", "#808080")


def load_image(path):
    """Open an image file as an upright RGB PIL image.

    The EXIF orientation is applied (phone photos are often stored sideways), so boxes refer to the image as
    viewers display it.

    :param path: image file
    :return: a PIL image in RGB mode
    :raises ValueError: with a one-line message naming the file, when it is missing or not a readable image
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")  # convert() also forces the lazy decode, so a broken file fails here
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt files
        raise ValueError(f"{path}: unreadable image ({error})") from None


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


def find_latest_checkpoint(folder="checkpoints"):
    """The most recently written checkpoint (*.pt or *.pth) in a folder.

    :param folder: where train.py writes checkpoints
    :return: its path, or None when there is none
    """
    candidates = glob.glob(os.path.join(folder, "*.pt")) + glob.glob(os.path.join(folder, "*.pth"))
    return max(candidates, key=os.path.getmtime) if candidates else None


def detect_batch(images, model, label_map, min_score=0.2, max_overlap=0.5, top_k=200, suppress=()):
    """Detect objects in a batch of images in one forward pass.

    :param images: list of PIL RGB images, any sizes
    :param model: an SSD300 or SSD512 in eval mode, run on the device of its parameters (or an
        export.OnnxRuntimeSSD, on the CPU)
    :param label_map: {class name: label}, background 0
    :param min_score: minimum class score of a detection
    :param max_overlap: NMS IoU threshold
    :param top_k: at most this many detections per image
    :param suppress: class names not to report
    :return: one list per image of {"label": str, "score": float, "box": [x1, y1, x2, y2]} in pixels of that
        image, highest score first
    """
    if not images:
        return []
    names = {label: name for name, label in label_map.items()}
    device = next(model.parameters()).device
    batch = torch.stack([preprocess(image, model.image_size) for image in images]).to(device)
    with torch.inference_mode():
        predicted_locs, predicted_scores = model(batch)
        boxes, labels, scores = model.detect_objects(predicted_locs, predicted_scores, min_score=min_score,
                                                     max_overlap=max_overlap, top_k=top_k)
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


def _text_colour(background):
    """Black or white, whichever reads better on a "#rrggbb" background (by its luma)."""
    red, green, blue = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"


def draw_detections(image, detections, label_map=None):
    """Draw boxes, class names and scores on a copy of an image.

    Uses Pillow's built-in default font, which exists on every system (the original tutorial needed a .ttf file
    and font.getsize, which Pillow 10 removed; text is measured with textbbox here).

    :param image: a PIL RGB image
    :param detections: list of {"label", "score", "box"} in pixels of this image
    :param label_map: {class name: label}, only to give each class a stable colour
    :return: the annotated copy
    """
    annotated = image.copy()
    draw = ImageDraw.Draw(annotated)
    font = ImageFont.load_default()
    line_width = max(2, round(min(image.size) / 150))
    for detection in detections:
        x1, y1, x2, y2 = detection["box"]
        label_index = (label_map or {}).get(detection["label"], sum(map(ord, detection["label"])))
        colour = BOX_COLOURS[label_index % len(BOX_COLOURS)]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line_width)

        text = f"{detection['label']} {detection['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_width, text_height = right - left + 4, bottom - top + 4
        # Above the box when there is room, inside it otherwise.
        text_y = y1 - text_height if y1 - text_height >= 0 else y1
        draw.rectangle([x1, text_y, x1 + text_width, text_y + text_height], fill=colour)
        draw.text((x1 + 2 - left, text_y + 2 - top), text, fill=_text_colour(colour), font=font)
    return annotated


def detect(image, model, label_map, min_score=0.2, max_overlap=0.5, top_k=200, suppress=()):
    """Detect objects in one image and draw them.

    :param image: a PIL image (any mode) or the path of an image file
    :param model: an SSD300 in eval mode (see ``model.load_model_from_checkpoint``), on any device
    :param label_map: {class name: label}, background 0
    :param min_score: minimum class score of a detection
    :param max_overlap: NMS IoU threshold
    :param top_k: at most this many detections
    :param suppress: class names not to report
    :return: (annotated PIL image, detections: list of {"label", "score", "box": [x1, y1, x2, y2] in pixels})
    """
    image = load_image(image) if isinstance(image, (str, os.PathLike)) else image.convert("RGB")
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


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Detect objects in images with a trained SSD300.")
    parser.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: the newest in checkpoints/)")
    parser.add_argument("--output", default="output", help="folder for the annotated images and JSON files")
    parser.add_argument("--min-score", type=float, default=0.2, help="minimum detection score")
    parser.add_argument("--max-overlap", type=float, default=0.5, help="NMS IoU threshold")
    parser.add_argument("--top-k", type=int, default=200, help="at most this many detections per image")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="run the network in PyTorch, or in onnxruntime on the CPU (needs onnx and onnxruntime)")
    parser.add_argument("--onnx", default=None,
                        help="with --backend onnxruntime: this export.py file of the same checkpoint (default: "
                             "export the network into a temporary file first)")
    return parser.parse_args(argv)


def main(argv=None):
    """Detect objects in the given images and write annotated copies and JSON files.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status: 0 when every input was processed, 1 when any failed
    """
    args = parse_args(argv)
    from model import load_model_from_checkpoint, use_fast_cpu_layout  # here: importing detect loads no network code

    def report(message):
        print(f"detect.py: error: {message}", file=sys.stderr)

    checkpoint = args.checkpoint or find_latest_checkpoint()
    if checkpoint is None:
        report("checkpoints: no *.pt checkpoint found; pass --checkpoint")
        return 1
    if not os.path.isfile(checkpoint):
        report(f"{checkpoint}: checkpoint not found")
        return 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model, label_map = load_model_from_checkpoint(checkpoint, device=device)
    except (ValueError, KeyError, RuntimeError) as error:
        report(str(error).splitlines()[0])
        return 1
    use_fast_cpu_layout(model)  # channels-last weights on the CPU: same detections, ~1.25x the images/s
    if args.backend == "onnxruntime":
        if model.priors_cxcy.device.type != "cpu":
            report("--backend onnxruntime runs on the CPU: pass --device cpu")
            return 1
        try:
            from export import OnnxRuntimeSSD
            model = OnnxRuntimeSSD(model, args.onnx)
        except ImportError as error:
            report(f"--backend onnxruntime needs onnx and onnxruntime ({error})")
            return 1

    files, errors = expand_inputs(args.images)
    for message in errors:
        report(message)
    failed = bool(errors)
    os.makedirs(args.output, exist_ok=True)
    used_stems = set()
    for start in range(0, len(files), args.batch_size):
        paths, images = [], []
        for path in files[start:start + args.batch_size]:
            try:
                images.append(load_image(path))
                paths.append(path)
            except ValueError as error:
                report(str(error))
                failed = True
        all_detections = detect_batch(images, model, label_map, args.min_score, args.max_overlap, args.top_k)
        for path, image, detections in zip(paths, images, all_detections):
            stem = os.path.join(args.output, _output_stem(path, used_stems) + "_detections")
            draw_detections(image, detections, label_map).save(stem + ".jpg", quality=92)
            with open(stem + ".json", "w") as file:
                file.write(format_detections_json(detections))
            print(f"{path}: {len(detections)} objects -> {stem}.jpg")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
