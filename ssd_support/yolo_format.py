"""Ultralytics / Roboflow YOLO detection data sets, read for create_data_lists.py --yolo, and their lists.

The layout Ultralytics documents (https://docs.ultralytics.com/datasets/detect/) and Roboflow exports::

    data.yaml            names (a list, or a dict {0: name, ...}), nc (optional), path (optional),
                         train / val / test: a folder of images, a text file listing images, or a list of those
    images/train/a.jpg   the images
    labels/train/a.txt   one line per object: "class cx cy w h", normalised to 0..1 by the image's size

The label of ``.../images/x/a.jpg`` is ``.../labels/x/a.txt``: Ultralytics' rule, the last ``/images/`` of the
path replaced by ``/labels/`` and the extension by ``.txt`` (a path without ``/images/`` has its label beside
it). An image without a label file is a background image (kept, with no objects), as Ultralytics reads it.

Paths in ``data.yaml`` are relative to its ``path`` (itself relative to the yaml's folder, else to the current
folder; where it does not exist here, written on another machine, the yaml's folder is used, said in a note), or
to the yaml's folder. As in Ultralytics, an entry ``../x`` that does not exist is also tried as ``x`` (Roboflow's
``train: ../train/images`` beside the yaml). A list file's lines are relative to the list file's folder (``./``
or not), else to the data set's root, else to the current folder. Every path goes through
:func:`ssd_support.images.resolve_written_path`, so Windows separators resolve on Linux.

Problems are ssd_support.data_lists.AnnotationProblem, as every reader's; :func:`create_yolo_data_lists` writes the
lists through ssd_support.data_lists. PyYAML (requirements.txt), Pillow through ssd_support.images.
"""

import math
import os
import sys
from collections import Counter

from ssd_support.data_lists import AnnotationProblem, DataListError, multi_frame_notes, remove_stale_validation
from ssd_support.data_lists import report_and_write, split_ids
from ssd_support.files import text_lines
from ssd_support.images import IMAGE_EXTENSIONS, UnreadableImageError, image_size_and_frames, resolve_written_path
from ssd_support.voc_format import canonical_class_name
from utils import make_label_map

YAML_NAMES = ("data.yaml", "data.yml")
# The splits of data.yaml and the lists they become (val -> VAL, which train.py --eval-every evaluates on).
SPLIT_KEYS = (("train", "TRAIN"), ("val", "VAL"), ("test", "TEST"))
# How far outside [0, 1] a normalised coordinate may be and still be read (clipped, counted): tools that write
# 6 decimals are off by at most 5e-7; 1e-3 (a third of a pixel on a 300-pixel side) covers rounding by any tool
# that rounds, and a box further out was normalised by another size (or written in pixels).
COORDINATE_TOLERANCE = 1e-3
# labelImg's YOLO mode writes the class names as classes.txt among the labels: not a label file.
LABELIMG_CLASSES_FILE = "classes.txt"


class YoloDataError(ValueError):
    """The data set cannot be read at all (no data.yaml, bad names, a split that does not exist): one line
    that names the file."""


def find_yaml(source):
    """The data.yaml of a YOLO data set.

    :param source: a data.yaml file, or the folder holding it (data.yaml or data.yml)
    :return: the yaml's path
    :raises YoloDataError: when there is none
    """
    if os.path.isfile(source):
        return source
    if os.path.isdir(source):
        for name in YAML_NAMES:
            if os.path.isfile(os.path.join(source, name)):
                return os.path.join(source, name)
        raise YoloDataError(f"{source}: no data.yaml in this folder (a YOLO export has one beside images/ and "
                            f"labels/; give the yaml itself if it has another name)")
    raise YoloDataError(f"{source}: not found (give a YOLO data set's folder or its data.yaml)")


