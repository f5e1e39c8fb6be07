"""Turn Pascal VOC-format folders, or COCO-format annotation files, into the JSON lists that
datasets.PascalVOCDataset reads.

    python create_data_lists.py --voc07 PATH/VOC2007 --voc12 PATH/VOC2012 --output data/voc
    python create_data_lists.py --voc07 PATH/MyData --classes cat,dog --output data/mine
    python create_data_lists.py --annotations PATH/labels --images PATH/photos --test-fraction 0.2 --output data/mine
    python create_data_lists.py --coco-json PATH/annotations/instances_train2017.json --coco-images PATH/train2017 \
        --coco-test-json PATH/annotations/instances_val2017.json --coco-test-images PATH/val2017 --output data/coco
    python create_data_lists.py --yolo PATH/export --output data/mine    # Ultralytics / Roboflow (data.yaml)
    python create_data_lists.py --toy data/toy        # a small synthetic data set (ssd_support/toy_data.py), and its lists
    python create_data_lists.py --toy-coco data/toy_coco   # the same kind of images, in the COCO format

As in the paper, TRAIN = VOC2007 trainval + VOC2012 trainval and TEST = VOC2007 test (the image IDs come
from ImageSets/Main/{trainval,test}.txt; VOC2012's test set is not public, so only its trainval is read).
A custom VOC-format folder is passed the same way, as --voc07 (train and test) or --voc12 (train only).
Folders of XML files and images without ImageSets (labelImg, Roboflow's VOC export) are passed as --annotations
and --images: every XML file is read, and a seeded, deterministic draw of --test-fraction of them is the TEST
split (or --test-annotations / --test-images give one).

The image of annotation ID is ID.<ext> (jpg, jpeg, png, bmp, tif, webp, ... in any letter case) in JPEGImages/
(or --images), as the VOC devkit reads it; <filename> is only the fallback. Its upright size (EXIF orientation
applied, as images.load_image reads it) must be the annotation's <size> (COCO: width / height).

YOLO (Ultralytics, Roboflow): --yolo gives the folder of data.yaml (or the yaml); its train / val / test become
TRAIN / VAL / TEST (no test: VAL is also TEST; --test-fraction draws TEST from train instead), read by
ssd_support/yolo_format.py. Boxes "class cx cy w h" are fractions of the image's upright size; difficulties are 0.

COCO: --coco-json / --coco-images give the TRAIN split (an instances_*.json file and the folder its file_names
are in), --coco-test-json / --coco-test-images the TEST split; either pair alone is enough. COCO's category
ids (1..90 with gaps) become labels 1..K in increasing id order, named from the file; boxes [x, y, w, h] become
[x1, y1, x2, y2]; crowd regions (iscrowd 1) become difficult objects, which the evaluation ignores; images
without annotations are kept, with no objects.

Written to the output folder: TRAIN_images.json and TEST_images.json (lists of image paths, relative to the
output folder, so that the project can move), TRAIN_objects.json and TEST_objects.json (per image, {"boxes":
[[x1, y1, x2, y2], ...] in pixels, "labels": [...], "difficulties": [...]}), and label_map.json ({"background": 0,
class: label, ...}), the label map that training and evaluation use.

--val-fraction F also moves a seeded random share F of the TRAIN images into VAL_images.json /
VAL_objects.json (train.py --eval-every evaluates on VAL, so that choosing a checkpoint does not tune on TEST):

    python create_data_lists.py --toy data/toy --val-fraction 0.2

Beside the lists go statistics.json and statistics.png (ssd_support/data_statistics.py): the counts per split and
class, the box shapes, and the share of each class's objects that some prior of SSD300 (--image-size 512: SSD512)
fits at IoU 0.5 or more; the classes under 90% are named in the printed summary.

Coordinates: VOC annotations number pixels from 1 and include the last pixel, so a box covering pixels
xmin..xmax (1-based) spans [xmin - 1, xmax] in the continuous, 0-based coordinates written here.

Problems (a class outside the label map or named "background", a degenerate box, a missing or unreadable image,
an image of another size than annotated, a malformed or missing XML file; in a COCO file, an annotation of an
unknown image or category) are reported one line each, naming the file; the run then fails unless --skip-bad is
given, in which case the bad images are left out, in every split, and counted: a bad box makes its whole image
bad (kept without it, the object would be taught as background and its detections scored as false positives);
only an object of a class outside the label map leaves its image in, without it. A COCO file that is missing, not
JSON or without its images / annotations / categories lists stops the run at once. Paths that annotations write
with the other system's separator (images\\b.jpg on Linux) are found (ssd_support.images.resolve_written_path).
"""

import argparse
import codecs
import difflib
import hashlib
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from ssd_support.images import IMAGE_EXTENSIONS, UnreadableImageError, multi_frame_note, resolve_written_path
from ssd_support.images import image_size_and_frames
from ssd_support.yolo_format import YoloDataError, read_yolo_dataset
from ssd_support.toy_data import make_toy_coco_dataset, make_toy_dataset
from ssd_support.data_statistics import write_data_statistics
from ssd_support.files import images_list_path, label_map_path, objects_list_path, read_json, write_atomically
from utils import VOC_LABELS, make_label_map

SPLITS = ("TRAIN", "TEST")
# Which ImageSets/Main list of each year goes into which split.
VOC07_SETS = (("trainval", "TRAIN"), ("test", "TEST"))
VOC12_SETS = (("trainval", "TRAIN"),)
DEFAULT_TEST_FRACTION = 0.2  # --annotations without --test-annotations: a fifth of the images for TEST
# A non-VOC name holding at most this fraction of the objects, the rest all VOC classes, is named in the summary.
RARE_NAME_FRACTION = 0.01
MAX_PRINTED_PROBLEMS = 50  # problem lines printed; the rest are only counted
TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"", "0", "false", "no"}


class DataListError(ValueError):
    """The annotations have problems and --skip-bad was not given (or nothing usable was found)."""


class AnnotationProblem(Exception):
    """One problem with one file, reported as a single line "PATH: what is wrong"."""

    def __init__(self, kind, path, message, unit="image", image=None):
        """:param kind: a short category ("unknown class", ...); path: the file; message: what is wrong
        :param unit: what --skip-bad leaves out: "image" (the image, in every split: a bad box makes its image bad),
            "object" (this object alone: a class outside the label map) or "file" (a file that is no image's)
        :param image: for unit "image", a key naming the image, so that its problems count it once (default: path)
        """
        super().__init__(f"{path}: {message}")
        self.kind = kind  # a short category, used to count what --skip-bad left out
        self.unit = unit
        self.image = path if image is None else image


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


