"""Turn Pascal VOC-format folders, or COCO-format annotation files, into the JSON lists that
datasets.PascalVOCDataset reads.

    python create_data_lists.py --voc07 PATH/VOC2007 --voc12 PATH/VOC2012 --output data/voc
    python create_data_lists.py --voc07 PATH/MyData --classes cat,dog --output data/mine
    python create_data_lists.py --coco-json PATH/annotations/instances_train2017.json --coco-images PATH/train2017 \
        --coco-test-json PATH/annotations/instances_val2017.json --coco-test-images PATH/val2017 --output data/coco
    python create_data_lists.py --toy data/toy        # a small synthetic data set (toy_data.py), and its lists
    python create_data_lists.py --toy-coco data/toy_coco   # the same kind of images, in the COCO format

As in the paper, TRAIN = VOC2007 trainval + VOC2012 trainval and TEST = VOC2007 test (the image IDs come
from ImageSets/Main/{trainval,test}.txt; VOC2012's test set is not public, so only its trainval is read).
A custom VOC-format folder is passed the same way, as --voc07 (train and test) or --voc12 (train only).

COCO: --coco-json / --coco-images give the TRAIN split (an instances_*.json file and the folder its file_names
are in), --coco-test-json / --coco-test-images the TEST split; either pair alone is enough. COCO's category
ids (1..90 with gaps) become labels 1..K in increasing id order, named from the file; boxes [x, y, w, h] become
[x1, y1, x2, y2]; crowd regions (iscrowd 1) become difficult objects, which the evaluation ignores; images
without annotations are kept, with no objects.

Written to the output folder: TRAIN_images.json and TEST_images.json (lists of image paths),
TRAIN_objects.json and TEST_objects.json (per image, {"boxes": [[x1, y1, x2, y2], ...] in pixels,
"labels": [...], "difficulties": [...]}), and label_map.json ({"background": 0, class: label, ...}),
the label map that training and evaluation use.

--val-fraction F also moves a seeded random share F of the TRAIN images into VAL_images.json /
VAL_objects.json (train.py --eval-every evaluates on VAL, so that choosing a checkpoint does not tune on TEST):

    python create_data_lists.py --toy data/toy --val-fraction 0.2

Coordinates: VOC annotations number pixels from 1 and include the last pixel, so a box covering pixels
xmin..xmax (1-based) spans [xmin - 1, xmax] in the continuous, 0-based coordinates written here.

Problems (a class outside the label map, a degenerate box, a missing or unreadable image, a malformed
or missing XML file; in a COCO file, an annotation of an unknown image or category) are reported one line each,
naming the file; the run then fails unless --skip-bad is given, in which case the bad objects / images are left
out and counted. A COCO file that is missing, not JSON or without its images / annotations / categories lists
stops the run at once.
"""

import argparse
import json
import os
import random
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from PIL import Image

from toy_data import make_toy_coco_dataset, make_toy_dataset
from utils import VOC_LABELS, make_label_map, write_atomically

SPLITS = ("TRAIN", "TEST")
# Which ImageSets/Main list of each year goes into which split.
VOC07_SETS = (("trainval", "TRAIN"), ("test", "TEST"))
VOC12_SETS = (("trainval", "TRAIN"),)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_PRINTED_PROBLEMS = 50  # problem lines printed; the rest are only counted
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
    n_clipped = sum(a["n_clipped"] for split in SPLITS for a in annotations[split])
    return _report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder,
                             [folder for folder, _ in voc_folders], out)


def _report_problems(problems, skip_bad):
    """Print the problems, one line each (the first MAX_PRINTED_PROBLEMS), and fail unless skip_bad.

    :raises DataListError: when there are problems and skip_bad is False
    """
    for problem in problems[:MAX_PRINTED_PROBLEMS]:
        print(("skipped: " if skip_bad else "error: ") + str(problem), file=sys.stderr)
    if len(problems) > MAX_PRINTED_PROBLEMS:
        # A wrong image folder would otherwise print one line for each of 100,000 images.
        print(f"... and {len(problems) - MAX_PRINTED_PROBLEMS} more problem(s), counted below", file=sys.stderr)
    if problems and not skip_bad:
        counts = Counter(p.kind for p in problems)
        raise DataListError(f"{len(problems)} problem(s) in the annotations ("
                            + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                            + f"), first: {problems[0]}; fix them or pass --skip-bad to leave them out")


