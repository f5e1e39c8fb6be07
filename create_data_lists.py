"""Turn Pascal VOC-format folders into the JSON lists that datasets.PascalVOCDataset reads.

    python create_data_lists.py --voc07 PATH/VOC2007 --voc12 PATH/VOC2012 --output data/voc
    python create_data_lists.py --voc07 PATH/MyData --classes cat,dog --output data/mine
    python create_data_lists.py --toy data/toy        # a small synthetic data set, and its lists

As in the paper, TRAIN = VOC2007 trainval + VOC2012 trainval and TEST = VOC2007 test (the image IDs come
from ImageSets/Main/{trainval,test}.txt; VOC2012's test set is not public, so only its trainval is read).
A custom VOC-format folder is passed the same way, as --voc07 (train and test) or --voc12 (train only).

Written to the output folder: TRAIN_images.json and TEST_images.json (lists of image paths),
TRAIN_objects.json and TEST_objects.json (per image, {"boxes": [[x1, y1, x2, y2], ...] in pixels,
"labels": [...], "difficulties": [...]}), and label_map.json ({"background": 0, class: label, ...}),
the label map that training and evaluation use.

Coordinates: VOC annotations number pixels from 1 and include the last pixel, so a box covering pixels
xmin..xmax (1-based) spans [xmin - 1, xmax] in the continuous, 0-based coordinates written here.

Problems (a class outside the label map, a degenerate box, a missing or unreadable image, a malformed
or missing XML file) are reported one line each, naming the file; the run then fails unless --skip-bad
is given, in which case the bad objects / images are left out and counted.
"""

import argparse
import json
import os
import random
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from PIL import Image, ImageDraw

from utils import VOC_LABELS, make_label_map, write_atomically

SPLITS = ("TRAIN", "TEST")
# Which ImageSets/Main list of each year goes into which split.
VOC07_SETS = (("trainval", "TRAIN"), ("test", "TEST"))
VOC12_SETS = (("trainval", "TRAIN"),)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"", "0", "false", "no"}


class DataListError(ValueError):
    """The annotations have problems and --skip-bad was not given (or nothing usable was found)."""


class AnnotationProblem(Exception):
    """One problem with one file, reported as a single line "PATH: what is wrong"."""

    def __init__(self, kind, path, message):
        """:param kind: a short category ("unknown class", ...); path: the file; message: what is wrong"""
        super().__init__(f"{path}: {message}")
        self.kind = kind  # a short category, used to count what --skip-bad left out


# ---------------------------------------------------------------------------------------------------------
# Parsing one annotation
# ---------------------------------------------------------------------------------------------------------


def canonical_class_name(name):
    """Normalize a class name as annotation tools write it: lower case, surrounding and repeated spaces removed.

    :param name: a class name, e.g. " Potted  Plant"
    :return: the canonical name, e.g. "potted plant"
    """
    return " ".join(name.lower().split())


def resolve_class_name(name, known_names):
    """Find which known class an annotated name means, allowing odd case and spaces ("Dining Table").

    :param name: a class name from an annotation
    :param known_names: the class names of the label map (canonical)
    :return: the matching known name, or None
    """
    canonical = canonical_class_name(name)
    if canonical in known_names:
        return canonical
    squeezed = canonical.replace(" ", "")
    return squeezed if squeezed in known_names else None


def _parse_flag(element, tag, xml_path):
    """Read a 0/1 tag such as <difficult>; an empty or missing tag means 0.

    :return: 0 or 1
    """
    text = (element.findtext(tag) or "").strip().lower()
    if text in TRUE_WORDS:
        return 1
    if text in FALSE_WORDS:
        return 0
    try:
        return int(float(text) != 0)
    except ValueError:
        raise AnnotationProblem("malformed XML", xml_path, f"<{tag}> is {text!r}, expected 0 or 1") from None