def _listing(folder, cache):
    """The image files of a folder by (stem, lower-case extension), listed once per folder and run.

    :param folder: a folder of images
    :param cache: a dict kept for the run, {folder: listing}
    :return: {(stem, ".jpg"): file name, ...}, empty when the folder does not exist
    """
    if folder not in cache:
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        cache[folder] = {}
        for name in names:
            stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                cache[folder].setdefault((stem, extension.lower()), name)
    return cache[folder]


def _base_name(filename):
    """The file name of a <filename> / <path> as tools write it, Windows paths included ("C:\\data\\a.jpg")."""
    return re.split(r"[\\/]", filename.strip())[-1]


def find_image(image_folder, image_id, filename, cache=None, written_path=None, xml_folder=""):
    """Locate the image of an annotation, as the VOC devkit and torchvision do: ``<image_folder>/<ID>.<ext>``.

    The extension is any of IMAGE_EXTENSIONS in any letter case (jpg first, then jpeg, png, ...). The XML's
    ``<filename>`` and ``<path>`` are only fallbacks, for an ID that has no image of its own: annotation tools copy
    them from file to file, so an ``img2.xml`` saying ``<filename>img1.jpg`` must not put img2's boxes on img1.
    Fallbacks in order: ``<filename>`` relative to the image folder, its base name there, ``<path>``'s base name
    there, ``<path>`` itself (absolute, or relative to the XML's folder); paths with either system's separator
    (:func:`ssd_support.images.resolve_written_path`).

    :param image_folder: the folder of the images (a VOC folder's JPEGImages/)
    :param image_id: the ID (the XML file's name without .xml; an ImageSets ID may hold a sub-folder)
    :param filename: the <filename> of the XML (may be None)
    :param cache: a dict kept for the run, so that each folder is listed once
    :param written_path: the <path> of the XML (may be None)
    :param xml_folder: the XML's folder, which a relative <path> is relative to
    :return: (path or None, disagrees): the image's path, and whether <filename> names another image than the ID's
    """
    id_folder, id_stem = os.path.split(image_id)
    listing = _listing(os.path.join(image_folder, id_folder), {} if cache is None else cache)
    named = _base_name(filename) if filename and filename.strip() else None
    # "img2", "img2.jpg" or "IMG2.JPG" in <filename> agree with the ID img2; "img1.jpg" does not.
    disagrees = named is not None and named.lower() != id_stem.lower() and \
        os.path.splitext(named)[0].lower() != id_stem.lower()
    for extension in IMAGE_EXTENSIONS:
        if (id_stem, extension) in listing:
            return os.path.join(image_folder, id_folder, listing[id_stem, extension]), disagrees
    candidates = []
    if named is not None:
        candidates += [resolve_written_path(filename.strip(), image_folder)[0], os.path.join(image_folder, named)]
    if written_path and written_path.strip():
        candidates += [os.path.join(image_folder, _base_name(written_path)),
                       resolve_written_path(written_path.strip(), xml_folder)[0]]
    for candidate in candidates:
        if candidate is not None and os.path.isfile(candidate):
            return candidate, disagrees
    return None, disagrees