def load_yaml(yaml_path):
    """Parse a data.yaml with PyYAML's safe loader.

    :return: the parsed mapping
    :raises YoloDataError: when PyYAML is missing, or the file is not YAML or not a mapping
    """
    try:
        import yaml  # here: only --yolo needs PyYAML
    except ImportError:
        raise YoloDataError(f"{yaml_path}: reading data.yaml needs PyYAML: pip install pyyaml") from None
    try:
        with open(yaml_path, encoding="utf-8-sig") as file:
            data = yaml.safe_load(file)
    except UnicodeDecodeError as error:
        raise YoloDataError(f"{yaml_path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(getattr(error, "problem", None) or error).split())
        raise YoloDataError(f"{yaml_path}: not valid YAML{where} ({reason})") from None
    if not isinstance(data, dict):
        raise YoloDataError(f"{yaml_path}: expected a mapping with names, train and val")
    return data


def class_names(data, yaml_path):
    """The class names of a data.yaml: ``names`` as a list, or as a dict {0: name, 1: name, ...} with the ids
    0..n-1; ``nc``, where given, must be their number.

    :return: the names, index = class id
    :raises YoloDataError: on missing, repeated or empty names, ids that are not 0..n-1, an nc that disagrees,
        or a name "background" (label 0 is "no object")
    """
    names = data.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(key) for key in names)
        except (TypeError, ValueError):
            raise YoloDataError(f"{yaml_path}: names has a key that is not a class id: {list(names)}") from None
        if ids != list(range(len(ids))):
            raise YoloDataError(f"{yaml_path}: the class ids of names must be 0..{len(ids) - 1}, got {ids}")
        names = [names[key] for key in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise YoloDataError(f"{yaml_path}: no 'names' (a list of class names, or a dict {{0: name, ...}})")
    names = [str(name).strip() for name in names]
    if "nc" in data and data["nc"] != len(names):
        raise YoloDataError(f"{yaml_path}: nc is {data['nc']} but names has {len(names)} classes")
    canonical = [canonical_class_name(name) for name in names]
    if "" in canonical or "background" in canonical or len(set(canonical)) != len(canonical):
        raise YoloDataError(f"{yaml_path}: class names must be non-empty, distinct and not 'background' "
                            f"(label 0, no object): {names}")
    return names


def _dataset_root(data, yaml_path, notes):
    """The folder data.yaml's paths are relative to: its ``path`` where that exists (relative to the yaml's
    folder, else to the current folder), else the yaml's folder (with a note when ``path`` was given)."""
    yaml_folder = os.path.dirname(os.path.abspath(yaml_path))
    written = data.get("path")
    if written is None or str(written).strip() == "":
        return yaml_folder
    written = str(written)
    for folder in (yaml_folder, os.getcwd()):
        found, _ = resolve_written_path(written, folder)
        if found is not None and os.path.isdir(found):
            return os.path.abspath(found)
    notes.append(f"Note: {yaml_path}: path {written!r} does not exist here (written on another machine?); its "
                 f"train / val / test are read relative to {yaml_folder}.")
    return yaml_folder


def _resolve_entry(written, root):
    """A train / val / test entry of data.yaml: (existing path or None, the path tried). An entry starting with
    ``../`` that does not exist is also tried without it, as Ultralytics does (Roboflow writes ``../train/images``
    in a yaml that sits beside train/)."""
    found, tried = resolve_written_path(written, root)
    if found is None and written.replace("\\", "/").startswith("../"):
        found, _ = resolve_written_path(written[3:], root)
    return (os.path.abspath(found) if found else None), tried


def _images_in_folder(folder):
    """The image files under a folder, at any depth (Ultralytics globs ``**/*.*``), sorted."""
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        found.extend(os.path.join(directory, name) for name in sorted(files)
                     if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    return found


def _images_in_list(list_path, root, problems):
    """The images a list file names, one per line (Ultralytics' train.txt). A line that names no file is a
    "missing image" problem naming the list file, its line, the path as written and the one tried.

    :return: [(image path, where it was listed)], the paths absolute
    """
    try:
        lines = text_lines(list_path)
    except UnicodeDecodeError as error:
        raise YoloDataError(f"{list_path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    list_folder = os.path.dirname(os.path.abspath(list_path))
    images = []
    for number, line in lines:
        found, first_tried = None, None
        for folder in (list_folder, root, os.getcwd()):
            found, tried = resolve_written_path(line, folder)
            first_tried = first_tried or tried
            if found is not None and os.path.isfile(found):
                break
            found = None
        if found is None:
            problems.append(AnnotationProblem("missing image", list_path, f"line {number}: {line!r} not found (tried "
                                              f"{first_tried})", image=(list_path, number)))
            continue
        images.append(os.path.abspath(found))
    return images


def split_images(data, yaml_path, root, problems):
    """The images of each split of data.yaml.

    :return: ({"TRAIN": [paths], "VAL": [...], "TEST": [...] (only the splits data.yaml has)}, {split: folders
        given as folders}, the folders of the list files, for the search for labels without images)
    :raises YoloDataError: when train or val is missing, or an entry names nothing that exists
    """
    for key in ("train", "val"):
        if not data.get(key):
            raise YoloDataError(f"{yaml_path}: no '{key}:' (Ultralytics needs train and val: a folder of images, "
                                f"a list file, or a list of those)")
    splits, folders = {}, {}
    for key, split in SPLIT_KEYS:
        entries = data.get(key)
        if not entries:
            continue
        images, folders[split] = [], []
        for written in entries if isinstance(entries, list) else [entries]:
            found, tried = _resolve_entry(str(written), root)
            if found is None:
                raise YoloDataError(f"{yaml_path}: {key}: {str(written)!r} not found (tried {tried})")
            if os.path.isdir(found):
                folders[split].append(found)
                images.extend(_images_in_folder(found))
            elif os.path.splitext(found)[1].lower() in IMAGE_EXTENSIONS:
                images.append(found)
            else:
                images.extend(_images_in_list(found, root, problems))
        splits[split] = images
    return splits, folders


def label_path(image_path):
    """Ultralytics' label file of an image: the last ``/images/`` of the path becomes ``/labels/``, the extension
    ``.txt`` (without ``/images/`` in the path, the label is beside the image).

    :param image_path: an image's path
    :return: its label file's path (which may not exist)
    """
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, separator, tail = image_path.rpartition(images)
    path = head + labels + tail if separator else image_path
    return os.path.splitext(path)[0] + ".txt"


def _image_stems(folder, cache):
    """The file stems of the images in a folder (a set), listed once per run."""
    if folder not in cache:
        names = os.listdir(folder) if os.path.isdir(folder) else []
        cache[folder] = {os.path.splitext(name)[0] for name in names
                         if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS}
    return cache[folder]


def labels_without_images(label_folders, recursive_folders, expected):
    """The label files that no image has: in the folders the labels of the listed images are in (and under
    the labels folders of the splits given as folders), the .txt files whose image (``/labels/`` -> ``/images/``,
    any image extension) does not exist. labelImg's classes.txt is not a label file.

    :param label_folders: folders to look in, not recursively
    :param recursive_folders: folders to look under, at any depth
    :param expected: the label paths of the listed images (these have an image)
    :return: [(label file, the image looked for, without its extension)], sorted
    """
    candidates = set()
    for folder in label_folders:
        if os.path.isdir(folder):
            candidates.update(os.path.join(folder, name) for name in os.listdir(folder))
    for folder in recursive_folders:
        for directory, _, files in os.walk(folder):
            candidates.update(os.path.join(directory, name) for name in files)
    labels, images = f"{os.sep}labels{os.sep}", f"{os.sep}images{os.sep}"
    orphans, cache = [], {}
    for path in sorted(candidates):
        name = os.path.basename(path)
        if not name.lower().endswith(".txt") or name == LABELIMG_CLASSES_FILE or path in expected:
            continue
        head, separator, tail = path.rpartition(labels)
        image_stem = os.path.splitext(head + images + tail if separator else path)[0]
        if os.path.basename(image_stem) not in _image_stems(os.path.dirname(image_stem), cache):
            orphans.append((path, image_stem))
    return orphans


def _number(text):
    """A finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_label_file(path, width, height, n_classes, keypoint_values=0):
    """Read one YOLO label file: each line an object, ``class cx cy w h`` normalised by the image's size.

    Also read: a sixth value (a score, as detect.py --save-scores and Ultralytics' ``save_conf`` write it;
    ignored); a segmentation polygon ``class x1 y1 x2 y2 x3 y3 ...`` (its bounding box); a pose line
    (``class cx cy w h`` then ``keypoint_values`` keypoint values; the box). Coordinates up to
    COORDINATE_TOLERANCE outside [0, 1] are clipped (counted); further out, a class id outside ``names``, a
    box of zero width or height, a line that is not numbers or has another count of them, are problems of the
    image (--skip-bad leaves it out); a line repeating an earlier one is a problem of that line alone.

    :param path: the label file
    :param width: the image's upright width in pixels (EXIF orientation applied)
    :param height: its upright height
    :param n_classes: the number of names in data.yaml
    :param keypoint_values: values per line after the box in a pose data set (data.yaml's kpt_shape product), 0
    :return: (objects [{"class_id", "box" [x1, y1, x2, y2] in 0-based pixels}], problems [AnnotationProblem],
        counts Counter with "clipped", "polygons", "scores")
    """
    try:
        lines = text_lines(path)
    except UnicodeDecodeError as error:
        return [], [AnnotationProblem("malformed label", path, f"not UTF-8 text ({error.reason} at byte "
                                                               f"{error.start})")], Counter()
    objects, problems, counts, seen = [], [], Counter(), {}
    for number, line in lines:
        where = f"line {number}"
        values = [_number(text) for text in line.split()]
        if None in values:
            problems.append(AnnotationProblem("malformed label", path, f"{where}: not numbers: {line!r}"))
            continue
        if len(values) == 5 + keypoint_values or (keypoint_values == 0 and len(values) == 6):
            kind = "box"
        elif len(values) >= 7 and len(values) % 2 == 1:
            kind = "polygon"
        else:
            problems.append(AnnotationProblem(
                "malformed label", path, f"{where}: {len(values)} values; a box is 'class cx cy w h' (5 values), "
                                               f"a polygon 'class x1 y1 x2 y2 x3 y3 ...'"))
            continue
        class_id = values[0]
        if class_id != int(class_id) or not 0 <= class_id < n_classes:
            problems.append(AnnotationProblem("class id outside names", path, f"{where}: class {values[0]:g} is "
                                              f"not a class id of names (0..{n_classes - 1})"))
            continue
        if kind == "box":
            cx, cy, w, h = values[1:5]
            if w <= 0 or h <= 0:
                problems.append(AnnotationProblem("degenerate box", path, f"{where}: zero-size box (w {w:g}, h {h:g})"))
                continue
            edges = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            checked = {"cx": cx, "cy": cy, "w": w, "h": h, "x1": edges[0], "y1": edges[1], "x2": edges[2],
                       "y2": edges[3]}
        else:
            xs, ys = values[1::2], values[2::2]
            edges = [min(xs), min(ys), max(xs), max(ys)]
            checked = {**{f"x{i + 1}": x for i, x in enumerate(xs)}, **{f"y{i + 1}": y for i, y in enumerate(ys)}}
        outside = [(name, value) for name, value in checked.items()
                   if not -COORDINATE_TOLERANCE <= value <= 1 + COORDINATE_TOLERANCE]
        if outside:
            name, value = outside[0]
            problems.append(AnnotationProblem(
                "coordinates outside [0, 1]", path,
                f"{where}: {name} {value:g} is outside [0, 1] (YOLO coordinates are fractions of the image's "
                f"size; pixels, or normalised by another size?)"))
            continue
        clipped = [min(max(value, 0.0), 1.0) for value in edges]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            problems.append(AnnotationProblem("degenerate box", path, f"{where}: zero-size box after clipping to the "
                                                                      f"image ({line!r})"))
            continue
        key = tuple(values)
        if key in seen:
            problems.append(AnnotationProblem("duplicate line", path, f"{where} repeats line {seen[key]} (the same "
                                                                      f"object twice?)", unit="object"))
            continue
        seen[key] = number
        counts["clipped"] += clipped != edges
        counts["polygons"] += kind == "polygon"
        counts["scores"] += kind == "box" and len(values) == 6 and keypoint_values == 0
        box = [clipped[0] * width, clipped[1] * height, clipped[2] * width, clipped[3] * height]
        objects.append({"class_id": int(class_id), "box": box})
    return objects, problems, counts


def _keypoint_values(data, yaml_path):
    """The values per keypoint line after the box: the product of data.yaml's kpt_shape ([17, 3] -> 51), else 0."""
    shape = data.get("kpt_shape")
    if shape is None:
        return 0
    try:
        return int(shape[0]) * int(shape[1])
    except (TypeError, ValueError, IndexError):
        raise YoloDataError(f"{yaml_path}: kpt_shape is {shape!r}, expected [keypoints, 2 or 3]") from None


def read_yolo_dataset(source):
    """Read a YOLO data set: data.yaml, its splits' images and their label files, checked.

    Each image is read once (an image listed in two splits is checked once; a bad one is left out of both).
    Its size is its upright size (EXIF orientation applied, as ssd_support.images.load_image reads it), by
    which the normalised coordinates become pixels.

    :param source: the data set's folder, or its data.yaml
    :return: dict {"yaml": path, "names": [class names], "splits": {"TRAIN": [image], "VAL": [...], "TEST": [...]
        (only the splits data.yaml has)}, "listed": {split: [every image path listed, bad ones too]}, "problems":
        [AnnotationProblem], "notes": [lines], "multi_frame": {image path: frames} of the images of more than one frame,
        "clipped": boxes clipped, "background_images": images without a label file, "polygons", "scores": lines
        read as such}; each image
        {"image": absolute path, "width", "height", "objects": [{"class_id", "box" [x1, y1, x2, y2] pixels}]}
    :raises YoloDataError: when data.yaml or a split cannot be used at all
    """
    yaml_path = find_yaml(source)
    data = load_yaml(yaml_path)
    names = class_names(data, yaml_path)
    keypoint_values = _keypoint_values(data, yaml_path)
    notes, problems = [], []
    root = _dataset_root(data, yaml_path, notes)
    listed, folders = split_images(data, yaml_path, root, problems)

    read, counts, multi_frame = {}, Counter(), {}
    for paths in listed.values():
        for image_path in paths:
            if image_path in read:
                continue
            read[image_path] = None
            label = label_path(image_path)
            try:
                width, height, n_frames = image_size_and_frames(image_path)
            except UnreadableImageError as error:
                problems.append(AnnotationProblem("unreadable image", image_path, str(error).split(": ", 1)[-1]))
                continue
            if n_frames > 1:
                multi_frame[image_path] = n_frames
            if not os.path.isfile(label):
                counts["background_images"] += 1
                read[image_path] = {"image": image_path, "width": width, "height": height, "objects": []}
                continue
            objects, label_problems, label_counts = parse_label_file(label, width, height, len(names),
                                                                    keypoint_values)
            problems.extend(label_problems)
            counts.update(label_counts)
            if any(problem.unit == "image" for problem in label_problems):
                continue
            read[image_path] = {"image": image_path, "width": width, "height": height, "objects": objects}

    expected = {label_path(path) for path in read}
    recursive = [label_path(os.path.join(folder, "x")).rsplit(os.sep, 1)[0]
                 for split_folders in folders.values() for folder in split_folders]
    for orphan, image_stem in labels_without_images({os.path.dirname(path) for path in expected}, recursive,
                                                    expected):
        problems.append(AnnotationProblem("label without image", orphan, f"label file without an image (looked for "
                                                                         f"{image_stem}.jpg, .png, ...)", unit="file"))

    if counts["background_images"]:
        notes.append(f"Note: {counts['background_images']} image(s) without a label file: background images, "
                     f"kept with no objects (as Ultralytics reads them).")
    if counts["polygons"]:
        notes.append(f"Note: {counts['polygons']} label line(s) are polygons (YOLO segmentation or oriented "
                     f"boxes): each was read as its bounding box.")
    if counts["scores"]:
        notes.append(f"Note: {counts['scores']} label line(s) have a sixth value (a score, as detect.py "
                     f"--save-scores writes it): read as boxes, the score ignored.")
    if keypoint_values:
        notes.append("Note: a pose data set (kpt_shape): each line's box was read, its keypoints ignored.")
    splits = {split: [read[path] for path in paths if read[path] is not None] for split, paths in listed.items()}
    return {"yaml": yaml_path, "names": names, "splits": splits, "listed": listed, "problems": problems,
            "notes": notes, "multi_frame": multi_frame, "clipped": counts["clipped"],
            "background_images": counts["background_images"], "polygons": counts["polygons"],
            "scores": counts["scores"]}


def _yolo_lists(images):
    """The lists of YOLO images (as ssd_support.yolo_format.read_yolo_dataset gives them): (image paths, objects
    in the JSON format), class id k as label k + 1 and every difficulty 0 (YOLO has no difficult flag)."""
    return ([image["image"] for image in images],
            [{"boxes": [obj["box"] for obj in image["objects"]],
              "labels": [obj["class_id"] + 1 for obj in image["objects"]],
              "difficulties": [0] * len(image["objects"])} for image in images])


def create_yolo_data_lists(source, output_folder="data", test_fraction=None, seed=0, skip_bad=False, out=None):
    """Read an Ultralytics / Roboflow YOLO data set and write the TRAIN / VAL / TEST lists and the label map.

    data.yaml's train, val and test become TRAIN, VAL and TEST; without a test split, VAL is also written as
    TEST (said in a note), unless ``test_fraction`` draws TEST from train (seeded, as --annotations draws it: the
    same images and seed give the same split). The label map is data.yaml's names in class-id order (class k is
    label k + 1). The checks are ssd_support.yolo_format's; a bad image (a bad line in its label file) is left out
    of every split with skip_bad.

    :param source: the data set's folder (holding data.yaml) or its yaml file
    :param output_folder: where the JSON files go
    :param test_fraction: the fraction of train drawn for TEST, 0 <= f < 1 (default 0: none)
    :param seed: the seed of that draw
    :param skip_bad: leave bad images / lines out (counted) instead of failing
    :param out: a file to print the report to
    :return: the summary dict of :func:`ssd_support.data_lists.report_and_write`, with "VAL" statistics and
        "val_is_test", "background_images", "polygons"
    :raises DataListError: when the data set cannot be read, on problems without skip_bad
    """
    out = out or sys.stdout
    test_fraction = 0.0 if test_fraction is None else test_fraction
    if not 0 <= test_fraction < 1:
        raise DataListError(f"--test-fraction {test_fraction}: must be at least 0 and below 1")
    try:
        dataset = read_yolo_dataset(source)
    except YoloDataError as error:
        raise DataListError(str(error)) from None
    splits, names, notes = dataset["splits"], dataset["names"], list(dataset["notes"])
    yaml_folder = os.path.dirname(os.path.abspath(dataset["yaml"]))
    train, test = splits["TRAIN"], list(splits.get("TEST", []))
    same_test = "TEST" in splits and [i["image"] for i in splits["TEST"]] == [i["image"] for i in splits["VAL"]]
    if same_test:
        test = []
    if test_fraction > 0:
        # Drawn among every listed train image, bad ones too, as --annotations draws among the XML files: fixing
        # one file does not move the others. Ranked by the path inside the data set, not where it lies.
        _, drawn = split_ids(dataset["listed"]["TRAIN"], test_fraction, seed,
                             key=lambda path: os.path.relpath(path, yaml_folder).replace(os.sep, "/"))
        drawn = set(drawn)
        test += [image for image in train if image["image"] in drawn]
        train = [image for image in train if image["image"] not in drawn]
    # A val that is the train images themselves (one folder for both, as detect.py --save-yolo and small
    # Ultralytics examples write): one set, not two splits, so TRAIN alone (each image in both would be a leak).
    val_is_train = dataset["listed"]["VAL"] == dataset["listed"]["TRAIN"]
    val_is_test = not val_is_train and not test and ("TEST" not in splits or same_test)
    lists = {"TRAIN": _yolo_lists(train)} if val_is_train else {"TRAIN": _yolo_lists(train),
                                                                "VAL": _yolo_lists(splits["VAL"])}
    lists["TEST"] = lists["VAL"] if val_is_test else _yolo_lists(test)
    if val_is_train:
        remove_stale_validation(output_folder)  # an earlier run's VAL would overlap this TRAIN
        notes.append(f"Note: {dataset['yaml']} has its train as val: the images are TRAIN alone (no VAL); "
                     f"--test-fraction F draws a TEST split from them.")
    if val_is_test:
        notes.append(f"Note: {dataset['yaml']} has " + ("its val as test" if same_test else "no test split")
                     + ": VAL (its val) is also written as TEST, which eval.py scores; --test-fraction F draws a "
                       "TEST split from train instead.")
    notes += multi_frame_notes(dataset["multi_frame"])
    extra = {"val_is_test": val_is_test, "background_images": dataset["background_images"],
             "polygons": dataset["polygons"]}
    source_line = f"the {len(names)} names of {os.path.basename(dataset['yaml'])}, in class-id order"
    return report_and_write(lists, make_label_map(names), source_line, dataset["clipped"], dataset["problems"],
                            skip_bad, output_folder, [dataset["yaml"]], out, notes=notes, extra=extra)