def find_image(voc_folder, image_id, filename):
    """Locate the image of an annotation: JPEGImages/<filename> if the XML names one, else JPEGImages/<id>.jpg etc.

    :param voc_folder: the VOC-format folder
    :param image_id: the ID from ImageSets/Main
    :param filename: the <filename> of the XML (may be None)
    :return: the path of the first candidate that exists, or None
    """
    candidates = []
    if filename:
        candidates.append(os.path.join(voc_folder, "JPEGImages", os.path.basename(filename.strip())))
    candidates += [os.path.join(voc_folder, "JPEGImages", image_id + ext) for ext in IMAGE_EXTENSIONS]
    return next((path for path in candidates if os.path.isfile(path)), None)


def image_size(image_path):
    """Width and height of an image, read from its header only.

    :return: (width, height)
    :raises AnnotationProblem: when the file is not a readable image
    """
    try:
        with Image.open(image_path) as image:
            return image.size
    except (OSError, ValueError) as error:
        raise AnnotationProblem("unreadable image", image_path, f"cannot read image ({error})") from None


def parse_annotation(xml_path, voc_folder, image_id):
    """Read one VOC XML file, as real annotation tools write it.

    Accepts float coordinates ("107.37"), empty or missing <difficult/> and <truncated/> tags and the
    <part> sub-boxes of people (only an object's own <bndbox> is read). Boxes reaching outside the image
    are clipped to it and counted. A box that is empty after clipping is a problem of that object; a
    missing image or a malformed file is a problem of the whole annotation.

    :param xml_path: path of the XML file
    :param voc_folder: the VOC-format folder holding JPEGImages/
    :param image_id: the image ID from ImageSets/Main
    :return: (annotation, object_problems): annotation is {"xml": path, "image": path, "objects": [{"name", "box" [x1, y1,
        x2, y2] in 0-based pixels, "difficult" 0/1}], "n_clipped": int}; object_problems a list of
        AnnotationProblem for single objects that are left out
    :raises AnnotationProblem: when the file cannot be used at all
    """
    if not os.path.isfile(xml_path):
        raise AnnotationProblem("missing annotation", xml_path, "annotation file not found")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise AnnotationProblem("malformed XML", xml_path, f"malformed XML ({error})") from None

    image_path = find_image(voc_folder, image_id, root.findtext("filename"))
    if image_path is None:
        expected = os.path.join(voc_folder, "JPEGImages", image_id + ".jpg")
        raise AnnotationProblem("missing image", xml_path, f"image not found (looked for {expected})")
    width, height = image_size(image_path)

    objects, object_problems, n_clipped = [], [], 0
    for index, element in enumerate(root.findall("object")):
        where = f"object {index + 1}"
        name = (element.findtext("name") or "").strip()
        bndbox = element.find("bndbox")  # the object's own box; <part> boxes sit one level deeper
        if not name or bndbox is None:
            raise AnnotationProblem("malformed XML", xml_path, f"{where} has no <name> or no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(bndbox.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise AnnotationProblem("malformed XML", xml_path, f"{where} ({name}) has a missing or non-numeric "
                                                               f"coordinate") from None
        box = [xmin - 1, ymin - 1, xmax, ymax]
        clipped = [min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
                   min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            object_problems.append(AnnotationProblem(
                "degenerate box", xml_path,
                f"{where} ({name}) has an empty box (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g}) "
                f"in a {width}x{height} image"))
            continue
        n_clipped += clipped != box
        objects.append({"name": name, "box": clipped, "difficult": _parse_flag(element, "difficult", xml_path)})
    annotation = {"xml": xml_path, "image": os.path.abspath(image_path), "objects": objects, "n_clipped": n_clipped}
    return annotation, object_problems


def read_image_ids(voc_folder, image_set):
    """The image IDs of ImageSets/Main/<image_set>.txt.

    :raises DataListError: when the list does not exist (a wrong path rather than a bad sample)
    """
    path = os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt")
    if not os.path.isfile(path):
        raise DataListError(f"{path}: image set list not found (is {voc_folder} a VOC-format folder?)")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------------------
# Building the lists
# ---------------------------------------------------------------------------------------------------------


def choose_label_map(classes, annotated_names):
    """Decide the classes: given ones, VOC's, or the ones the annotations use.

    :param classes: None (automatic), "voc", or a list of class names
    :param annotated_names: the set of class names found in the annotations
    :return: the label map {"background": 0, name: label, ...} and a line saying where it came from
    """
    if classes is not None and classes != "voc":
        names = [canonical_class_name(c) for c in classes if c.strip()]
        if len(set(names)) != len(names) or "background" in names:
            raise DataListError(f"--classes {','.join(classes)}: names must be distinct and not 'background'")
        return make_label_map(names), "classes given with --classes"
    # (With no objects at all, all() is True and the VOC classes are used.)
    if classes == "voc" or all(resolve_class_name(n, VOC_LABELS) for n in annotated_names):
        return make_label_map(VOC_LABELS), "the 20 Pascal VOC classes"
    names = sorted({canonical_class_name(n) for n in annotated_names})
    return make_label_map(names), "classes read from the annotations (not all VOC names)"


def _collect(voc_folders, problems):
    """Parse every annotation of every (folder, image set) into per-split lists of annotations.

    :param voc_folders: list of (folder, ((image_set, split), ...))
    :param problems: a list that the AnnotationProblem of every bad file or object is appended to
    :return: {split: [annotation, ...]} with annotations as parse_annotation returns them
    """
    annotations = {split: [] for split in SPLITS}
    for folder, image_sets in voc_folders:
        for image_set, split in image_sets:
            for image_id in read_image_ids(folder, image_set):
                xml_path = os.path.join(folder, "Annotations", image_id + ".xml")
                try:
                    annotation, object_problems = parse_annotation(xml_path, folder, image_id)
                except AnnotationProblem as problem:
                    problems.append(problem)
                    continue
                problems.extend(object_problems)
                annotations[split].append(annotation)
    return annotations


def _to_lists(annotations, label_map, problems):
    """Map class names to labels, dropping (and reporting) objects whose class is not in the label map.

    :return: (image paths, objects in the JSON format)
    """
    known = [name for name in label_map if name != "background"]
    images, objects = [], []
    for annotation in annotations:
        boxes, labels, difficulties = [], [], []
        for obj in annotation["objects"]:
            name = resolve_class_name(obj["name"], known)
            if name is None:
                problems.append(AnnotationProblem("unknown class", annotation["xml"],
                                                  f"class {obj['name']!r} is not in the label map"))
                continue
            boxes.append(obj["box"])
            labels.append(label_map[name])
            difficulties.append(obj["difficult"])
        images.append(annotation["image"])
        objects.append({"boxes": boxes, "labels": labels, "difficulties": difficulties})
    return images, objects


def split_statistics(objects, label_map):
    """Count images and objects (difficult ones too), overall and per class.

    :param objects: per-image objects, as in *_objects.json
    :param label_map: {name: label}
    :return: {"images", "objects", "difficult", "empty_images", "per_class": {name: {"images", "objects",
        "difficult"}}}
    """
    names = {label: name for name, label in label_map.items()}
    per_class = {name: {"images": 0, "objects": 0, "difficult": 0} for name in label_map if name != "background"}
    for obj in objects:
        for label in set(obj["labels"]):
            per_class[names[label]]["images"] += 1
        for label, difficult in zip(obj["labels"], obj["difficulties"]):
            per_class[names[label]]["objects"] += 1
            per_class[names[label]]["difficult"] += difficult
    return {
        "images": len(objects),
        "objects": sum(len(obj["labels"]) for obj in objects),
        "difficult": sum(sum(obj["difficulties"]) for obj in objects),
        "empty_images": sum(not obj["labels"] for obj in objects),
        "per_class": per_class,
    }


def print_statistics(statistics, label_map, out=None):
    """Print a per-class table of images and objects (difficult) in each split (to ``out``, default stdout)."""
    out = out or sys.stdout
    header = f"{'class':>16s} | {'TRAIN images':>12s} {'objects (difficult)':>20s} | " \
             f"{'TEST images':>11s} {'objects (difficult)':>20s}"
    print(header, file=out)
    print("-" * len(header), file=out)

    def row(name, train, test):
        """One line: the name, then images and objects (difficult) of TRAIN and of TEST."""
        train_objects = f"{train['objects']} ({train['difficult']})"
        test_objects = f"{test['objects']} ({test['difficult']})"
        print(f"{name:>16s} | {train['images']:>12d} {train_objects:>20s} | {test['images']:>11d} {test_objects:>20s}",
              file=out)

    for name in label_map:
        if name != "background":
            row(name, statistics["TRAIN"]["per_class"][name], statistics["TEST"]["per_class"][name])
    print("-" * len(header), file=out)
    row("total", statistics["TRAIN"], statistics["TEST"])


def _write_json(path, data):
    """Write JSON atomically (utils.write_atomically), so a crash leaves no half-written list."""
    write_atomically(path, lambda file: json.dump(data, file))


def create_data_lists(voc07_path=None, voc12_path=None, output_folder="data", classes=None, skip_bad=False,
                      out=None):
    """Parse VOC-format folders and write the TRAIN/TEST lists and the label map.

    :param voc07_path: a VOC2007-like folder (trainval -> TRAIN, test -> TEST), or None
    :param voc12_path: a VOC2012-like folder (trainval -> TRAIN), or None
    :param output_folder: where the JSON files go (created if needed)
    :param classes: None to decide automatically (VOC's 20 classes if every annotated name is one of them,
        else the names found), "voc", or a list of class names
    :param skip_bad: leave bad objects / images out (counted) instead of failing
    :param out: a file to print the report to (default stdout; problems go to stderr)
    :return: {"label_map", "label_map_source", "TRAIN": statistics, "TEST": statistics, "clipped": int,
        "skipped": {kind: count}}
    :raises DataListError: on problems without skip_bad, or when there is nothing to read
    """
    out = out or sys.stdout
    voc_folders = [(os.path.abspath(p), sets) for p, sets in ((voc07_path, VOC07_SETS), (voc12_path, VOC12_SETS))
                   if p is not None]
    if not voc_folders:
        raise DataListError("give at least one of --voc07 / --voc12 (or --toy)")

    problems = []
    annotations = _collect(voc_folders, problems)
    annotated_names = {obj["name"] for split in SPLITS for a in annotations[split] for obj in a["objects"]}
    label_map, label_map_source = choose_label_map(classes, annotated_names)
    lists = {split: _to_lists(annotations[split], label_map, problems) for split in SPLITS}

    for problem in problems:
        print(("skipped: " if skip_bad else "error: ") + str(problem), file=sys.stderr)
    if problems and not skip_bad:
        counts = Counter(p.kind for p in problems)
        raise DataListError(f"{len(problems)} problem(s) in the annotations ("
                            + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                            + f"), first: {problems[0]}; fix them or pass --skip-bad to leave them out")
    if not lists["TRAIN"][0] and not lists["TEST"][0]:
        raise DataListError("no usable images found in " + ", ".join(f for f, _ in voc_folders))

    os.makedirs(output_folder, exist_ok=True)
    for split in SPLITS:
        images, objects = lists[split]
        _write_json(os.path.join(output_folder, f"{split}_images.json"), images)
        _write_json(os.path.join(output_folder, f"{split}_objects.json"), objects)
    _write_json(os.path.join(output_folder, "label_map.json"), label_map)

    summary = {
        "label_map": label_map,
        "label_map_source": label_map_source,
        "clipped": sum(a["n_clipped"] for split in SPLITS for a in annotations[split]),
        "skipped": dict(Counter(p.kind for p in problems)),
    }
    for split in SPLITS:
        summary[split] = split_statistics(lists[split][1], label_map)

    print(f"Label map: {len(label_map) - 1} classes + background ({label_map_source}).", file=out)
    print_statistics(summary, label_map, out=out)
    print(f"Images without objects: TRAIN {summary['TRAIN']['empty_images']}, TEST {summary['TEST']['empty_images']}."
          f" Boxes clipped to their image: {summary['clipped']}.", file=out)
    if problems:
        print("Left out (--skip-bad): " + ", ".join(f"{n} {kind}" for kind, n in sorted(summary["skipped"].items()))
              + ".", file=out)
    print(f"Wrote TRAIN/TEST lists and label_map.json to {os.path.abspath(output_folder)}", file=out)
    return summary


# ---------------------------------------------------------------------------------------------------------
# The toy data set
# ---------------------------------------------------------------------------------------------------------

# Plain filled shapes, each in its own saturated colour: easy enough to learn from random init in minutes.
TOY_CLASSES = {"circle": (220, 40, 40), "square": (40, 170, 60), "triangle": (40, 70, 220)}
TOY_SIZE_RANGE = (200, 400)  # width and height of the images, drawn separately
TOY_OBJECT_SIDE = (0.3, 0.7)  # object side, as a fraction of the image's shorter side
TOY_DIFFICULT_SIDE = (0.15, 0.25)  # difficult objects are the small ones
TOY_DIFFICULT_FRACTION = 0.1
TOY_MAX_OVERLAP = 0.1  # intersection over the smaller box allowed between two objects


def _toy_background(rng, width, height):
    """A light background with a faint texture of lines, so that the network cannot key on flat colour."""
    base = tuple(rng.randint(225, 250) for _ in range(3))
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):
        shade = tuple(c - rng.randint(5, 15) for c in base)
        points = [(rng.randint(0, width), rng.randint(0, height)) for _ in range(2)]
        draw.line(points, fill=shade, width=rng.randint(1, 4))
    return image