def read_xml(xml_path):
    """Parse an XML file in the encoding it declares, as annotation tools write them.

    Python's XML parser (expat) refuses multi-byte encodings other than UTF-8 and UTF-16, which Chinese, Japanese
    and Korean versions of labelImg write (``<?xml version="1.0" encoding="gb2312"?>``): the bytes are decoded here
    instead, by the byte-order mark, else the declared encoding, else UTF-8.

    :param xml_path: an existing XML file
    :return: the root element
    :raises AnnotationProblem: "malformed XML" when the file cannot be decoded or parsed
    """
    with open(xml_path, "rb") as f:
        data = f.read()
    declared = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", data)
    encoding = _bom_encoding(data) or (declared.group(1).decode("ascii") if declared else "utf-8")
    try:
        text = data.decode(encoding)
    except LookupError:
        raise AnnotationProblem("malformed XML", xml_path, f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as error:
        raise AnnotationProblem("malformed XML", xml_path, f"not valid {encoding} text ({error.reason} at byte "
                                                           f"{error.start}); declare the file's encoding") from None
    # The text is decoded now; its declaration would make expat try to decode it again.
    text = re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", text, count=1)
    try:
        return ET.fromstring(text)
    except ET.ParseError as error:
        raise AnnotationProblem("malformed XML", xml_path, f"malformed XML ({error})") from None


def _bom_encoding(data):
    """The encoding a byte-order mark at the start of ``data`` announces (Windows Notepad writes them), or None."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                          (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return encoding
    return None


def _annotated_size(root, xml_path):
    """The image size an annotation was made on: (width, height) from <size>, or None when it gives none (some
    tools write 0 or leave it out)."""
    try:
        width, height = (float(root.findtext(f"size/{tag}") or 0) for tag in ("width", "height"))
    except ValueError:
        raise AnnotationProblem("malformed XML", xml_path, "<size> has a non-numeric width or height") from None
    return (width, height) if width > 0 and height > 0 else None


def size_mismatch(annotated, actual, image_path):
    """The problem text when an annotation's image size differs from the image's upright size, else None.

    The same rule as detectron2's data loading (EXIF orientation applied, then ``check_image_size``), which COCO
    and VOC pass as they are.

    :param annotated: (width, height) the annotation gives
    :param actual: (width, height) of the image, EXIF orientation applied
    :param image_path: the image, named in the text
    """
    if annotated is None or tuple(annotated) == tuple(actual):
        return None
    aw, ah = (f"{value:g}" for value in annotated)
    text = f"annotated image size {aw}x{ah} but {image_path} is {actual[0]}x{actual[1]}"
    if tuple(annotated) == (actual[1], actual[0]):
        text += " upright (EXIF orientation applied): annotated before rotating it?"
    else:
        text += " (resized after annotating?)"
    return text + "; its boxes would land on the wrong pixels"


def parse_annotation(xml_path, image_folder, image_id, cache=None, frames=None):
    """Read one VOC XML file, as real annotation tools write it, and check it against its image.

    Accepts float coordinates ("107.37"), empty or missing <difficult/> and <truncated/> tags, the <part> sub-boxes
    of people (only an object's own <bndbox> is read) and any declared encoding. The image is ID.<ext> in
    ``image_folder`` (:func:`find_image`); its upright size (EXIF orientation applied, as images.load_image reads
    it) must be the annotation's <size>. Boxes reaching outside the image are clipped to it and counted. An empty
    box, a missing image, a size that differs or a malformed file makes the image bad (unit "image": --skip-bad
    leaves the image out, not just the box: kept, its object would be taught as background); an object named
    "background" (label 0 is reserved for "no object") is left out alone (unit "object": its annotator called the
    region background).

    :param xml_path: path of the XML file
    :param image_folder: the folder holding the image (a VOC folder's JPEGImages/)
    :param image_id: the image ID (from ImageSets/Main, or the XML's name)
    :param cache: a dict kept for the run (folder listings)
    :param frames: a dict that {image path: frames} is added to for an image of more than one frame, or None
    :return: (annotation, object_problems): annotation is {"xml": path, "image": path, "objects": [{"name", "box" [x1,
        y1, x2, y2] in 0-based pixels, "difficult" 0/1}], "n_clipped": int, "filename_disagrees": bool};
        object_problems a list of AnnotationProblem of its objects (unit "image" ones make the image bad)
    :raises AnnotationProblem: when the file cannot be used at all
    """
    if not os.path.isfile(xml_path):
        raise AnnotationProblem("missing annotation", xml_path, "annotation file not found")
    root = read_xml(xml_path)

    filename, written_path = root.findtext("filename"), root.findtext("path")
    image_path, filename_disagrees = find_image(image_folder, image_id, filename, cache, written_path,
                                                os.path.dirname(xml_path))
    if image_path is None:
        expected = os.path.join(image_folder, image_id + ".jpg")
        written = "".join(f"; <{tag}> {text.strip()!r} tried as {resolve_written_path(text.strip(), folder)[1]}"
                          for tag, text, folder in (("filename", filename, image_folder),
                                                    ("path", written_path, os.path.dirname(xml_path)))
                          if text and text.strip())
        raise AnnotationProblem("missing image", xml_path, f"image not found (looked for {expected}, any of "
                                                           f"{', '.join(IMAGE_EXTENSIONS)}{written})")
    try:
        width, height, n_frames = image_size_and_frames(image_path)
    except UnreadableImageError as error:
        raise AnnotationProblem("unreadable image", xml_path, str(error)) from None
    if n_frames > 1 and frames is not None:
        frames[os.path.abspath(image_path)] = n_frames
    mismatch = size_mismatch(_annotated_size(root, xml_path), (width, height), image_path)
    if mismatch:
        raise AnnotationProblem("size mismatch", xml_path, mismatch)

    objects, object_problems, n_clipped = [], [], 0
    for index, element in enumerate(root.findall("object")):
        where = f"object {index + 1}"
        name = (element.findtext("name") or "").strip()
        bndbox = element.find("bndbox")  # the object's own box; <part> boxes sit one level deeper
        if not name or bndbox is None:
            raise AnnotationProblem("malformed XML", xml_path, f"{where} has no <name> or no <bndbox>")
        if canonical_class_name(name) == "background":
            object_problems.append(AnnotationProblem(
                "reserved class name", xml_path,
                f"{where} is named {name!r}, which is reserved for label 0 (no object); rename the class",
                unit="object"))
            continue
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
    annotation = {"xml": xml_path, "image": os.path.abspath(image_path), "objects": objects, "n_clipped": n_clipped,
                  "filename_disagrees": filename_disagrees}
    return annotation, object_problems


def read_text_lines(path):
    """The stripped, non-empty lines of a text file, whatever byte-order mark or line ends it has.

    :raises DataListError: when it is not UTF-8 (or UTF-16/32 with a byte-order mark) text
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode(_bom_encoding(data) or "utf-8")
    except UnicodeDecodeError as error:
        raise DataListError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_image_ids(voc_folder, image_set):
    """The image IDs of ImageSets/Main/<image_set>.txt: each whole stripped line ("leaf 1" is the ID of
    "leaf 1.xml"; see :func:`resolve_image_id` for VOC's per-class "ID  1" lines).

    :raises DataListError: when the list does not exist (a wrong path rather than a bad sample)
    """
    path = os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt")
    if not os.path.isfile(path):
        hint = "is it a VOC-format folder?"
        if not os.path.isdir(os.path.join(voc_folder, "ImageSets")):
            hint = ("it has no ImageSets; for a folder of images and XML files without them (labelImg, Roboflow), "
                    "use --annotations DIR --images DIR")
        raise DataListError(f"{path}: image set list not found ({hint})")
    return read_text_lines(path)


def resolve_image_id(annotations_folder, line):
    """The image ID an ImageSets line means: the whole line, unless only its first part has an annotation and the
    rest is a VOC per-class flag (``000005  1`` / ``000005 -1`` / ``000005  0``).

    A line written with the other system's separator (``2008\\000001`` on Linux) means the ID with this system's
    (:func:`ssd_support.images.resolve_written_path`).

    :param annotations_folder: the folder of the XML files
    :param line: a stripped line of an ImageSets list
    :return: the ID
    """
    def existing_id(written):
        """The ID whose XML ``written`` names, in this system's form, or None."""
        found, _ = resolve_written_path(written + ".xml", annotations_folder)
        return os.path.relpath(found, annotations_folder)[:-4] if found and os.path.isfile(found) else None

    per_class = re.fullmatch(r"(.+?)\s+(-?1|0)", line)
    found = existing_id(line) or (existing_id(per_class.group(1)) if per_class else None)
    if found is not None:
        return found
    # None exists: the ID in this system's form, so that the "not found" line names the path tried.
    return os.path.relpath(resolve_written_path(line, annotations_folder)[1], annotations_folder)


# ---------------------------------------------------------------------------------------------------------
# Building the lists
# ---------------------------------------------------------------------------------------------------------


def choose_label_map(classes, annotated_names):
    """Decide the classes: given ones, VOC's, or the ones the annotations use.

    :param classes: None (automatic), "voc", or a list of class names
    :param annotated_names: the class names found in the annotations (a set, or a Counter of objects per name)
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


def rare_non_voc_names(name_counts, max_fraction=RARE_NAME_FRACTION):
    """The few annotated names that keep a data set from being read as Pascal VOC: a typo ("dgo" among 10,000
    "dog"s) would otherwise silently become a class of its own.

    :param name_counts: Counter {annotated name: number of objects}
    :param max_fraction: the most objects, as a fraction of all, that the non-VOC names may hold together
    :return: {canonical name: objects} of the non-VOC names when there are some, the other names are VOC classes
        and the non-VOC ones hold at most ``max_fraction`` of the objects; else {}
    """
    rare = Counter()
    for name, count in name_counts.items():
        if not resolve_class_name(name, VOC_LABELS):
            rare[canonical_class_name(name)] += count
    total = sum(name_counts.values())
    if not rare or sum(rare.values()) == total or sum(rare.values()) > max_fraction * total:
        return {}
    return dict(sorted(rare.items()))


def _rare_names_note(rare):
    """The summary line about :func:`rare_non_voc_names`, with the closest VOC class of each (difflib)."""
    parts = []
    for name, count in rare.items():
        close = difflib.get_close_matches(name.replace(" ", ""), VOC_LABELS, n=1)
        parts.append(f"{name!r} ({count} object{'s' * (count != 1)}" +
                     (f"; did you mean {close[0]!r}?)" if close else ")"))
    return ("Note: every class name but " + ", ".join(parts) + " is a Pascal VOC class, so the label map is the "
            "names found. A typo? Fix the annotation, or pass --classes voc to report those objects as not in the "
            "label map.")


def _voc_sources(voc_folders):
    """What to read from VOC folders: the IDs of their ImageSets lists.

    :param voc_folders: list of (folder, ((image_set, split), ...))
    :return: list of (split, annotations folder, image folder, [image IDs])
    """
    sources = []
    for folder, image_sets in voc_folders:
        annotations_folder = os.path.join(folder, "Annotations")
        for image_set, split in image_sets:
            lines = read_image_ids(folder, image_set)
            ids = [resolve_image_id(annotations_folder, line) for line in lines]
            written = {image_id: line for image_id, line in zip(ids, lines) if image_id != line}
            sources.append((split, annotations_folder, os.path.join(folder, "JPEGImages"), ids, written))
    return sources


def _collect(sources, problems, frames=None):
    """Parse every annotation of every source into per-split lists of annotations.

    Each XML file is read once: one listed in two splits is reported once, and an image made bad by any of its
    objects (an empty box) is left out of every split that lists it.

    :param sources: list of (split, annotations folder, image folder, [image IDs], {ID: ImageSets line as written,
        where it differs}), the last entry optional
    :param problems: a list that the AnnotationProblem of every bad file or object is appended to
    :param frames: a dict for {image path: frames} of the multi-frame images, or None
    :return: {split: [annotation, ...]} with annotations as parse_annotation returns them
    """
    annotations = {split: [] for split in SPLITS}
    cache, parsed = {}, {}
    for split, annotations_folder, image_folder, ids, *written in sources:
        written = written[0] if written else {}
        for image_id in ids:
            xml_path = os.path.join(annotations_folder, image_id + ".xml")
            if xml_path not in parsed:
                try:
                    annotation, object_problems = parse_annotation(xml_path, image_folder, image_id, cache, frames)
                except AnnotationProblem as problem:
                    if problem.kind == "missing annotation" and image_id in written:
                        problem = AnnotationProblem(problem.kind, xml_path, f"annotation file not found (ImageSets "
                                                                            f"line {written[image_id]!r})")
                    problems.append(problem)
                    annotation, object_problems = None, []
                problems.extend(object_problems)
                bad = annotation is None or any(p.unit == "image" for p in object_problems)
                parsed[xml_path] = None if bad else annotation
            if parsed[xml_path] is not None:
                annotations[split].append(parsed[xml_path])
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
                # Left out alone (unit "object"): a class kept out of the label map (--classes) is not this
                # detector's, so its region is background for it.
                problems.append(AnnotationProblem("unknown class", annotation["xml"],
                                                  f"class {obj['name']!r} is not in the label map", unit="object"))
                continue
            boxes.append(obj["box"])
            labels.append(label_map[name])
            difficulties.append(obj["difficult"])
        images.append(annotation["image"])
        objects.append({"boxes": boxes, "labels": labels, "difficulties": difficulties})
    return images, objects


def _build_and_write(sources, classes, skip_bad, output_folder, source_names, out):
    """Parse the annotations of XML sources (VOC folders or plain folders), decide the label map, write the lists.

    :param sources: list of (split, annotations folder, image folder, [image IDs])
    :return: the summary dict of :func:`create_data_lists`
    """
    problems, frames = [], {}
    annotations = _collect(sources, problems, frames)
    all_annotations = [a for split in SPLITS for a in annotations[split]]
    name_counts = Counter(obj["name"] for a in all_annotations for obj in a["objects"])
    label_map, label_map_source = choose_label_map(classes, name_counts)
    lists = {split: _to_lists(annotations[split], label_map, problems) for split in SPLITS}
    n_clipped = sum(a["n_clipped"] for a in all_annotations)

    rare = rare_non_voc_names(name_counts) if classes is None else {}
    n_disagree = sum(a["filename_disagrees"] for a in all_annotations)
    notes = [_rare_names_note(rare)] if rare else []
    if n_disagree:
        notes.append(f"Note: {n_disagree} annotation(s) name another image in <filename> than their own ID's; the "
                     f"image of the ID (ID.jpg, .png, ...) was used, <filename> only where the ID has none.")
    notes += multi_frame_notes(frames)
    extra = {"rare_non_voc_names": rare, "filename_disagreements": n_disagree}
    return _report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder,
                             source_names, out, notes=notes, extra=extra)


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
        "skipped": {kind: problems}, "skipped_images": {kind: images left out, each once, by its first problem},
        "skipped_objects": {kind: objects left out of images kept}, "skipped_files": {kind: files that are no
        image's}}
    :raises DataListError: on problems without skip_bad, or when there is nothing to read
    """
    out = out or sys.stdout
    voc_folders = [(os.path.abspath(p), sets) for p, sets in ((voc07_path, VOC07_SETS), (voc12_path, VOC12_SETS))
                   if p is not None]
    if not voc_folders:
        raise DataListError("give at least one of --voc07 / --voc12 (or --toy)")

    sources = _voc_sources(voc_folders)
    return _build_and_write(sources, classes, skip_bad, output_folder, [folder for folder, _ in voc_folders], out)


def split_ids(ids, test_fraction, seed=0, key=None):
    """Split image IDs into TRAIN and TEST by a seeded, deterministic draw.

    Each ID is ranked by a hash of (seed, ID) and the first round(test_fraction * n) go to TEST: the same IDs and
    seed always give the same split, whatever order the files were listed in, and adding images to a data set
    moves few of the old ones from one split to the other.

    :param ids: image IDs
    :param test_fraction: the fraction of them that go to TEST, 0 to 1
    :param seed: an integer; another seed, another split
    :param key: what of an ID is hashed (default: the ID itself)
    :return: (TRAIN IDs, TEST IDs), each sorted
    """
    key = key or str
    ranked = sorted(ids, key=lambda image_id: hashlib.sha256(f"{seed}:{key(image_id)}".encode()).hexdigest())
    n_test = round(test_fraction * len(ranked))
    return sorted(ranked[n_test:]), sorted(ranked[:n_test])


def _xml_ids(annotations_folder, option):
    """The IDs (names without .xml) of the XML files in a folder, sorted.

    :raises DataListError: when the folder does not exist or holds no XML file
    """
    if not os.path.isdir(annotations_folder):
        raise DataListError(f"{annotations_folder}: folder not found (given as {option})")
    ids = sorted(name[:-4] for name in os.listdir(annotations_folder)
                 if name.lower().endswith(".xml") and os.path.isfile(os.path.join(annotations_folder, name)))
    if not ids:
        raise DataListError(f"{annotations_folder}: no .xml files (given as {option}; a VOC folder goes to --voc07)")
    return ids


def create_folder_data_lists(annotations_folder, images_folder=None, output_folder="data", test_fraction=None,
                             seed=0, test_annotations=None, test_images=None, classes=None, skip_bad=False,
                             out=None):
    """Make the lists from folders of VOC XML files and images without ImageSets (labelImg, Roboflow, CVAT).

    Every XML file of ``annotations_folder`` is an annotation, its ID the file name without .xml, paired with its
    image as in a VOC folder (:func:`find_image`: ID.<ext> in ``images_folder``, <filename> as a fallback) and
    checked the same way. The TEST split is a seeded draw of ``test_fraction`` of them (:func:`split_ids`), or the
    annotations of ``test_annotations`` / ``test_images`` when the data set has its own test split.

    :param annotations_folder: the XML files (labelImg writes them next to the images or in a folder of their own)
    :param images_folder: the images (default: the annotations folder)
    :param output_folder: where the JSON files go
    :param test_fraction: the fraction drawn for TEST (default 0.2, or 0 when test_annotations is given)
    :param seed: the seed of the draw
    :param test_annotations: a folder of XML files for TEST (e.g. Roboflow's valid/ or test/), or None
    :param test_images: its images (default: test_annotations)
    :param classes: as in :func:`create_data_lists`
    :param skip_bad: leave bad objects / images out (counted) instead of failing
    :param out: a file to print the report to
    :return: the summary dict of :func:`create_data_lists`
    :raises DataListError: on a bad folder or fraction, on problems without skip_bad
    """
    if test_fraction is None:
        test_fraction = 0.0 if test_annotations else DEFAULT_TEST_FRACTION
    if not 0 <= test_fraction < 1:
        raise DataListError(f"--test-fraction {test_fraction}: must be at least 0 and below 1")
    images_folder = images_folder or annotations_folder
    train_ids, test_ids = split_ids(_xml_ids(annotations_folder, "--annotations"), test_fraction, seed)
    sources = [("TRAIN", annotations_folder, images_folder, train_ids),
               ("TEST", annotations_folder, images_folder, test_ids)]
    names = [annotations_folder]
    if test_annotations:
        sources.append(("TEST", test_annotations, test_images or test_annotations,
                        _xml_ids(test_annotations, "--test-annotations")))
        names.append(test_annotations)
    return _build_and_write(sources, classes, skip_bad, output_folder, names, out or sys.stdout)


def _leave_out_duplicate_images(lists, problems):
    """Find every image listed more than once: twice in one split (two annotation files, or two ImageSets lines,
    name it: which boxes are right?) or in two splits (the test set would score an image the network trained on).
    Each extra listing is a "duplicate image" problem naming the image; it is left out of the lists (TEST is read
    first, then VAL, so a shared image stays in TEST and leaves TRAIN), which --skip-bad then accepts. A VAL that
    is the same list as TEST (a YOLO data set without test split) is one split here.

    :param lists: {split: (image paths, objects)}, "VAL" optional, changed in place
    :param problems: the list of AnnotationProblem, appended to
    """
    val_is_test = lists.get("VAL") is not None and lists.get("VAL") is lists.get("TEST")
    first_split = {}
    for split in [s for s in ("TEST", "VAL", "TRAIN") if s in lists and not (s == "VAL" and val_is_test)]:
        images, objects = lists[split]
        kept = []
        for index, (path, image_objects) in enumerate(zip(images, objects)):
            key = os.path.normcase(os.path.abspath(path))
            if key in first_split:
                where = (f"twice in {split}: two annotations (or ImageSets lines) name it" if first_split[key] == split
                         else f"in both {first_split[key]} and {split}: the {first_split[key]} split would score an "
                              f"image the network trained on" if split == "TRAIN" else
                         f"in both {first_split[key]} and {split}")
                problems.append(AnnotationProblem("duplicate image", path, f"listed {where}; left out of {split}",
                                                  image=(split, key, index)))
                continue
            first_split[key] = split
            kept.append((path, image_objects))
        lists[split] = ([path for path, _ in kept], [image_objects for _, image_objects in kept])
    if val_is_test:
        lists["VAL"] = lists["TEST"]


def skipped_counts(problems):
    """What --skip-bad leaves out, by unit and reason: each image once (under the kind of its first problem),
    each object, each file that is no image's.

    :param problems: AnnotationProblem (or ssd_support.yolo_format.YoloProblem) instances
    :return: {"images": {kind: n}, "objects": {kind: n}, "files": {kind: n}}
    """
    counts, seen = {"images": Counter(), "objects": Counter(), "files": Counter()}, set()
    for problem in problems:
        if problem.unit == "object":
            counts["objects"][problem.kind] += 1
        elif problem.unit == "file":
            counts["files"][problem.kind] += 1
        elif problem.image not in seen:
            seen.add(problem.image)
            counts["images"][problem.kind] += 1
    return {unit: dict(sorted(counter.items())) for unit, counter in counts.items()}


def _counted(counts, noun):
    """ "3 images (1 degenerate box, 2 missing image)" for {kind: n}, or "" when there are none."""
    total = sum(counts.values())
    if not total:
        return ""
    return f"{total} {noun}{'s' * (total != 1)} (" + ", ".join(f"{n} {kind}" for kind, n in counts.items()) + ")"


def multi_frame_notes(frames):
    """One note per image file of more than one frame (ssd_support.images.multi_frame_note), the first
    MAX_PRINTED_PROBLEMS, then a count of the others.

    :param frames: {image path: frames}
    :return: the note lines
    """
    paths = sorted(frames)
    notes = [multi_frame_note(path, frames[path]) for path in paths[:MAX_PRINTED_PROBLEMS]]
    if len(paths) > MAX_PRINTED_PROBLEMS:
        notes.append(f"Note: ... and {len(paths) - MAX_PRINTED_PROBLEMS} more image file(s) of several frames; "
                     f"only the first frame of each is read.")
    return notes


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


def _list_path(path, output_folder):
    """An image path as the lists store it: relative to the lists' folder (datasets.read_image_list resolves it),
    so that a project folder moved or copied to another machine still works; absolute where no relative path
    exists (another drive on Windows)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(output_folder))
    except ValueError:
        return os.path.abspath(path)


def _report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder, sources,
                      out, notes=(), extra=None):
    """Report the problems, write the five JSON files and print the per-class counts (VOC and COCO alike).

    :param lists: {split: (image paths, objects in the JSON format)} for TRAIN and TEST, and VAL where the source
        has one (a YOLO data set; the same tuple as TEST when VAL is also TEST)
    :param label_map: {"background": 0, name: label, ...}
    :param label_map_source: a few words saying where the label map came from
    :param n_clipped: how many boxes were clipped to their image
    :param problems: the AnnotationProblem of every bad file or object
    :param skip_bad: leave the bad ones out instead of failing
    :param output_folder: where the JSON files go
    :param sources: the folders / files read, for the "nothing usable" message
    :param out: a file to print the report to
    :param notes: lines printed after the counts (warnings that are not problems)
    :param extra: more entries for the summary dict
    :return: the summary dict :func:`create_data_lists` documents
    :raises DataListError: on problems without skip_bad, or when there is nothing to write
    """
    _leave_out_duplicate_images(lists, problems)
    _report_problems(problems, skip_bad)
    if not lists["TRAIN"][0] and not lists["TEST"][0]:
        raise DataListError("no usable images found in " + ", ".join(sources))

    os.makedirs(output_folder, exist_ok=True)
    written_splits = [split for split in ("TRAIN", "VAL", "TEST") if split in lists]
    for split in written_splits:
        images, objects = lists[split]
        _write_json(images_list_path(output_folder, split),
                    [_list_path(path, output_folder) for path in images])
        _write_json(objects_list_path(output_folder, split), objects)
    _write_json(label_map_path(output_folder), label_map)

    summary = {
        "label_map": label_map,
        "label_map_source": label_map_source,
        "clipped": n_clipped,
        "skipped": dict(Counter(p.kind for p in problems)),
        **{f"skipped_{unit}": counts for unit, counts in skipped_counts(problems).items()},
        **(extra or {}),
    }
    for split in written_splits:
        summary[split] = split_statistics(lists[split][1], label_map)

    print(f"Label map: {len(label_map) - 1} classes + background ({label_map_source}).", file=out)
    print_statistics(summary, label_map, out=out)
    print(f"Images without objects: TRAIN {summary['TRAIN']['empty_images']}, TEST {summary['TEST']['empty_images']}."
          f" Boxes clipped to their image: {summary['clipped']}.", file=out)
    if "VAL" in lists:
        val = summary["VAL"]
        print(f"VAL: {val['images']} images, {val['objects']} objects ({val['difficult']} difficult)"
              + (", the same as TEST." if lists["VAL"] is lists["TEST"] else "."), file=out)
    if problems:
        left_out = [_counted(summary[f"skipped_{unit}"], noun) for unit, noun in
                    (("images", "image"), ("objects", "object"), ("files", "file"))]
        print("Left out (--skip-bad): " + "; ".join(part for part in left_out if part) + ".", file=out)
    for note in notes:
        print(note, file=out)
    print(f"Wrote {'/'.join(written_splits)} lists and label_map.json to {os.path.abspath(output_folder)}", file=out)
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
    images_path = images_list_path(output_folder, "TRAIN")
    objects_path = objects_list_path(output_folder, "TRAIN")
    with open(images_path) as file:
        images = json.load(file)
    with open(objects_path) as file:
        objects = json.load(file)
    if len(images) < 2:
        raise DataListError(f"{images_path}: {len(images)} TRAIN image(s), too few to draw a VAL split from")
    n_val = min(max(1, round(fraction * len(images))), len(images) - 1)
    # The same seeded draw as the --annotations TRAIN/TEST split, ranked by file name: where the data folder
    # lives (the lists may hold absolute paths) must not change which images go to VAL.
    _, val_paths = split_ids(images, n_val / len(images), seed, key=os.path.basename)
    val_paths = set(val_paths)
    val = [i for i, path in enumerate(images) if path in val_paths]  # in list order, as the lists it came from
    keep = [i for i, path in enumerate(images) if path not in val_paths]
    _write_json(images_list_path(output_folder, "VAL"), [images[i] for i in val])
    _write_json(objects_list_path(output_folder, "VAL"), [objects[i] for i in val])
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
        data = read_json(json_path)
    except ValueError as error:  # JSONFileError: broken, too deeply nested, not UTF-8
        raise DataListError(str(error)) from None
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
        if category_id in categories or name in categories.values() or not name or \
                canonical_class_name(name) == "background":  # label 0, "no object", in any case
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


def _coco_images(data, json_path, images_folder, problems, frames=None):
    """The images of a COCO file: where each is and how large, checking that its file exists and has the size the
    file gives (upright, EXIF orientation applied; when the file gives none, the image's own).

    A ``file_name`` written with the other system's separator (``images\\b.jpg`` on Linux) is found
    (:func:`ssd_support.images.resolve_written_path`); a missing one is named as written and as tried.

    :param frames: a dict for {image path: frames} of the multi-frame images, or None
    :return: {image id: {"image": absolute path, "width", "height", "objects": []}} in file order; images with a
        problem (a malformed entry, a repeated id, a missing or unreadable file, another size) are reported in
        ``problems`` and left out
    """
    images = {}
    for index, entry in enumerate(data["images"]):
        try:
            image_id, file_name = entry["id"], str(entry["file_name"])
            width, height = entry.get("width"), entry.get("height")
        except (KeyError, TypeError, AttributeError):
            problems.append(AnnotationProblem("malformed entry", json_path,
                                              f"image {index + 1} has no 'id' or no 'file_name'",
                                              image=(json_path, "entry", index)))
            continue
        key = (json_path, "image", image_id)  # the image's problems count it once
        if image_id in images:
            problems.append(AnnotationProblem("malformed entry", json_path, f"image id {image_id} appears twice",
                                              image=(json_path, "entry", index)))
            continue
        found, tried = resolve_written_path(file_name, images_folder)
        if found is None or not os.path.isfile(found):
            problems.append(AnnotationProblem("missing image", json_path, f"image {image_id}: {os.path.abspath(tried)}"
                                                                          f" not found (file_name {file_name!r})",
                                              image=key))
            continue
        path = os.path.abspath(found)
        try:  # the header alone says it, EXIF orientation applied as images.load_image applies it
            *actual, n_frames = image_size_and_frames(path)
        except UnreadableImageError as error:
            problems.append(AnnotationProblem("unreadable image", json_path, f"image {image_id}: {error}", image=key))
            continue
        if n_frames > 1 and frames is not None:
            frames[path] = n_frames
        given = (width, height) if all(isinstance(v, (int, float)) and v > 0 for v in (width, height)) else None
        # A file giving 640x480 for images shrunk to 320x240 would put every box up to twice too far out.
        mismatch = size_mismatch(given, actual, path)
        if mismatch:
            problems.append(AnnotationProblem("size mismatch", json_path, f"image {image_id}: {mismatch}", image=key))
            continue
        width, height = actual
        images[image_id] = {"image": path, "width": width, "height": height, "objects": []}
    return images


def _coco_object(annotation, images, categories, json_path):
    """Check one COCO annotation and turn it into an object of its image.

    COCO boxes are [x, y, width, height] in continuous pixel coordinates (0-based, no VOC "+1"); here they become
    [x1, y1, x2, y2], clipped to the image. Crowd regions (iscrowd 1: many people, a pile of bananas) become
    difficult objects, which the VOC metric ignores as COCO's does.

    :return: (image id, {"category_id", "box", "difficult"}, clipped: bool)
    :raises AnnotationProblem: when the annotation cannot be used (its kind says why); of unit "image" (its
        image is bad: --skip-bad leaves it out) when the annotation names a known image, else of unit "object"
    """
    where = f"annotation {annotation.get('id', '?')}" if isinstance(annotation, dict) else "an annotation"
    image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
    try:
        hash(image_id)
    except TypeError:
        image_id = None
    # A broken annotation of a known image makes that image bad; one of no known image is left out alone.
    unit = {"unit": "image", "image": (json_path, "image", image_id)} if image_id in images else {"unit": "object"}
    try:
        image_id, category_id = annotation["image_id"], annotation["category_id"]
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        raise AnnotationProblem("malformed entry", json_path,
                                f"{where} has no 'image_id', no 'category_id' or no 'bbox' of 4 numbers",
                                **unit) from None
    if image_id not in images:
        raise AnnotationProblem("unknown image", json_path, f"{where}: image_id {image_id} is not in 'images'",
                                unit="object")
    if category_id not in categories:
        raise AnnotationProblem("unknown category", json_path,
                                f"{where}: category_id {category_id} is not in 'categories'", **unit)
    width, height = images[image_id]["width"], images[image_id]["height"]
    box = [x, y, x + w, y + h]
    clipped = [min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
               min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise AnnotationProblem("degenerate box", json_path,
                                f"{where} (image {image_id}) has an empty box (bbox [{x:g}, {y:g}, {w:g}, {h:g}]) "
                                f"in a {width}x{height} image", **unit)
    obj = {"category_id": category_id, "box": clipped, "difficult": int(bool(annotation.get("iscrowd", 0))),
           "clipped": clipped != box}
    return image_id, obj, clipped != box


def read_coco_split(json_path, images_folder, problems, frames=None):
    """Read one COCO-format annotation file and its image folder.

    Images without annotations are kept, with no objects, as the VOC path keeps them (COCO has about 1% of
    them; they count in the evaluation, while the paper's loss, mining negatives per positive of the same image,
    takes nothing from them).

    :param json_path: a COCO instances file
    :param images_folder: the folder its "file_name"s are relative to
    :param problems: a list that the AnnotationProblem of every bad image or annotation is appended to; an image
        with a bad annotation (an empty box, an unknown category) is left out whole
    :param frames: a dict for {image path: frames} of the multi-frame images, or None
    :return: (categories {id: name}, images {image id: {"image", "width", "height", "objects": [{"category_id",
        "box" [x1, y1, x2, y2] pixels, "difficult"}]}}, number of boxes clipped to their image)
    :raises DataListError: when the file or the folder cannot be used at all
    """
    data = load_coco_json(json_path)
    if not os.path.isdir(images_folder):
        raise DataListError(f"{images_folder}: image folder not found (the images of {json_path})")
    categories = coco_categories(data, json_path)
    images = _coco_images(data, json_path, images_folder, problems, frames)
    image_ids = {entry.get("id") for entry in data["images"] if isinstance(entry, dict)}
    n_clipped, bad = 0, set()
    for annotation in data["annotations"]:
        try:
            image_id, obj, clipped = _coco_object(annotation, images, categories, json_path)
        except AnnotationProblem as problem:
            # The annotations of an image that was itself left out (e.g. its file is missing) go with it.
            if not (problem.kind == "unknown image" and annotation.get("image_id") in image_ids):
                problems.append(problem)
            if problem.unit == "image":
                bad.add(problem.image[2])
            continue
        images[image_id]["objects"].append(obj)
        n_clipped += clipped
    for image_id in bad:  # kept with a box less, its object would be taught as background
        n_clipped -= sum(obj["clipped"] for obj in images.pop(image_id)["objects"])
    for image in images.values():
        for obj in image["objects"]:
            del obj["clipped"]
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

    problems, categories, read, frames = [], {}, {}, {}
    for split, json_path, folder in splits:
        split_categories, images, n_clipped = read_coco_split(json_path, folder, problems, frames)
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
    summary = _report_and_write(lists, label_map, source, n_clipped, problems, skip_bad, output_folder,
                                [json_path for _, json_path, _ in splits], out, notes=multi_frame_notes(frames))
    # The json's own image and category ids, for eval.py --save-detections (results pycocotools scores on the json).
    from ssd_support.detection_export import write_coco_ids
    write_coco_ids(output_folder, {split: json_path for split, json_path, _ in splits}, categories,
                   {split: {_list_path(image["image"], output_folder): image_id for image_id, image in images.items()}
                    for split, (images, _) in read.items()})
    return summary


# ---------------------------------------------------------------------------------------------------------
# YOLO data sets (Ultralytics, Roboflow): ssd_support/yolo_format.py reads them
# ---------------------------------------------------------------------------------------------------------


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
    :return: the summary dict of :func:`create_data_lists`, with "VAL" statistics and "val_is_test",
        "background_images", "polygons"
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
    return _report_and_write(lists, make_label_map(names), source_line, dataset["clipped"], dataset["problems"],
                             skip_bad, output_folder, [dataset["yaml"]], out, notes=notes, extra=extra)


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
    folders = parser.add_argument_group("folders of XML files and images, without ImageSets (labelImg, Roboflow, "
                                        "CVAT exports)")
    folders.add_argument("--annotations", metavar="DIR", help="folder of VOC XML files; each is ID.xml")
    folders.add_argument("--images", metavar="DIR",
                         help="folder of their images, ID.jpg / .png / ... (default: the --annotations folder)")
    folders.add_argument("--test-fraction", type=float, default=None,
                         help=f"fraction of --annotations (or of --yolo's train) drawn for TEST, seeded by --seed "
                              f"(default {DEFAULT_TEST_FRACTION}; 0 with --test-annotations or --yolo)")
    folders.add_argument("--test-annotations", metavar="DIR",
                         help="folder of XML files of a TEST split the data set already has (Roboflow's valid/)")
    folders.add_argument("--test-images", metavar="DIR", help="their images (default: the --test-annotations folder)")
    parser.add_argument("--yolo", metavar="DIR",
                        help="an Ultralytics / Roboflow YOLO data set: the folder of its data.yaml (or the yaml); "
                             "train / val / test become TRAIN / VAL / TEST")
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
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the toy data set, and of the --annotations TRAIN/TEST draw (default 0)")
    parser.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help="move this share of the TRAIN images (seeded, at random) into a VAL split "
                             "(VAL_images.json, VAL_objects.json), which train.py --eval-every evaluates on")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the --val-fraction draw (default 0)")
    parser.add_argument("--image-size", type=int, choices=(300, 512), default=300,
                        help="whose priors statistics.json / .png measure the objects against: SSD300's 8732 or "
                             "SSD512's 24564 (default 300)")
    args = parser.parse_args(argv)
    for json_option, folder_option in (("coco_json", "coco_images"), ("coco_test_json", "coco_test_images")):
        if (getattr(args, json_option) is None) != (getattr(args, folder_option) is None):
            parser.error(f"--{json_option.replace('_', '-')} and --{folder_option.replace('_', '-')} go together")
    sources = [name for name, given in (("--toy", args.toy), ("--toy-coco", args.toy_coco),
                                        ("--voc07 / --voc12", args.voc07 or args.voc12),
                                        ("--annotations", args.annotations), ("--yolo", args.yolo),
                                        ("--coco-json / --coco-test-json", args.coco_json or args.coco_test_json))
               if given]
    if len(sources) != 1:
        parser.error("give one source of data: --voc07 and/or --voc12, --annotations DIR, --coco-json and/or "
                     "--coco-test-json, --yolo DIR, --toy DIR or --toy-coco DIR"
                     + (f" (not {' and '.join(sources)})" if sources else ""))
    folder_options = [option for option in ("images", "test_fraction", "test_annotations", "test_images")
                      if getattr(args, option) is not None]
    if folder_options and not args.annotations and folder_options != ["test_fraction"]:
        parser.error(f"--{folder_options[0].replace('_', '-')} goes with --annotations DIR")
    if folder_options == ["test_fraction"] and not (args.annotations or args.yolo):
        parser.error("--test-fraction goes with --annotations DIR or --yolo DIR")
    if args.yolo and args.val_fraction is not None:
        parser.error("--val-fraction is for the other sources: a YOLO data set's val split is VAL")
    if args.test_images and not args.test_annotations:
        parser.error("--test-images goes with --test-annotations DIR")
    if args.classes is not None and (args.toy_coco or args.coco_json or args.coco_test_json):
        parser.error("--classes is for VOC folders; a COCO file's categories make the label map")
    if args.classes is not None and args.yolo:
        parser.error("--classes is for VOC folders; data.yaml's names make the label map")
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
        elif args.yolo:
            create_yolo_data_lists(args.yolo, output, args.test_fraction, args.seed, skip_bad=args.skip_bad)
        elif args.annotations:
            create_folder_data_lists(args.annotations, args.images, output, args.test_fraction, args.seed,
                                     args.test_annotations, args.test_images, classes=classes,
                                     skip_bad=args.skip_bad)
        else:
            create_data_lists(voc07, args.voc12, output, classes=classes, skip_bad=args.skip_bad)
        if not args.yolo:  # a YOLO set's VAL is its data.yaml's val, neither a draw nor a stale one
            apply_val_fraction(output, args.val_fraction, args.val_seed)
        # After the VAL draw, so that the statistics count the lists as they are left (ssd_support/data_statistics.py).
        write_data_statistics(output, split_statistics, image_size=args.image_size)
    except DataListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
