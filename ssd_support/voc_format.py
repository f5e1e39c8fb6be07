"""Pascal VOC XML annotations as real annotation tools write them, read for create_data_lists.py.

The parser of one annotation (:func:`parse_annotation`) and its quirks: the image of an ID found as the VOC devkit
finds it (:func:`find_image`), any declared encoding (:func:`read_xml`), the annotated size checked against the
image (:func:`size_mismatch`), 0/1 flags as tools write them, class names in any case and spacing
(:func:`resolve_class_name`); ImageSets lists (:func:`read_image_ids`, :func:`resolve_image_id`); the label map
chosen from the names found (:func:`choose_label_map`); and the XML sources turned into lists
(:func:`build_and_write`), for VOC folders (create_data_lists.create_data_lists) and for folders of XML files
without ImageSets (:func:`create_folder_data_lists`, --annotations).
"""

import difflib
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import defusedxml
import defusedxml.ElementTree

from ssd_support.data_lists import SPLITS, AnnotationProblem, DataListError, multi_frame_notes, report_and_write
from ssd_support.data_lists import canonical_class_name, split_ids
from ssd_support.files import bom_encoding, read_bounded_text, text_lines
from ssd_support.images import IMAGE_EXTENSIONS, UnreadableImageError, image_size_and_frames, resolve_written_path
from ssd_support.limits import MAX_LIST_FILE_BYTES, MAX_OBJECTS_PER_IMAGE
from utils import VOC_LABELS, make_label_map

DEFAULT_TEST_FRACTION = 0.2  # --annotations without --test-annotations: a fifth of the images for TEST
# A non-VOC name holding at most this fraction of the objects, the rest all VOC classes, is named in the summary.
RARE_NAME_FRACTION = 0.01
TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"", "0", "false", "no"}