def _report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder, sources,
                      out):
    """Report the problems, write the five JSON files and print the per-class counts (VOC and COCO alike).

    :param lists: {split: (image paths, objects in the JSON format)}
    :param label_map: {"background": 0, name: label, ...}
    :param label_map_source: a few words saying where the label map came from
    :param n_clipped: how many boxes were clipped to their image
    :param problems: the AnnotationProblem of every bad file or object
    :param skip_bad: leave the bad ones out instead of failing
    :param output_folder: where the JSON files go
    :param sources: the folders / files read, for the "nothing usable" message
    :param out: a file to print the report to
    :return: the summary dict :func:`create_data_lists` documents
    :raises DataListError: on problems without skip_bad, or when there is nothing to write
    """
    _report_problems(problems, skip_bad)
    if not lists["TRAIN"][0] and not lists["TEST"][0]:
        raise DataListError("no usable images found in " + ", ".join(sources))

    os.makedirs(output_folder, exist_ok=True)
    for split in SPLITS:
        images, objects = lists[split]
        _write_json(os.path.join(output_folder, f"{split}_images.json"), images)
        _write_json(os.path.join(output_folder, f"{split}_objects.json"), objects)
    _write_json(os.path.join(output_folder, "label_map.json"), label_map)

    summary = {
        "label_map": label_map,
        "label_map_source": label_map_source,
        "clipped": n_clipped,
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
# A validation split drawn from TRAIN
# ---------------------------------------------------------------------------------------------------------

VAL_FILES = ("VAL_images.json", "VAL_objects.json")


def split_validation(output_folder, fraction, seed=0, out=None):
    """Move a seeded random ``fraction`` of the TRAIN images (with their objects) into a VAL split.

    Choosing a checkpoint or a setting by its TEST score tunes on the test set; train.py --eval-every
    evaluates on VAL instead when these files exist. Runs on the lists already written (by the VOC, COCO or
    any other path), so every source gets the same split. VAL keeps at least one image and TRAIN at least one.

    :param output_folder: folder holding TRAIN_images.json and TRAIN_objects.json
    :param fraction: share of the TRAIN images to move, 0 < fraction < 1
    :param seed: seed of the draw (the same seed and lists give the same split)
    :param out: a file to print the one-line report to (default stdout)
    :return: (number of VAL images, number of TRAIN images left)
    :raises DataListError: when the fraction is out of range or TRAIN has fewer than 2 images
    """
    out = out or sys.stdout
    if not 0.0 < fraction < 1.0:
        raise DataListError(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    images_path = os.path.join(output_folder, "TRAIN_images.json")
    objects_path = os.path.join(output_folder, "TRAIN_objects.json")
    with open(images_path) as file:
        images = json.load(file)
    with open(objects_path) as file:
        objects = json.load(file)
    if len(images) < 2:
        raise DataListError(f"{images_path}: {len(images)} TRAIN image(s), too few to draw a VAL split from")
    n_val = min(max(1, round(fraction * len(images))), len(images) - 1)
    # A private generator: the draw depends on the seed and the list only.
    chosen = set(random.Random(seed).sample(range(len(images)), n_val))
    keep = [i for i in range(len(images)) if i not in chosen]
    val = sorted(chosen)  # in list order, so VAL reads like the lists it came from
    _write_json(os.path.join(output_folder, "VAL_images.json"), [images[i] for i in val])
    _write_json(os.path.join(output_folder, "VAL_objects.json"), [objects[i] for i in val])
    # TRAIN last: if anything fails before, TRAIN is still whole.
    _write_json(objects_path, [objects[i] for i in keep])
    _write_json(images_path, [images[i] for i in keep])
    print(f"VAL: {n_val} images drawn from TRAIN (--val-fraction {fraction}, --val-seed {seed}); "
          f"TRAIN keeps {len(keep)}.", file=out)
    return n_val, len(keep)


def remove_stale_validation(output_folder):
    """Delete VAL lists left by an earlier run into the same folder: they would overlap the new TRAIN.

    :return: the files deleted
    """
    removed = []
    for name in VAL_FILES:
        path = os.path.join(output_folder, name)
        if os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------------------
# COCO-format annotations
# ---------------------------------------------------------------------------------------------------------

# The top-level lists of a COCO "instances" file (instances_train2017.json, ...).
COCO_KEYS = ("images", "annotations", "categories")


def load_coco_json(json_path):
    """Read a COCO-format annotation file and check that it has the three lists an instances file has.

    :param json_path: path of the file
    :return: the parsed JSON, a dict with "images", "annotations" and "categories" lists
    :raises DataListError: one line naming the file, when it is missing, not JSON or not laid out like COCO
    """
    if not os.path.isfile(json_path):
        raise DataListError(f"{json_path}: annotation file not found")
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataListError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataListError(f"{json_path}: expected a JSON object with {', '.join(COCO_KEYS)}")
    for key in COCO_KEYS:
        if not isinstance(data.get(key), list):
            raise DataListError(f"{json_path}: no {key!r} list (not a COCO instances file? test-dev image lists "
                                f"have no annotations)")
    return data


def coco_categories(data, json_path):
    """The categories of a COCO file.

    :param data: the parsed file, as :func:`load_coco_json` returns it
    :param json_path: its path, for error messages
    :return: {category id (int): name}
    :raises DataListError: on a malformed category or a repeated id or name
    """
    categories = {}
    for index, category in enumerate(data["categories"]):
        try:
            category_id, name = int(category["id"]), str(category["name"]).strip()
        except (KeyError, TypeError, ValueError):
            raise DataListError(f"{json_path}: category {index + 1} has no integer 'id' or no 'name'") from None
        if category_id in categories or name in categories.values() or not name or name == "background":
            raise DataListError(f"{json_path}: category {category_id} ({name!r}): ids and names must be unique, "
                                f"non-empty and not 'background'")
        categories[category_id] = name
    return categories


def coco_label_map(categories):
    """Contiguous labels for COCO's category ids: 1..K in increasing id order (COCO's 1..90 have gaps).

    :param categories: {category id: name}
    :return: (label map {"background": 0, name: label, ...}, {category id: label})
    """
    ids = sorted(categories)
    return make_label_map(categories[i] for i in ids), {category_id: k + 1 for k, category_id in enumerate(ids)}


def _coco_images(data, json_path, images_folder, problems):
    """The images of a COCO file: where each is and how large, checking that its file exists.

    :return: {image id: {"image": absolute path, "width", "height", "objects": []}} in file order; images with a
        problem (a malformed entry, a repeated id, a missing file) are reported in ``problems`` and left out
    """
    images = {}
    for index, entry in enumerate(data["images"]):
        try:
            image_id, file_name = entry["id"], str(entry["file_name"])
            width, height = entry.get("width"), entry.get("height")
        except (KeyError, TypeError, AttributeError):
            problems.append(AnnotationProblem("malformed entry", json_path,
                                              f"image {index + 1} has no 'id' or no 'file_name'"))
            continue
        path = os.path.abspath(os.path.join(images_folder, file_name))
        if image_id in images:
            problems.append(AnnotationProblem("malformed entry", json_path, f"image id {image_id} appears twice"))
            continue
        if not os.path.isfile(path):
            problems.append(AnnotationProblem("missing image", json_path,
                                              f"image {image_id}: {path} not found"))
            continue
        if not (isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0):
            try:  # COCO files give the size; other tools may not. The header alone says it.
                width, height = image_size(path)
            except AnnotationProblem as problem:
                problems.append(problem)
                continue
        images[image_id] = {"image": path, "width": width, "height": height, "objects": []}
    return images


def _coco_object(annotation, images, categories, json_path):
    """Check one COCO annotation and turn it into an object of its image.

    COCO boxes are [x, y, width, height] in continuous pixel coordinates (0-based, no VOC "+1"); here they become
    [x1, y1, x2, y2], clipped to the image. Crowd regions (iscrowd 1: many people, a pile of bananas) become
    difficult objects, which the VOC metric ignores as COCO's does.

    :return: (image id, {"category_id", "box", "difficult"}, clipped: bool)
    :raises AnnotationProblem: when the annotation cannot be used (its kind says why)
    """
    where = f"annotation {annotation.get('id', '?')}" if isinstance(annotation, dict) else "an annotation"
    try:
        image_id, category_id = annotation["image_id"], annotation["category_id"]
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        raise AnnotationProblem("malformed entry", json_path,
                                f"{where} has no 'image_id', no 'category_id' or no 'bbox' of 4 numbers") from None
    if image_id not in images:
        raise AnnotationProblem("unknown image", json_path, f"{where}: image_id {image_id} is not in 'images'")
    if category_id not in categories:
        raise AnnotationProblem("unknown category", json_path,
                                f"{where}: category_id {category_id} is not in 'categories'")
    width, height = images[image_id]["width"], images[image_id]["height"]
    box = [x, y, x + w, y + h]
    clipped = [min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
               min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise AnnotationProblem("degenerate box", json_path,
                                f"{where} (image {image_id}) has an empty box (bbox [{x:g}, {y:g}, {w:g}, {h:g}]) "
                                f"in a {width}x{height} image")
    obj = {"category_id": category_id, "box": clipped, "difficult": int(bool(annotation.get("iscrowd", 0)))}
    return image_id, obj, clipped != box


def read_coco_split(json_path, images_folder, problems):
    """Read one COCO-format annotation file and its image folder.

    Images without annotations are kept, with no objects, as the VOC path keeps them (COCO has about 1% of
    them; they teach the background).

    :param json_path: a COCO instances file
    :param images_folder: the folder its "file_name"s are relative to
    :param problems: a list that the AnnotationProblem of every bad image or annotation is appended to
    :return: (categories {id: name}, images {image id: {"image", "width", "height", "objects": [{"category_id",
        "box" [x1, y1, x2, y2] pixels, "difficult"}]}}, number of boxes clipped to their image)
    :raises DataListError: when the file or the folder cannot be used at all
    """
    data = load_coco_json(json_path)
    if not os.path.isdir(images_folder):
        raise DataListError(f"{images_folder}: image folder not found (the images of {json_path})")
    categories = coco_categories(data, json_path)
    images = _coco_images(data, json_path, images_folder, problems)
    image_ids = {entry.get("id") for entry in data["images"] if isinstance(entry, dict)}
    n_clipped = 0
    for annotation in data["annotations"]:
        try:
            image_id, obj, clipped = _coco_object(annotation, images, categories, json_path)
        except AnnotationProblem as problem:
            # The annotations of an image that was itself left out (e.g. its file is missing) go with it.
            if not (problem.kind == "unknown image" and annotation.get("image_id") in image_ids):
                problems.append(problem)
            continue
        images[image_id]["objects"].append(obj)
        n_clipped += clipped
    return categories, images, n_clipped


def create_coco_data_lists(train_json=None, train_images=None, test_json=None, test_images=None,
                           output_folder="data", skip_bad=False, out=None):
    """Read COCO-format annotation files and write the same TRAIN/TEST lists and label map as the VOC path.

    :param train_json: the COCO file of the TRAIN split (e.g. instances_train2017.json), or None
    :param train_images: its image folder (e.g. train2017/)
    :param test_json: the COCO file of the TEST split (e.g. instances_val2017.json), or None
    :param test_images: its image folder (e.g. val2017/)
    :param output_folder: where the JSON files go (created if needed)
    :param skip_bad: leave bad annotations / images out (counted) instead of failing
    :param out: a file to print the report to (default stdout; problems go to stderr)
    :return: the summary dict of :func:`create_data_lists`
    :raises DataListError: on bad files, on problems without skip_bad, or when the two files' categories disagree
    """
    out = out or sys.stdout
    splits = [(split, json_path, folder) for split, json_path, folder in
              (("TRAIN", train_json, train_images), ("TEST", test_json, test_images)) if json_path is not None]
    if not splits:
        raise DataListError("give --coco-json and/or --coco-test-json (or --toy-coco)")

    problems, categories, read = [], {}, {}
    for split, json_path, folder in splits:
        split_categories, images, n_clipped = read_coco_split(json_path, folder, problems)
        for category_id, name in split_categories.items():
            if categories.get(category_id, name) != name:
                raise DataListError(f"{json_path}: category {category_id} is {name!r} here but "
                                    f"{categories[category_id]!r} in {splits[0][1]}")
        categories.update(split_categories)
        read[split] = (images, n_clipped)
    if len(set(categories.values())) != len(categories):
        raise DataListError(f"{splits[-1][1]}: the files give one category name two ids")

    label_map, labels = coco_label_map(categories)
    lists = {split: ([], []) for split in SPLITS}
    for split, (images, _) in read.items():
        for image in images.values():
            lists[split][0].append(image["image"])
            lists[split][1].append({"boxes": [obj["box"] for obj in image["objects"]],
                                    "labels": [labels[obj["category_id"]] for obj in image["objects"]],
                                    "difficulties": [obj["difficult"] for obj in image["objects"]]})
    source = f"the {len(categories)} categories of the COCO file(s), in category-id order"
    n_clipped = sum(n for _, n in read.values())
    return _report_and_write(lists, label_map, source, n_clipped, problems, skip_bad, output_folder,
                             [json_path for _, json_path, _ in splits], out)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    """Parse the command line.

    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: the argparse namespace, checked: exactly one source of data: --toy, --toy-coco, VOC folders
        (--voc07 / --voc12) or COCO files (--coco-json / --coco-test-json, each with its image folder)
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voc07", help="VOC2007-like folder: its trainval goes to TRAIN, its test to TEST")
    parser.add_argument("--voc12", help="VOC2012-like folder: its trainval goes to TRAIN")
    coco = parser.add_argument_group("COCO-format data (instead of VOC folders)")
    coco.add_argument("--coco-json", metavar="FILE",
                      help="COCO instances file of the TRAIN split, e.g. annotations/instances_train2017.json")
    coco.add_argument("--coco-images", metavar="DIR", help="the image folder of --coco-json, e.g. train2017")
    coco.add_argument("--coco-test-json", metavar="FILE",
                      help="COCO instances file of the TEST split, e.g. annotations/instances_val2017.json")
    coco.add_argument("--coco-test-images", metavar="DIR", help="the image folder of --coco-test-json, e.g. val2017")
    parser.add_argument("--output", default="data", help="folder for the JSON lists (default: data)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names, or 'voc'; by default the 20 VOC classes if every "
                             "annotated name is one of them, else the names found in the annotations")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out (and count) bad objects and images instead of failing")
    parser.add_argument("--toy", metavar="DIR",
                        help="write a synthetic VOC-format data set to DIR/ToyVOC and its lists to DIR")
    parser.add_argument("--toy-coco", metavar="DIR",
                        help="write the synthetic data set in the COCO format to DIR/ToyCOCO and its lists to DIR")
    parser.add_argument("--toy-train", type=int, default=64, help="toy trainval images (default 64)")
    parser.add_argument("--toy-test", type=int, default=16, help="toy test images (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy data set")
    parser.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help="move this share of the TRAIN images (seeded, at random) into a VAL split "
                             "(VAL_images.json, VAL_objects.json), which train.py --eval-every evaluates on")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the --val-fraction draw (default 0)")
    args = parser.parse_args(argv)
    for json_option, folder_option in (("coco_json", "coco_images"), ("coco_test_json", "coco_test_images")):
        if (getattr(args, json_option) is None) != (getattr(args, folder_option) is None):
            parser.error(f"--{json_option.replace('_', '-')} and --{folder_option.replace('_', '-')} go together")
    sources = [name for name, given in (("--toy", args.toy), ("--toy-coco", args.toy_coco),
                                        ("--voc07 / --voc12", args.voc07 or args.voc12),
                                        ("--coco-json / --coco-test-json", args.coco_json or args.coco_test_json))
               if given]
    if len(sources) != 1:
        parser.error("give one source of data: --voc07 and/or --voc12, --coco-json and/or --coco-test-json, "
                     "--toy DIR or --toy-coco DIR" + (f" (not {' and '.join(sources)})" if sources else ""))
    if args.classes is not None and (args.toy_coco or args.coco_json or args.coco_test_json):
        parser.error("--classes is for VOC folders; a COCO file's categories make the label map")
    if args.val_fraction is not None and not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be between 0 and 1 (exclusive), got {args.val_fraction}")
    return args


def apply_val_fraction(output_folder, fraction, seed):
    """After the lists are written: draw the VAL split (``fraction`` given), or else delete an older VAL split.

    :param output_folder: the folder the lists went to
    :param fraction: --val-fraction, or None
    :param seed: --val-seed
    """
    if fraction is not None:
        split_validation(output_folder, fraction, seed)
        return
    for path in remove_stale_validation(output_folder):
        print(f"Removed {path}: an earlier --val-fraction split, which the new TRAIN list may overlap.")


def main(argv=None):
    """Command-line entry point; returns the exit status (0 on success, 1 on problems)."""
    args = parse_args(argv)
    voc07, output = args.voc07, args.output
    if args.toy:
        voc07, output = make_toy_dataset(args.toy, args.toy_train, args.toy_test, args.seed), args.toy
    classes = None if args.classes is None else ("voc" if args.classes.lower() == "voc" else args.classes.split(","))

    try:
        if args.toy_coco:
            output = args.toy_coco
            paths = make_toy_coco_dataset(args.toy_coco, args.toy_train, args.toy_test, args.seed)
            create_coco_data_lists(output_folder=args.toy_coco, skip_bad=args.skip_bad, **paths)
        elif args.coco_json or args.coco_test_json:
            create_coco_data_lists(args.coco_json, args.coco_images, args.coco_test_json, args.coco_test_images,
                                   output, skip_bad=args.skip_bad)
        else:
            create_data_lists(voc07, args.voc12, output, classes=classes, skip_bad=args.skip_bad)
        apply_val_fraction(output, args.val_fraction, args.val_seed)
    except DataListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