def _draw_shape(draw, name, box, rng):
    """Draw one filled shape whose tight box is ``box`` = [x1, y1, x2, y2] (0-based, x2/y2 exclusive)."""
    x1, y1, x2, y2 = box
    colour = tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in TOY_CLASSES[name])
    if name == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=colour)
    elif name == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=colour)
    else:
        draw.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=colour)


def _overlaps_too_much(box, boxes):
    """True if ``box`` covers more than TOY_MAX_OVERLAP of itself or of any box in ``boxes``."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw > 0 and ih > 0:
            smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
            if iw * ih > TOY_MAX_OVERLAP * smaller:
                return True
    return False


def _toy_objects(rng, width, height):
    """Place 1-3 large shapes (about 10% small "difficult" ones) with little overlap.

    :return: list of (class name, [x1, y1, x2, y2] 0-based pixel box, difficult 0/1)
    """
    objects = []
    for _ in range(rng.randint(1, 3)):
        difficult = int(rng.random() < TOY_DIFFICULT_FRACTION)
        for _ in range(30):  # placement attempts; an object that does not fit is left out
            side = int(rng.uniform(*(TOY_DIFFICULT_SIDE if difficult else TOY_OBJECT_SIDE)) * min(width, height))
            x1, y1 = rng.randint(0, width - side), rng.randint(0, height - side)
            box = [x1, y1, x1 + side, y1 + side]
            if not _overlaps_too_much(box, [b for _, b, _ in objects]):
                objects.append((rng.choice(sorted(TOY_CLASSES)), box, difficult))
                break
    return objects


def _toy_xml(image_id, width, height, objects, object_counter):
    """The VOC XML of one toy image, with a few real-world quirks that the parser must take.

    Quirks, by running object number: a missing <difficult> tag, a float coordinate, a <part> sub-box,
    a class name in odd case with spaces, an empty <truncated/> tag.
    """
    lines = ["<annotation>", "  <folder>ToyVOC</folder>", f"  <filename>{image_id}.jpg</filename>",
             f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
             "  <segmented>0</segmented>"]
    for k, (name, (x1, y1, x2, y2), difficult) in enumerate(objects):
        n = object_counter + k  # running object number over the whole data set
        shown_name = f" {name.capitalize()} " if n % 17 == 8 else name
        xmax = f"{x2 - 0.37:.2f}" if n % 11 == 5 else str(x2)
        lines += ["  <object>", f"    <name>{shown_name}</name>", "    <pose>Unspecified</pose>",
                  "    <truncated/>" if n % 5 == 1 else "    <truncated>0</truncated>"]
        if difficult or n % 7 != 3:
            lines.append(f"    <difficult>{difficult}</difficult>")
        lines.append(f"    <bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                     f"<xmax>{xmax}</xmax><ymax>{y2}</ymax></bndbox>")
        if n % 13 == 2:  # a sub-box, like the head / hand parts of VOC people: not an object
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            lines.append(f"    <part><name>centre</name><bndbox><xmin>{cx}</xmin><ymin>{cy}</ymin>"
                         f"<xmax>{cx + 2}</xmax><ymax>{cy + 2}</ymax></bndbox></part>")
        lines.append("  </object>")
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def make_toy_dataset(root, n_train=64, n_test=16, seed=0):
    """Write a small synthetic VOC-format data set: red circles, green squares and blue triangles.

    Layout: root/ToyVOC/{JPEGImages, Annotations, ImageSets/Main/{trainval,test}.txt}. Images are 200-400
    pixels a side (not square), with 1-3 large shapes on a light, faintly textured background; about 10%
    of the objects are small ones marked difficult. The same seed gives the same files.

    :param root: the folder to write into
    :param n_train: number of trainval images
    :param n_test: number of test images
    :param seed: the random seed
    :return: the path of the VOC-format folder (root/ToyVOC)
    """
    rng = random.Random(seed)
    voc_folder = os.path.join(root, "ToyVOC")
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_folder, sub), exist_ok=True)

    ids = {"trainval": [], "test": []}
    object_counter = 0
    for index in range(n_train + n_test):
        image_id = f"{index + 1:06d}"
        ids["trainval" if index < n_train else "test"].append(image_id)
        width = rng.randint(*TOY_SIZE_RANGE)
        height = rng.randint(*TOY_SIZE_RANGE)
        if height == width:
            height += 37  # not square, so that the resize to 300x300 changes the aspect
        image = _toy_background(rng, width, height)
        objects = _toy_objects(rng, width, height)
        draw = ImageDraw.Draw(image)
        for name, box, _ in objects:
            _draw_shape(draw, name, box, rng)
        image.save(os.path.join(voc_folder, "JPEGImages", image_id + ".jpg"), quality=95)
        with open(os.path.join(voc_folder, "Annotations", image_id + ".xml"), "w") as f:
            f.write(_toy_xml(image_id, width, height, objects, object_counter))
        object_counter += len(objects)

    for image_set, image_ids in ids.items():
        with open(os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt"), "w") as f:
            f.write("\n".join(image_ids) + "\n")
    return voc_folder


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    """Parse the command line.

    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: the argparse namespace, checked: either ``--toy`` or at least one of ``--voc07`` / ``--voc12``
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voc07", help="VOC2007-like folder: its trainval goes to TRAIN, its test to TEST")
    parser.add_argument("--voc12", help="VOC2012-like folder: its trainval goes to TRAIN")
    parser.add_argument("--output", default="data", help="folder for the JSON lists (default: data)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names, or 'voc'; by default the 20 VOC classes if every "
                             "annotated name is one of them, else the names found in the annotations")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out (and count) bad objects and images instead of failing")
    parser.add_argument("--toy", metavar="DIR",
                        help="write a synthetic VOC-format data set to DIR/ToyVOC and its lists to DIR")
    parser.add_argument("--toy-train", type=int, default=64, help="toy trainval images (default 64)")
    parser.add_argument("--toy-test", type=int, default=16, help="toy test images (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy data set")
    args = parser.parse_args(argv)
    if args.toy and (args.voc07 or args.voc12):
        parser.error("--toy writes its own data set; do not combine it with --voc07 / --voc12")
    if not (args.toy or args.voc07 or args.voc12):
        parser.error("give --voc07 and/or --voc12, or --toy DIR")
    return args


def main(argv=None):
    """Command-line entry point; returns the exit status (0 on success, 1 on problems)."""
    args = parse_args(argv)
    voc07, output = args.voc07, args.output
    if args.toy:
        voc07, output = make_toy_dataset(args.toy, args.toy_train, args.toy_test, args.seed), args.toy
    classes = None if args.classes is None else ("voc" if args.classes.lower() == "voc" else args.classes.split(","))

    try:
        create_data_lists(voc07, args.voc12, output, classes=classes, skip_bad=args.skip_bad)
    except DataListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