# ---------------------------------------------------------------------------------------------------------
# Parsing one annotation
# ---------------------------------------------------------------------------------------------------------


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
    :return: {(stem, ".jpg"): file name, ...}, empty when the folder does not exist; regular files only (or links
        to them): a FIFO named like an image would make the size check wait for a writer forever
    """
    if folder not in cache:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file()) if os.path.isdir(folder) else []
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


def read_xml(xml_path, max_objects=None):
    """Parse an XML file in the encoding it declares, as annotation tools write them, with the hardened parser.

    Annotation files come from elsewhere, so they go through defusedxml (the field's hardened front end of the
    standard library's parser), which refuses any DTD (``<!DOCTYPE ...>``) and so every entity declaration (the
    "billion laughs" expansion, external entities that would read other files or URLs): VOC annotations need none.

    Python's XML parser (expat) refuses multi-byte encodings other than UTF-8 and UTF-16, which Chinese, Japanese
    and Korean versions of labelImg write (``<?xml version="1.0" encoding="gb2312"?>``): the bytes are decoded here
    instead, by the byte-order mark, else the declared encoding, else UTF-8.

    :param xml_path: an existing XML file
    :return: the root element
    :param max_objects: refuse a file of more ``<object>`` tags than this before parsing it (None: no limit): a
        broken export of 100,000 boxes is 14 MB of XML that takes ~800 MB and seconds to parse, for nothing
    :raises AnnotationProblem: "malformed XML" when the file cannot be decoded or parsed; "refused XML" when it
        declares a DTD or entities; "too many objects"
    """
    with open(xml_path, "rb") as f:
        data = f.read()
    declared = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", data)
    encoding = bom_encoding(data) or (declared.group(1).decode("ascii") if declared else "utf-8")
    try:
        text = data.decode(encoding)
    except LookupError:
        raise AnnotationProblem("malformed XML", xml_path, f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as error:
        raise AnnotationProblem("malformed XML", xml_path, f"not valid {encoding} text ({error.reason} at byte "
                                                           f"{error.start}); declare the file's encoding") from None
    # An upper bound of the <object> elements (a tag in a comment counts too), counted in milliseconds.
    n_objects = len(re.findall(r"<object[\s/>]", text)) if max_objects is not None else 0
    if max_objects is not None and n_objects > max_objects:
        raise AnnotationProblem("too many objects", xml_path, f"{n_objects} <object> elements, more than the limit "
                                                              f"of {max_objects} per image "
                                                              f"(ssd_support.limits.MAX_OBJECTS_PER_IMAGE)")
    # The text is decoded now; its declaration would make expat try to decode it again.
    text = re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", text, count=1)
    try:
        return defusedxml.ElementTree.fromstring(text, forbid_dtd=True)
    except defusedxml.DefusedXmlException as error:
        what = ("a DTD (<!DOCTYPE>)" if isinstance(error, defusedxml.DTDForbidden) else
                "an entity declaration" if isinstance(error, defusedxml.EntitiesForbidden) else "an external reference")
        raise AnnotationProblem("refused XML", xml_path, f"declares {what}, which annotation files do not need and "
                                                         f"the hardened parser (defusedxml) refuses") from None
    except ET.ParseError as error:
        raise AnnotationProblem("malformed XML", xml_path, f"malformed XML ({error})") from None


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
    root = read_xml(xml_path, max_objects=MAX_OBJECTS_PER_IMAGE)

    filename, written_path = root.findtext("filename"), root.findtext("path")
    image_path, filename_disagrees = find_image(image_folder, image_id, filename, cache, written_path,
                                                os.path.dirname(xml_path))
    if image_path is None:
        for extension in IMAGE_EXTENSIONS:  # a FIFO or device named like the image (never opened: it would hang)
            named_like = os.path.join(image_folder, image_id + extension)
            if os.path.exists(named_like) and not os.path.isfile(named_like):
                raise AnnotationProblem("unreadable image", xml_path, f"{named_like}: not a regular file (a FIFO, "
                                                                      f"socket or device); not read")
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

    :raises DataListError: one line naming the file when it is not a regular file (a FIFO, /dev/zero), larger than
        MAX_LIST_FILE_BYTES, or not UTF-8 (or UTF-16/32 with a byte-order mark) text
    """
    try:
        return [line for _, line in text_lines(read_bounded_text(path, MAX_LIST_FILE_BYTES))]
    except ValueError as error:
        raise DataListError(f"{path}: {error}") from None


def read_image_ids(voc_folder, image_set):
    """The image IDs of ImageSets/Main/<image_set>.txt: each whole stripped line ("leaf 1" is the ID of
    "leaf 1.xml"; see :func:`resolve_image_id` for VOC's per-class "ID  1" lines).

    :raises DataListError: when the list does not exist (a wrong path rather than a bad sample), is not a regular
        file (or read_text_lines refuses it), or when it resolves
        (a symbolic link) outside the data set folder: its lines would be printed in the problem messages, so a
        file outside the data set is never read (one line naming the path)
    """
    path = os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt")
    real, root = os.path.realpath(path), os.path.realpath(voc_folder)
    if os.path.exists(path) and os.path.commonpath([real, root]) != root:
        raise DataListError(f"{path}: refused, it resolves to {real}, outside the data set folder {root} (a symbolic "
                            f"link?); an image set list must be a file of the data set")
    if not os.path.exists(path):  # a folder or a FIFO of that name: read_text_lines says "not a regular file"
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


def build_and_write(sources, classes, skip_bad, output_folder, source_names, out):
    """Parse the annotations of XML sources (VOC folders or plain folders), decide the label map, write the lists.

    :param sources: list of (split, annotations folder, image folder, [image IDs])
    :return: the summary dict of :func:`ssd_support.data_lists.report_and_write`
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
    return report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder,
                            source_names, out, notes=notes, extra=extra)


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
    :param classes: as in :func:`choose_label_map`
    :param skip_bad: leave bad objects / images out (counted) instead of failing
    :param out: a file to print the report to
    :return: the summary dict of :func:`ssd_support.data_lists.report_and_write`
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
    return build_and_write(sources, classes, skip_bad, output_folder, names, out or sys.stdout)
