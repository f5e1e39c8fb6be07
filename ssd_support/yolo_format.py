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

A data set from elsewhere is bounded (issue 32): data.yaml at most MAX_YAML_BYTES and without YAML aliases; a
label file at most MAX_LABEL_FILE_BYTES and MAX_OBJECTS_PER_IMAGE lines (ssd_support/limits.py), a list file at
most MAX_LIST_FILE_BYTES, each a regular file (not a device or FIFO), read a line at a time; a file's first
MAX_PROBLEMS_PER_FILE problems are kept, the others counted. The lines and values of a file outside the data
set's folder (:func:`data_set_folder`: a label linked elsewhere, a ``train:`` naming a file elsewhere) are read
but never quoted in a problem. Two images of one stem (``a.jpg``, ``a.png``) that would share one label file are
a problem naming both.

Problems are ssd_support.data_lists.AnnotationProblem, as every reader's; :func:`create_yolo_data_lists` writes the
lists through ssd_support.data_lists. PyYAML (requirements.txt), Pillow through ssd_support.images.
"""

import datetime
import math
import os
import sys
from collections import Counter

from ssd_support.data_lists import AnnotationProblem, DataListError, canonical_class_name, multi_frame_notes
from ssd_support.data_lists import remove_stale_validation, report_and_write, split_ids
from ssd_support.files import read_bounded_text, text_lines
from ssd_support.images import IMAGE_EXTENSIONS, UnreadableImageError, image_size_and_frames, resolve_written_path
from ssd_support.limits import MAX_LIST_FILE_BYTES, MAX_OBJECTS_PER_IMAGE

YAML_NAMES = ("data.yaml", "data.yml")
# The splits of data.yaml and the lists they become (val -> VAL, which train.py --eval-every evaluates on).
SPLIT_KEYS = (("train", "TRAIN"), ("val", "VAL"), ("test", "TEST"))
# How far outside [0, 1] a normalised coordinate may be and still be read (clipped, counted): tools that write
# 6 decimals are off by at most 5e-7; 1e-3 (a third of a pixel on a 300-pixel side) covers rounding by any tool
# that rounds, and a box further out was normalised by another size (or written in pixels).
COORDINATE_TOLERANCE = 1e-3
# labelImg's YOLO mode writes the class names as classes.txt among the labels: not a label file.
LABELIMG_CLASSES_FILE = "classes.txt"
# Bounds on a data set from elsewhere (issue 32), each refused in one line naming the file. A data.yaml is a few
# hundred bytes (Ultralytics' coco.yaml, with its download script, is 3 KB; LVIS' 1203 names are 30 KB).
MAX_YAML_BYTES = 1 << 20
# A label file: MAX_OBJECTS_PER_IMAGE (ssd_support/limits.py) lines of boxes is ~50 KB; of detailed segmentation
# polygons (a few hundred points each) a few MB.
MAX_LABEL_FILE_BYTES = 8 << 20
# Problems kept for one label or list file; the others are counted in one more line. A file of garbage would
# otherwise keep an object per line (~280x the file's size in memory), though only the first 50 are printed.
MAX_PROBLEMS_PER_FILE = 10
# Characters of a line quoted in a problem (a line may be megabytes long).
QUOTED_CHARACTERS = 60
# Ultralytics' image formats that Pillow does not read here: files with these extensions in a split's folder are
# problems, not silently left out.
UNREAD_IMAGE_EXTENSIONS = (".dng", ".heic", ".heif", ".avif", ".pfm", ".jxl")


class YoloDataError(ValueError):
    """The data set cannot be read at all (no data.yaml, bad names, a split that does not exist): one line
    that names the file."""


def _quote(text):
    """``repr(text)``, cut to QUOTED_CHARACTERS characters (a problem is one line, and lines can be megabytes)."""
    text = str(text)
    return repr(text) if len(text) <= QUOTED_CHARACTERS else repr(text[:QUOTED_CHARACTERS]) + "..."


def data_set_folder(yaml_path):
    """The folder a data set's files are trusted in: the real path (links resolved) of its data.yaml's folder,
    the folder given to --yolo. Lines of files outside it (a label file linked to /etc/shadow, a ``train:``
    naming a file elsewhere) are never quoted in a problem: a data set from elsewhere must not make this tool
    print the content of the user's other files."""
    return os.path.realpath(os.path.dirname(os.path.abspath(yaml_path)))


def inside(path, folder):
    """Whether ``path``, links resolved, is ``folder`` (a real path) or lies under it."""
    real = os.path.realpath(path)
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


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


def _no_alias_loader(yaml):
    """A PyYAML SafeLoader class that refuses aliases (``*name``): nested aliases expand exponentially (nine
    levels of nine: 387 million strings from 400 bytes, "billion laughs"), and a data.yaml has no need of them.
    It reads the class names as written (:meth:`NoAliasLoader.construct_document`)."""

    class NoAliasLoader(yaml.SafeLoader):
        """yaml.SafeLoader, an alias a composer error at its line, the names as written."""

        def construct_document(self, node):
            """SafeLoader's document, with each entry of ``names`` that YAML 1.1 reads as a boolean or a number
            replaced by its text as written: ``names: [no, yes]`` are the classes "no" and "yes", not False and
            True (then named "False" and "True"); ``1e3`` stays "1e3", ``12:30`` (base 60: 750) "12:30"."""
            data = super().construct_document(node)
            if isinstance(data, dict) and isinstance(node, yaml.MappingNode):
                # The last ``names`` key is the one loaded, as in a mapping of Python; node.value holds a merge
                # key's (``<<``) entries too, before the mapping's own (SafeLoader's flatten_mapping).
                names_nodes = [value_node for key_node, value_node in node.value
                               if isinstance(key_node, yaml.ScalarNode) and key_node.value == "names"]
                if names_nodes:
                    data["names"] = self._names_as_written(data.get("names"), names_nodes[-1])
            return data

        def _names_as_written(self, names, node):
            """``names`` (a list, or a dict {id: name}) with its typed scalar entries as their source text."""
            def as_written(value, entry_node):
                typed = isinstance(value, (bool, int, float, datetime.date))  # a date: 2001-12-14
                return entry_node.value if typed and isinstance(entry_node, yaml.ScalarNode) else value

            if isinstance(names, list) and isinstance(node, yaml.SequenceNode):
                return [as_written(value, entry) for value, entry in zip(names, node.value)]
            if isinstance(names, dict) and isinstance(node, yaml.MappingNode):
                # The id as loaded (0, not "0"; hashable: it was loaded once); a repeated id: its last entry.
                entries = {self.construct_object(key_node): entry for key_node, entry in node.value}
                return {key: as_written(value, entries[key]) for key, value in names.items()}
            return names

        def compose_node(self, parent, index):
            """SafeLoader's compose_node, refusing an alias before it is resolved."""
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"an alias (*{event.anchor[:QUOTED_CHARACTERS]}): aliases are not read in a "
                                f"data.yaml (nested ones expand exponentially)", event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def load_yaml(yaml_path):
    """Parse a data.yaml with PyYAML's safe loader, without aliases, at most MAX_YAML_BYTES.

    :return: the parsed mapping
    :raises YoloDataError: when PyYAML is missing, or the file is too large, not YAML (an alias included), nested
        too deeply or not a mapping
    """
    try:
        import yaml  # here: only --yolo needs PyYAML
    except ImportError:
        raise YoloDataError(f"{yaml_path}: reading data.yaml needs PyYAML: pip install pyyaml") from None
    try:
        text = read_bounded_text(yaml_path, MAX_YAML_BYTES)
        data = yaml.load(text, Loader=_no_alias_loader(yaml))
    except ValueError as error:
        raise YoloDataError(f"{yaml_path}: {error}") from None
    except OSError as error:
        raise YoloDataError(f"{yaml_path}: cannot be read ({error.strerror})") from None
    except RecursionError:
        raise YoloDataError(f"{yaml_path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(getattr(error, "problem", None) or error).split())[:200]
        raise YoloDataError(f"{yaml_path}: not valid YAML{where} ({reason})") from None
    if not isinstance(data, dict):
        raise YoloDataError(f"{yaml_path}: expected a mapping with names, train and val")
    return data


def class_names(data, yaml_path):
    """The class names of a data.yaml: ``names`` as a list, or as a dict {0: name, 1: name, ...} with the ids
    0..n-1; ``nc``, where given, must be their number.

    :return: the names, index = class id
    :raises YoloDataError: on missing, repeated or empty names, a name that is not a string or a number (null, a
        list, a mapping: the line names its class id), ids that are not 0..n-1, an nc that disagrees, or a name
        "background" (label 0 is "no object")
    """
    names = data.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(key) for key in names)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an id of .inf
            raise YoloDataError(f"{yaml_path}: names has a key that is not a class id: {_quote(list(names))}") from None
        if ids != list(range(len(ids))):
            raise YoloDataError(f"{yaml_path}: the class ids of names must be 0..{len(ids) - 1}, got {ids}")
        names = [names[key] for key in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise YoloDataError(f"{yaml_path}: no 'names' (a list of class names, or a dict {{0: name, ...}})")
    for index, name in enumerate(names):
        # YAML gives None for an empty entry or ``null`` (str() would make a class named "None"), lists and
        # mappings for nested entries: only strings and numbers are names.
        if not isinstance(name, (str, int, float)):
            kind = ("null (empty)" if name is None else "a list" if isinstance(name, list)
                    else "a mapping" if isinstance(name, dict) else f"a {type(name).__name__}")
            raise YoloDataError(f"{yaml_path}: names: the class name of id {index} is {kind}, not a name")
    names = [str(name).strip() for name in names]
    if "nc" in data and data["nc"] != len(names):
        raise YoloDataError(f"{yaml_path}: nc is {data['nc']} but names has {len(names)} classes")
    canonical = [canonical_class_name(name) for name in names]
    if "" in canonical or "background" in canonical or len(set(canonical)) != len(canonical):
        raise YoloDataError(f"{yaml_path}: class names must be non-empty, distinct and not 'background' "
                            f"(label 0, no object): {_quote(names)}")
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
    notes.append(f"Note: {yaml_path}: path {_quote(written)} does not exist here (written on another machine?); its "
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


def _images_in_folder(folder, problems):
    """The image files under a folder, at any depth (Ultralytics globs ``**/*.*``), sorted. A file of an image
    format Ultralytics reads and Pillow does not here (UNREAD_IMAGE_EXTENSIONS: .heic, .dng, ...) is an
    "unreadable image" problem, not silently left out.

    :return: the image paths
    """
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        for name in sorted(files):
            extension = os.path.splitext(name)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                found.append(os.path.join(directory, name))
            elif extension in UNREAD_IMAGE_EXTENSIONS:
                problems.append(AnnotationProblem("unreadable image", os.path.join(directory, name),
                                                  f"{extension} images are not read here (convert them to .jpg or "
                                                  f".png)"))
    return found


def _images_in_list(list_path, root, trusted, problems):
    """The images a list file names, one per line (Ultralytics' train.txt). A line that names no file is a
    "missing image" problem naming the list file, its line, the path as written and the one tried (the
    first MAX_PROBLEMS_PER_FILE; then one line counting the others). The lines of a list file outside the data
    set's folder ``trusted`` (data_set_folder) are not quoted.

    :return: the image paths, absolute
    :raises YoloDataError: when the list is not a regular file, larger than MAX_LIST_FILE_BYTES or not text
    """
    try:
        text = read_bounded_text(list_path, MAX_LIST_FILE_BYTES)
    except ValueError as error:
        raise YoloDataError(f"{list_path}: {error}") from None
    except OSError as error:
        raise YoloDataError(f"{list_path}: cannot be read ({error.strerror})") from None
    quote = inside(list_path, trusted)
    list_folder = os.path.dirname(os.path.abspath(list_path))
    images, n_missing = [], 0
    for number, line in text_lines(text):
        found, first_tried = None, None
        for folder in (list_folder, root, os.getcwd()):
            found, tried = resolve_written_path(line, folder)
            first_tried = first_tried or tried
            if found is not None and os.path.isfile(found):
                break
            found = None
        if found is None:
            n_missing += 1
            if n_missing <= MAX_PROBLEMS_PER_FILE:
                what = (f"{_quote(line)} not found (tried {first_tried})" if quote else
                        f"names no image file (not quoted: the list lies outside the data set's folder {trusted})")
                problems.append(AnnotationProblem("missing image", list_path, f"line {number}: {what}",
                                                  image=(list_path, number)))
            continue
        images.append(os.path.abspath(found))
    if n_missing > MAX_PROBLEMS_PER_FILE:
        problems.append(AnnotationProblem("missing image", list_path, f"... and {n_missing - MAX_PROBLEMS_PER_FILE} "
                                          f"more line(s) naming no image file (the first {MAX_PROBLEMS_PER_FILE} "
                                          f"are listed)", image=(list_path, "more")))
    return images


def split_images(data, yaml_path, root, problems, trusted=None):
    """The images of each split of data.yaml.

    :return: ({"TRAIN": [paths], "VAL": [...], "TEST": [...] (only the splits data.yaml has)}, {split: folders
        given as folders}, the folders of the list files, for the search for labels without images)
    :param trusted: the data set's folder (data_set_folder; default: the yaml's): list files outside it are read,
        their lines not quoted
    :raises YoloDataError: when train or val is missing, or an entry names nothing that exists, or something
        that is neither a folder, an image nor a list file (a device, /dev/zero)
    """
    trusted = trusted or data_set_folder(yaml_path)
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
                wildcard = " (wildcards are not read: give the folder, or a list file)" if "*" in str(written) else ""
                raise YoloDataError(f"{yaml_path}: {key}: {_quote(written)} not found (tried {tried})"
                                    f"{wildcard}")
            if os.path.isdir(found):
                folders[split].append(found)
                images.extend(_images_in_folder(found, problems))
            elif not os.path.isfile(found):
                raise YoloDataError(f"{yaml_path}: {key}: {found} is not a folder, an image or a list file")
            elif os.path.splitext(found)[1].lower() in IMAGE_EXTENSIONS:
                images.append(found)
            else:
                images.extend(_images_in_list(found, root, trusted, problems))
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


def shared_labels(image_paths):
    """The label files that two images or more would read: ``a.jpg`` and ``a.png`` in one folder have one label,
    ``a.txt`` (Ultralytics would give both its boxes). Only label files that exist: without one, both images are
    background images, which no label contradicts.

    :param image_paths: image paths (repeats are one image)
    :return: {label path: [image paths, sorted]} for each label file shared
    """
    by_label = {}
    for path in set(image_paths):
        by_label.setdefault(label_path(path), []).append(path)
    return {label: sorted(paths) for label, paths in by_label.items() if len(paths) > 1 and os.path.lexists(label)}


def _image_stems(folder, cache):
    """The file stems of the images in a folder (a set), listed once per run."""
    if folder not in cache:
        names = os.listdir(folder) if os.path.isdir(folder) else []
        cache[folder] = {os.path.splitext(name)[0] for name in names
                         if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS + UNREAD_IMAGE_EXTENSIONS}
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


class _BadLine(Exception):
    """A label line that is not read: its problem's kind, what is wrong (quoting the line's values) and unit."""

    def __init__(self, kind, detail, unit="image"):
        """:param kind: AnnotationProblem's kind; detail: what is wrong; unit: AnnotationProblem's unit"""
        super().__init__(detail)
        self.kind, self.detail, self.unit = kind, detail, unit


def _read_label_line(line, n_classes, keypoint_values):
    """One label line: ``class cx cy w h`` (with a score, or keypoints), or a polygon.

    :return: (class id, edges [x1, y1, x2, y2] as fractions, clipped to [0, 1], "box" / "polygon" / "score", whether
        clipped, the line's values)
    :raises _BadLine: on anything else
    """
    values = [_number(text) for text in line.split()]
    if None in values:
        raise _BadLine("malformed label", f"not numbers: {_quote(line)}")
    if len(values) == 5 + keypoint_values or (keypoint_values == 0 and len(values) == 6):
        kind = "score" if keypoint_values == 0 and len(values) == 6 else "box"
    elif len(values) >= 7 and len(values) % 2 == 1:
        kind = "polygon"
    else:
        raise _BadLine("malformed label", f"{len(values)} values; a box is 'class cx cy w h' (5 values), a polygon "
                                          f"'class x1 y1 x2 y2 x3 y3 ...'")
    class_id = values[0]
    if class_id != int(class_id) or not 0 <= class_id < n_classes:
        raise _BadLine("class id outside names", f"class {values[0]:g} is not a class id of names "
                                                 f"(0..{n_classes - 1})")
    if kind != "polygon":
        cx, cy, w, h = values[1:5]
        if w <= 0 or h <= 0:
            raise _BadLine("degenerate box", f"zero-size box (w {w:g}, h {h:g})")
        edges = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        checked = {"cx": cx, "cy": cy, "w": w, "h": h, "x1": edges[0], "y1": edges[1], "x2": edges[2], "y2": edges[3]}
    else:
        xs, ys = values[1::2], values[2::2]
        edges = [min(xs), min(ys), max(xs), max(ys)]
        checked = {**{f"x{i + 1}": x for i, x in enumerate(xs)}, **{f"y{i + 1}": y for i, y in enumerate(ys)}}
    outside = [(name, value) for name, value in checked.items()
               if not -COORDINATE_TOLERANCE <= value <= 1 + COORDINATE_TOLERANCE]
    if outside:
        name, value = outside[0]
        raise _BadLine("coordinates outside [0, 1]", f"{name} {value:g} is outside [0, 1] (YOLO coordinates are "
                                                     f"fractions of the image's size; pixels, or normalised by "
                                                     f"another size?)")
    clipped = [min(max(value, 0.0), 1.0) for value in edges]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise _BadLine("degenerate box", f"zero-size box after clipping to the image ({_quote(line)})")
    return int(class_id), clipped, kind, clipped != edges, tuple(values)


def parse_label_file(path, width, height, n_classes, keypoint_values=0, trusted=None, image=None):
    """Read one YOLO label file: each line an object, ``class cx cy w h`` normalised by the image's size.

    Also read: a sixth value (a score, as detect.py --save-scores and Ultralytics' ``save_conf`` write it;
    ignored); a segmentation polygon ``class x1 y1 x2 y2 x3 y3 ...`` (its bounding box); a pose line
    (``class cx cy w h`` then ``keypoint_values`` keypoint values; the box). Coordinates up to
    COORDINATE_TOLERANCE outside [0, 1] are clipped (counted); further out, a class id outside ``names``, a
    box of zero width or height, a line that is not numbers or has another count of them, are problems of the
    image (--skip-bad leaves it out); a line repeating an earlier one is a problem of that line alone.

    Bounded on a file from elsewhere: a file that is not a regular file, larger than MAX_LABEL_FILE_BYTES or not
    text is one problem; more than MAX_OBJECTS_PER_IMAGE lines is one problem naming the image and the count
    (the lines after the bound are counted, not read); the first MAX_PROBLEMS_PER_FILE problems are kept, the
    others counted in one more problem. A file outside ``trusted`` (a link out of the data set, or a layout
    whose labels lie elsewhere) is read, but its problems never quote its lines or values.

    :param path: the label file
    :param width: the image's upright width in pixels (EXIF orientation applied)
    :param height: its upright height
    :param n_classes: the number of names in data.yaml
    :param keypoint_values: values per line after the box in a pose data set (data.yaml's kpt_shape product), 0
    :param trusted: the data set's folder (data_set_folder), or None to quote every file
    :param image: the image's path, for the message of too many objects (default: the label file's)
    :return: (objects [{"class_id", "box" [x1, y1, x2, y2] in 0-based pixels}], problems [AnnotationProblem],
        counts Counter with "clipped", "polygons", "scores")
    """
    quote = trusted is None or inside(path, trusted)
    try:
        lines = text_lines(read_bounded_text(path, MAX_LABEL_FILE_BYTES))
        objects, problems, counts, seen, more, n_lines = [], [], Counter(), {}, Counter(), 0
        for number, line in lines:
            n_lines += 1
            if n_lines > MAX_OBJECTS_PER_IMAGE:
                continue  # only counted: the image is refused below
            try:
                class_id, edges, kind, clipped, key = _read_label_line(line, n_classes, keypoint_values)
                if key in seen:
                    raise _BadLine("duplicate line", f"repeats line {seen[key]} (the same object twice?)", "object")
            except _BadLine as bad:
                if len(problems) >= MAX_PROBLEMS_PER_FILE:
                    more[bad.kind] += 1
                    continue
                detail = bad.detail if quote else f"{bad.kind} (not quoted: the file lies outside the data set's " \
                                                  f"folder {trusted})"
                separator = " " if bad.kind == "duplicate line" and quote else ": "  # "line 3 repeats line 1"
                problems.append(AnnotationProblem(bad.kind, path, f"line {number}{separator}{detail}", unit=bad.unit))
                continue
            seen[key] = number
            counts["clipped"] += clipped
            counts["polygons"] += kind == "polygon"
            counts["scores"] += kind == "score"
            objects.append({"class_id": class_id, "box": [edges[0] * width, edges[1] * height, edges[2] * width,
                                                          edges[3] * height]})
    except (OSError, ValueError) as error:  # read_bounded_text's one line; a decoding error in the middle
        reason = f"not UTF-8 text ({error.reason})" if isinstance(error, UnicodeDecodeError) else \
            (str(error) if isinstance(error, ValueError) else f"cannot be read ({error.strerror})")
        return [], [AnnotationProblem("malformed label", path, reason)], Counter()
    if more:
        problems.append(AnnotationProblem("malformed label", path, f"... and {sum(more.values())} more bad line(s) ("
                                          + ", ".join(f"{n} {kind}" for kind, n in sorted(more.items()))
                                          + f"; a file's first {MAX_PROBLEMS_PER_FILE} are listed)"))
    if n_lines > MAX_OBJECTS_PER_IMAGE:
        problems.append(AnnotationProblem("too many objects", path, f"{n_lines} lines (objects) for {image or path}, "
                                          f"more than MAX_OBJECTS_PER_IMAGE ({MAX_OBJECTS_PER_IMAGE}, "
                                          f"ssd_support/limits.py)"))
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
    trusted = data_set_folder(yaml_path)
    listed, folders = split_images(data, yaml_path, root, problems, trusted)
    shared = shared_labels(path for paths in listed.values() for path in paths)

    read, counts, multi_frame = {}, Counter(), {}
    for paths in listed.values():
        for image_path in paths:
            if image_path in read:
                continue
            read[image_path] = None
            label = label_path(image_path)
            if label in shared:
                others = ", ".join(path for path in shared[label] if path != image_path)
                problems.append(AnnotationProblem("one label, two images", image_path, f"its label file {label} is "
                                                  f"also the label of {others} (labels are matched by the image's "
                                                  f"name without extension: which image is it of?)"))
                continue
            try:
                width, height, n_frames = image_size_and_frames(image_path)
            except UnreadableImageError as error:
                problems.append(AnnotationProblem("unreadable image", image_path, str(error).split(": ", 1)[-1]))
                continue
            if n_frames > 1:
                multi_frame[image_path] = n_frames
            if not os.path.lexists(label):  # a broken link, a folder or a device is a problem (parse_label_file)
                counts["background_images"] += 1
                read[image_path] = {"image": image_path, "width": width, "height": height, "objects": []}
                continue
            objects, label_problems, label_counts = parse_label_file(label, width, height, len(names),
                                                                    keypoint_values, trusted, image_path)
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

    data.yaml's train, val and test become TRAIN, VAL and TEST. Without a test split (or with test the same as
    val), val becomes TEST, the split eval.py scores, and no VAL is written (said in a note): one held-out set is
    one split, counted once (train.py --eval-every then measures TEST and warns that choosing a checkpoint by it
    tunes on the test set). ``test_fraction`` draws TEST from train instead (seeded, as --annotations draws it:
    the same images and seed give the same split), and val stays VAL. The label map is data.yaml's names in
    class-id order (class k is label k + 1). The checks are ssd_support.yolo_format's; a bad image (a bad line in
    its label file) is left out of every split with skip_bad.

    :param source: the data set's folder (holding data.yaml) or its yaml file
    :param output_folder: where the JSON files go
    :param test_fraction: the fraction of train drawn for TEST, 0 <= f < 1 (default 0: none)
    :param seed: the seed of that draw
    :param skip_bad: leave bad images / lines out (counted) instead of failing
    :param out: a file to print the report to
    :return: the summary dict of :func:`ssd_support.data_lists.report_and_write`, with "VAL" statistics where VAL
        is written, and "val_is_test" (val was written as TEST), "background_images", "polygons"
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
    lists = {"TRAIN": _yolo_lists(train)}
    if not (val_is_train or val_is_test):
        lists["VAL"] = _yolo_lists(splits["VAL"])
    lists["TEST"] = _yolo_lists(splits["VAL"] if val_is_test else test)
    if "VAL" not in lists:
        remove_stale_validation(output_folder)  # an earlier run's VAL would overlap this TRAIN, or be this TEST
    if val_is_train:
        notes.append(f"Note: {dataset['yaml']} has its train as val: the images are TRAIN alone (no VAL); "
                     f"--test-fraction F draws a TEST split from them.")
    if val_is_test:
        notes.append(f"Note: {dataset['yaml']} has " + ("its val as test" if same_test else "no test split")
                     + ": its val is TEST, which eval.py scores (no VAL is written: train.py --eval-every measures "
                       "TEST); --test-fraction F draws TEST from train instead, and val stays VAL.")
    notes += multi_frame_notes(dataset["multi_frame"])
    extra = {"val_is_test": val_is_test, "background_images": dataset["background_images"],
             "polygons": dataset["polygons"]}
    source_line = f"the {len(names)} names of {os.path.basename(dataset['yaml'])}, in class-id order"
    # Imported here, not at the top: utils imports torch, and this module's data.yaml reader must load without it
    # (detect.py --onnx --save-yolo runs on onnxruntime alone).
    from utils import make_label_map
    return report_and_write(lists, make_label_map(names), source_line, dataset["clipped"], dataset["problems"],
                            skip_bad, output_folder, [dataset["yaml"]], out, notes=notes, extra=extra)
