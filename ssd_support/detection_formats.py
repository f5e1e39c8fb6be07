"""Detections in the formats other tools read: Pascal VOC XML, YOLO txt + data.yaml, and one COCO json.

detect.py --save-voc / --save-yolo / --save-coco write them, to load detections as pre-annotations in CVAT, Label
Studio or labelImg (correct them, train on them) or into FiftyOne, supervision and pycocotools. Every function
takes values: an image's detections as detect.py gives them ({"label": class name, "score", "box": [x1, y1, x2,
y2]} in 0-based pixels of the upright image, EXIF orientation applied), its file name and its size.

The conventions, each the one its format's readers use:

- VOC numbers pixels from 1 and includes the last one, so the box [x1, y1, x2, y2] is written as xmin = x1 + 1,
  ymin = y1 + 1, xmax = x2, ymax = y2: create_data_lists.py reads [xmin - 1, ymin - 1, xmax, ymax] back, the
  same box. Coordinates are written as detect.py rounds them (0.1 pixel); VOC readers take decimals.
- YOLO writes ``class cx cy w h`` as fractions of the image's width and height (6 decimals, as Ultralytics
  writes them), class ids 0..n-1 for the labels 1..n (background has none), and the names in data.yaml.
- COCO's bbox is [x, y, width, height] in pixels; category ids are the labels, image ids 1..N.

A detection of zero width or height (a box clamped onto the image's edge; detect.py rounds boxes to 0.1 pixel)
is no object and is not written: create_data_lists.py and Ultralytics refuse such boxes, and one would make its
whole image bad there. The writers return how many they left out.

Where the files go (:class:`VocFolderWriter`, :class:`YoloFolderWriter`, :func:`place_image`): every file is
checked by the run's :class:`ssd_support.files.RunOutputs` before it is written, so that no input is ever
replaced (a YOLO set pre-annotated in place keeps its images where they are), and no file that this run did not
write is replaced without --overwrite (a folder of ground-truth XML, an existing YOLO set's labels). An existing
YOLO set's data.yaml is never replaced: it is kept when its names are the model's, the set refused otherwise.
Each file is named so that the reader the README gives (create_data_lists.py --annotations / --yolo) pairs it
with its own image: ``IMG_1.jpg`` and ``IMG_1.jpeg`` get ``IMG_1.xml`` and ``IMG_1.jpeg.xml``
(:func:`voc_annotation_id`).

:class:`DetectionExports` writes them as detect.py processes its images (one file per image, the COCO json and
data.yaml once all are).

The standard library, PyYAML for data.yaml (requirements.txt), ssd_support.files / ssd_support.images (leaves) and
ssd_support.yolo_format (an existing data.yaml's names, read as create_data_lists.py --yolo reads them).
"""

import json
import os
import shutil
import xml.etree.ElementTree as ET

from ssd_support.files import OutputRefused, RunOutputs, same_file, write_atomically
from ssd_support.images import IMAGE_EXTENSIONS
from ssd_support.yolo_format import YAML_NAMES, YoloDataError, class_names, load_yaml

# What a COCO results list without a single detection means (pycocotools' loadRes cannot read an empty list: an
# IndexError), said in one line wherever one is written (detect.py --save-coco, eval.py --save-detections).
EMPTY_RESULTS_NOTE = ("Note: no detections, so the COCO results are an empty list, which pycocotools' loadRes "
                      "cannot read (IndexError); the COCO AP of no detections is 0 for every class with objects.")

# Ultralytics writes its label files' fractions with 6 decimals (about 5e-7 of the side: a 2000-pixel side is off by
# at most 0.001 pixel).
YOLO_DECIMALS = 6


def has_area(box):
    """True when a [x1, y1, x2, y2] box has a positive width and height."""
    return box[2] > box[0] and box[3] > box[1]


def _number(value):
    """A coordinate as text: a whole number without ".0" (labelImg, CVAT write integers), else as it is."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(round(value, 6))


def voc_xml(detections, image_name, width, height, image_path=None, folder=None):
    """One image's detections as a Pascal VOC annotation (labelImg's and CVAT's layout).

    :param detections: list of {"label": class name, "box": [x1, y1, x2, y2] in 0-based pixels, ...}
    :param image_name: the image's file name, for ``<filename>`` (create_data_lists.py finds the image by the XML's
        own name first, ``<filename>`` being the fallback)
    :param width: the image's upright width in pixels (``<size>``, which create_data_lists.py checks)
    :param height: its upright height in pixels
    :param image_path: written as ``<path>`` when given (labelImg writes the image's absolute path there)
    :param folder: written as ``<folder>`` when given
    :return: (the XML text, UTF-8 with its declaration, the number of zero-size detections left out)
    """
    root = ET.Element("annotation")
    if folder is not None:
        ET.SubElement(root, "folder").text = str(folder)
    ET.SubElement(root, "filename").text = str(image_name)
    if image_path is not None:
        ET.SubElement(root, "path").text = str(image_path)
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "detect.py"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    left_out = 0
    for detection in detections:
        x1, y1, x2, y2 = detection["box"]
        if not has_area(detection["box"]):
            left_out += 1
            continue
        element = ET.SubElement(root, "object")
        ET.SubElement(element, "name").text = detection["label"]
        ET.SubElement(element, "pose").text = "Unspecified"
        ET.SubElement(element, "truncated").text = "0"
        ET.SubElement(element, "difficult").text = "0"
        box = ET.SubElement(element, "bndbox")
        # 1-based and inclusive, as VOC counts pixels: the reader subtracts 1 from xmin and ymin again.
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(box, tag).text = _number(value)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n", left_out


def yolo_class_names(label_map):
    """The YOLO class names of a label map: class id i is label i + 1 (label 0, background, has none).

    :param label_map: {class name: label}, background 0, the labels 1..n
    :return: the n names, index = class id
    :raises ValueError: when the labels are not 1..n (a YOLO id could not name its class)
    """
    names = {label: name for name, label in label_map.items() if label != 0}
    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"the label map's labels are {sorted(names)}, not 1..{len(names)}: no YOLO class ids for them")
    return [names[label] for label in range(1, len(names) + 1)]


def yolo_label_lines(detections, label_map, width, height, scores=False):
    """One image's detections as a YOLO label file: ``class cx cy w h`` per line, fractions of the image's size.

    :param detections: list of {"label": class name, "score", "box": [x1, y1, x2, y2] in pixels}
    :param label_map: {class name: label}, background 0, labels 1..n: class id = label - 1
    :param width: the image's upright width in pixels (the fractions' denominator, as YOLO readers take it)
    :param height: its upright height in pixels
    :param scores: add the score as a sixth value (Ultralytics' ``save_conf``); create_data_lists.py --yolo reads
        it and ignores it, but training tools that expect five values may not
    :return: (the text, one line per detection, ending with a newline unless empty; the number of zero-size
        detections left out)
    :raises KeyError: naming a detection's label that the label map does not have
    """
    lines, left_out = [], 0
    for detection in detections:
        x1, y1, x2, y2 = detection["box"]
        if not has_area(detection["box"]):
            left_out += 1
            continue
        values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
        line = f"{label_map[detection['label']] - 1} " + " ".join(f"{value:.{YOLO_DECIMALS}f}" for value in values)
        if scores:
            line += f" {detection['score']:.4f}"
        lines.append(line)
    return "".join(line + "\n" for line in lines), left_out


def yolo_data_yaml(names, images="images"):
    """The data.yaml of a folder of detections written as a YOLO data set (Ultralytics' layout).

    No ``path``: Ultralytics reads a relative ``path`` from its own datasets folder, not the yaml's, while without
    one the entries are relative to the yaml's folder, wherever the folder is moved.

    :param names: the class names, index = class id (:func:`yolo_class_names`)
    :param images: the images' folder, relative to the yaml; both train and val (Ultralytics needs both)
    :return: the YAML text
    """
    import yaml  # PyYAML (requirements.txt): it quotes names that YAML would read otherwise ("yes", "1: a")

    header = ("# Detections written by detect.py --save-yolo, as a YOLO data set: images/ and labels/ side by side.\n"
              "# Read back with: python create_data_lists.py --yolo THIS_FOLDER --output data/mine\n")
    body = yaml.safe_dump({"train": images, "val": images, "nc": len(names),
                           "names": {index: name for index, name in enumerate(names)}},
                          sort_keys=False, allow_unicode=True)
    return header + body


def place_image(source, destination, outputs=None):
    """Put an image file into a YOLO folder's images/ (its label file is found from its path there): a hard link
    where the file system allows one (no copy of the bytes), else a copy. The source is never removed or changed.

    :param source: the image file
    :param destination: its path under images/
    :param outputs: the run's :class:`ssd_support.files.RunOutputs` (None: one without inputs or --overwrite):
        ``destination`` is claimed there, so an existing file that this run did not write is refused unless
        --overwrite, and an input never replaced
    :return: "in place" (``destination`` already is ``source``, or a hard link to it: nothing written),
        "linked" or "copied"
    :raises OutputRefused: one line naming ``destination``
    """
    if os.path.lexists(destination) and same_file(source, destination):
        return "in place"
    outputs = RunOutputs() if outputs is None else outputs
    outputs.claim(destination, "--save-yolo image")
    if os.path.lexists(destination):  # allowed: written earlier in this run, or --overwrite, and not an input
        os.remove(destination)
    try:
        os.link(source, destination)
        return "linked"
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, destination)
        return "copied"


def _direct_image(folder, stem, cache):
    """The image that create_data_lists.py's VOC folder reader takes for the annotation ID ``stem`` in ``folder``
    before looking at ``<filename>``: ``<stem>.<ext>`` for the first of IMAGE_EXTENSIONS that exists (any letter
    case of the extension, the first file name in sorted order), or None.

    :param cache: a dict kept for the run: {folder: {(stem, lower-case extension): file name}}
    """
    if folder not in cache:
        cache[folder] = {}
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            name_stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                cache[folder].setdefault((name_stem, extension.lower()), name)
    for extension in IMAGE_EXTENSIONS:
        if (stem, extension) in cache[folder]:
            return os.path.join(folder, cache[folder][stem, extension])
    return None


def voc_annotation_id(image_path, image_root, taken, cache):
    """The name (without .xml) of an image's VOC annotation, such that create_data_lists.py --annotations DIR
    --images IMAGE_ROOT pairs it with this image and no other.

    That reader takes ``IMAGE_ROOT/<ID>.<ext>`` first (.jpg before .jpeg, .png, ...), and ``<filename>`` (relative
    to IMAGE_ROOT) only when the ID has no image of its own. So the ID is the image's stem (labelImg's convention:
    ``a.jpg`` -> ``a.xml``) when that finds this very image, else its whole file name (``IMG_1.jpeg`` ->
    ``IMG_1.jpeg.xml`` beside ``IMG_1.xml`` of ``IMG_1.jpg``; an image in a sub-folder, or with another
    extension), numbered when taken (``x.jpg_2``). IDs are compared case-insensitively: on Windows and macOS
    ``a.xml`` and ``A.xml`` are one file.

    :param image_path: the image file
    :param image_root: the folder the reader is given as --images (the image is under it)
    :param taken: the IDs given so far in this folder, case-folded; the new one is added
    :param cache: a dict kept for the run (folder listings)
    :return: the ID
    """
    folder, name = os.path.split(os.path.abspath(image_path))
    stem = os.path.splitext(name)[0]
    root = os.path.abspath(image_root)
    if folder == root and stem.casefold() not in taken:
        found = _direct_image(root, stem, cache)
        if found is not None and same_file(found, image_path):
            taken.add(stem.casefold())
            return stem
    candidate, number = name, 2
    # An ID with an image of its own (a file "IMG_1.jpeg.png") would be paired with that image, not <filename>'s.
    while candidate.casefold() in taken or _direct_image(root, candidate, cache) is not None:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate.casefold())
    return candidate


class VocFolderWriter:
    """detect.py --save-voc DIR: one Pascal VOC XML per image, named by :func:`voc_annotation_id` and with
    ``<filename>`` the image's path relative to ``image_root`` (its name, for an image directly in it), so that
    ``create_data_lists.py --annotations DIR --images IMAGE_ROOT`` gives every image its own boxes.

    :param folder: the folder of XML files (created)
    :param image_root: the folder the read-back is given as --images (the common folder of the images)
    :param outputs: the run's :class:`ssd_support.files.RunOutputs`
    """

    def __init__(self, folder, image_root, outputs):
        self.folder, self.image_root, self.outputs = folder, image_root, outputs
        self.taken, self.cache, self.written = set(), {}, {}
        os.makedirs(folder, exist_ok=True)

    def planned(self, image_paths):
        """The XML files the images would get (for a check before any work), without claiming them."""
        taken, cache = set(self.taken), {}
        return [os.path.join(self.folder, voc_annotation_id(path, self.image_root, taken, cache) + ".xml")
                for path in image_paths]

    def add(self, image_path, detections, width, height):
        """Write one image's XML.

        :return: the file written, or None for an image already written in this run (the same file given twice:
            a second XML would list it twice)
        :raises OutputRefused: when the XML file exists and was not written by this run (without --overwrite)
        """
        key = os.path.normcase(os.path.realpath(image_path))
        if key in self.written:
            return None
        image_id = voc_annotation_id(image_path, self.image_root, self.taken, self.cache)
        relative = os.path.relpath(os.path.abspath(image_path), os.path.abspath(self.image_root)).replace(os.sep, "/")
        text, _ = voc_xml(detections, relative, width, height, image_path=os.path.abspath(image_path))
        path = self.outputs.claim(RunOutputs.inside(self.folder, image_id + ".xml", "--save-voc"), "--save-voc")
        write_atomically(path, lambda file: file.write(text))
        self.written[key] = path
        return path


class YoloFolderWriter:
    """detect.py --save-yolo DIR: images/ (the images linked or copied, or left where they are when they already
    are in DIR/images), labels/ (one label file per image, at Ultralytics' path for it) and data.yaml.

    A data.yaml (or data.yml) already in DIR is the data set's own and is never rewritten: its splits are the set's,
    and its names say what every label file's class ids mean, those this run does not write too. It is kept when its
    names are the model's in label order; otherwise the set is refused (:meth:`check_before_writing`).

    :param folder: the data set's folder (images/ and labels/ created)
    :param label_map: {class name: label}, background 0, labels 1..n
    :param scores: the score as a sixth value of each line
    :param outputs: the run's :class:`ssd_support.files.RunOutputs`
    :raises ValueError: when the label map's labels are not 1..n
    """

    def __init__(self, folder, label_map, scores, outputs):
        self.folder, self.label_map, self.scores, self.outputs = folder, label_map, scores, outputs
        self.names = yolo_class_names(label_map)
        self.labels = {}  # label file -> the image it belongs to
        self.listed = {}  # folder -> {stem: the image files in it when first looked at}
        for sub in ("images", "labels"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)

    def check_before_writing(self):
        """Refuse, before any work, a folder that already holds a YOLO set's label files: this run would replace
        some of them and leave the others, a set that means neither (unless --overwrite); and, even with --overwrite,
        a set whose data.yaml has other names than the model's (:meth:`kept_yaml`).

        :raises OutputRefused: one line naming the file found
        """
        if self.kept_yaml() is None:
            self.outputs.check(os.path.join(self.folder, "data.yaml"), "--save-yolo")
        labels = os.path.join(self.folder, "labels")
        existing = sorted(name for name in os.listdir(labels) if name.endswith(".txt")) if os.path.isdir(labels) else []
        if existing and not self.outputs.overwrite:
            raise OutputRefused(f"{os.path.join(labels, existing[0])}: --save-yolo would write into a YOLO set that "
                                f"has {len(existing)} label file(s) already; give --overwrite to replace those named "
                                f"like the images, or write elsewhere")

    def _target(self, image_path, stem, labels=None):
        """Where an image and its label file go: (destination, how: "saved", "in place" or None for placing, the
        label file), refused when its label file would be another image's.

        :param labels: {label file: image} of the images before it (default: those written)
        :raises OutputRefused: as :meth:`add`
        """
        images = os.path.join(self.folder, "images")
        relative = os.path.relpath(os.path.abspath(image_path), os.path.abspath(images))
        extension = os.path.splitext(image_path)[1]
        if extension.lower() not in IMAGE_EXTENSIONS:  # YOLO readers find images by extension: saved as PNG
            destination, how = RunOutputs.inside(images, stem + ".png", "--save-yolo"), "saved"
        elif relative.startswith(os.pardir + os.sep):
            destination, how = RunOutputs.inside(images, stem + extension, "--save-yolo"), None
        else:
            destination, how = image_path, "in place"  # pre-annotating a set in place: the image stays as it is
        # Ultralytics' rule: the last /images/ of the path becomes /labels/, the extension .txt.
        head, _, tail = os.path.abspath(destination).rpartition(os.sep + "images" + os.sep)
        label = os.path.splitext(head + os.sep + "labels" + os.sep + tail)[0] + ".txt"
        owner = (self.labels if labels is None else labels).get(label) or self._other_image(destination)
        if owner is not None and not same_file(owner, image_path):
            raise OutputRefused(f"{image_path}: its YOLO label file {label} would also be {owner}'s (YOLO pairs an "
                                f"image and its labels by the name without extension); rename one of them")
        return destination, how, label

    def planned(self, image_paths, stems):
        """Check, before any work, where the images and their label files would go (:meth:`add`'s refusals).

        :param stems: each image's unique name in this run
        :raises OutputRefused: one line naming the file
        """
        labels = dict(self.labels)
        for image_path, stem in zip(image_paths, stems):
            destination, how, label = self._target(image_path, stem, labels)
            labels[label] = image_path
            self.outputs.check(label, "--save-yolo")
            if how != "in place" and not (os.path.lexists(destination) and same_file(image_path, destination)):
                self.outputs.check(destination, "--save-yolo")

    def add(self, image_path, stem, image, detections):
        """Place one image and write its label file.

        :param stem: the image's unique name in this run, for images/<stem>.<ext> (an image already under
            DIR/images/ keeps its own path)
        :param image: the decoded upright PIL image (its size is the boxes' frame)
        :return: "in place", "linked", "copied" or "saved" (a file of another extension, saved as PNG)
        :raises OutputRefused: for a file that may not be written, or two images that would share a label file
        """
        destination, how, label = self._target(image_path, stem)
        self.outputs.check(label, "--save-yolo")
        if how == "saved":
            image.save(self.outputs.claim(destination, "--save-yolo"))
        elif how is None:
            how = place_image(image_path, destination, self.outputs)
        self.labels[label] = image_path
        text, _ = yolo_label_lines(detections, self.label_map, image.width, image.height, self.scores)
        os.makedirs(os.path.dirname(label), exist_ok=True)
        write_atomically(self.outputs.claim(label, "--save-yolo"), lambda file: file.write(text))
        return how

    def _other_image(self, destination):
        """An image file beside ``destination`` with its name but another extension (the reader would give it the
        same label file), that was there before this run; or None."""
        folder, name = os.path.split(os.path.abspath(destination))
        if folder not in self.listed:  # {stem: the image files of that stem}, listed once
            self.listed[folder] = {}
            for other in os.listdir(folder) if os.path.isdir(folder) else []:
                other_stem, extension = os.path.splitext(other)
                if extension.lower() in IMAGE_EXTENSIONS:
                    self.listed[folder].setdefault(other_stem, []).append(os.path.join(folder, other))
        return next((path for path in self.listed[folder].get(os.path.splitext(name)[0], [])
                     if not same_file(path, destination)), None)

    def kept_yaml(self):
        """The data set's own data.yaml (or data.yml, as create_data_lists.py --yolo finds it), kept as it is because
        its names are the model's in label order; None when the folder has none (this run writes one).

        Never replaced, even with --overwrite: its splits are the set's, and its names give the class ids of every
        label file, those this run does not rewrite too (new names would re-map them silently).

        :return: its path, or None
        :raises OutputRefused: one line naming it, when it cannot be read or its names are not the model's
        """
        path = next((os.path.join(self.folder, name) for name in YAML_NAMES
                     if os.path.lexists(os.path.join(self.folder, name))), None)
        if path is None:
            return None
        try:
            names = class_names(load_yaml(path), path)
        except YoloDataError as error:
            raise OutputRefused(f"{error} (--save-yolo keeps a data set's own data.yaml and needs its names to be "
                                f"the model's)") from None
        if names != self.names:
            raise OutputRefused(f"{path}: its names {names} are not the model's {self.names} (in label order): "
                                f"--save-yolo would write labels that it reads as other classes, and never replaces a "
                                f"data set's data.yaml (not even with --overwrite); write elsewhere")
        return path

    def close(self):
        """Write data.yaml, unless the set has its own (:meth:`kept_yaml`), kept as it is.

        :return: (its path, True when it was kept)
        """
        kept = self.kept_yaml()
        if kept is not None:
            return kept, True
        path = self.outputs.claim(os.path.join(self.folder, "data.yaml"), "--save-yolo")
        text = yolo_data_yaml(self.names)
        write_atomically(path, lambda file: file.write(text))
        return path, False


def coco_document(images, label_map, description="detect.py detections"):
    """The detections of several images as one COCO json (instances format, with a "score" per annotation).

    pycocotools reads it as a data set (``COCO(file)``) and its "annotations" as results (``loadRes``): each has
    the image id, category id, bbox and score a results file needs, and the area and iscrowd a data set needs.

    :param images: list of {"file_name": the image's name as COCO tools look it up (relative to an images folder),
        "width", "height": its upright size in pixels, "detections": detect.py's list for it}; image ids 1..N in
        this order
    :param label_map: {class name: label}, background 0: categories with the labels as ids, background left out
    :param description: the "info" block's description
    :return: (the document as a dict, the number of zero-size detections left out)
    :raises KeyError: naming a detection's label that the label map does not have
    """
    document = {"info": {"description": description}, "licenses": [], "images": [], "annotations": [],
                "categories": [{"id": label, "name": name, "supercategory": ""}
                               for name, label in sorted(label_map.items(), key=lambda item: item[1]) if label != 0]}
    left_out = 0
    for image_id, image in enumerate(images, 1):
        document["images"].append({"id": image_id, "file_name": image["file_name"], "width": int(image["width"]),
                                   "height": int(image["height"])})
        for detection in image["detections"]:
            x1, y1, x2, y2 = detection["box"]
            if not has_area(detection["box"]):
                left_out += 1
                continue
            width, height = round(x2 - x1, 6), round(y2 - y1, 6)
            document["annotations"].append({
                "id": len(document["annotations"]) + 1, "image_id": image_id,
                "category_id": label_map[detection["label"]], "bbox": [x1, y1, width, height],
                "area": round(width * height, 6), "iscrowd": 0, "score": detection["score"]})
    return document, left_out


def coco_json_text(document):
    """A COCO document as JSON text: one image, category or annotation per line (readable, still plain JSON)."""
    parts = []
    for key, value in document.items():
        if isinstance(value, list) and value:
            items = ",\n".join("  " + json.dumps(item) for item in value)
            parts.append(f"{json.dumps(key)}: [\n{items}\n]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


class DetectionExports:
    """detect.py --save-voc / --save-yolo / --save-coco: each image's detections in other tools' formats
    (ssd_support/py), as the images are processed; the COCO file once all are.

    :param label_map: {class name: label}, background 0
    :param image_root: the folder the images' COCO file names are relative to (the common folder of the inputs)
    :param voc_folder: one <stem>.xml per image here (None: none)
    :param yolo_folder: a YOLO data set here: images/<stem>.<ext> (hard link or copy of the file), labels/<stem>.txt,
        data.yaml (None: none)
    :param yolo_scores: the score as a sixth value of each YOLO line
    :param coco_file: one COCO json of every image (None: none)
    :param outputs: the run's ssd_support.files.RunOutputs (inputs, --overwrite), which every file is checked by
    :raises ValueError: when the label map's labels are not 1..n (YOLO class ids)
    """

    def __init__(self, label_map, image_root, voc_folder=None, yolo_folder=None, yolo_scores=False, coco_file=None,
                 outputs=None):
        self.label_map, self.image_root = label_map, image_root
        self.voc_folder, self.yolo_folder, self.yolo_scores, self.coco_file = (voc_folder, yolo_folder, yolo_scores,
                                                                               coco_file)
        self.outputs = RunOutputs() if outputs is None else outputs
        self.coco_images, self.left_out, self.n_images = [], 0, 0
        self.placed = {"in place": 0, "linked": 0, "copied": 0, "saved": 0}
        self.voc = VocFolderWriter(voc_folder, image_root, self.outputs) if voc_folder else None
        self.yolo = (YoloFolderWriter(yolo_folder, label_map, yolo_scores, self.outputs)
                     if yolo_folder else None)

    def check_before_writing(self, image_paths, stems):
        """Refuse, before any work, the files this run may not write (ssd_support.files.RunOutputs): an existing
        XML of --save-voc, an existing YOLO set, an existing --save-coco file, without --overwrite; an input, always.

        :raises ssd_support.files.OutputRefused: one line naming the file
        """
        for path in self.voc.planned(image_paths) if self.voc else ():
            self.outputs.check(path, "--save-voc")
        if self.yolo:
            self.yolo.check_before_writing()
            self.yolo.planned(image_paths, stems)
        if self.coco_file:
            self.outputs.check(self.coco_file, "--save-coco")

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
        self.left_out += sum(not has_area(detection["box"]) for detection in detections)
        if self.voc:
            self.voc.add(path, detections, image.width, image.height)
        if self.yolo:
            self.placed[self.yolo.add(path, stem, image, detections)] += 1
        if self.coco_file:
            self.coco_images.append({"file_name": os.path.relpath(os.path.abspath(path), self.image_root).replace(
                os.sep, "/"), "width": image.width, "height": image.height, "detections": detections})

    def close(self):
        """Write what is written once (data.yaml, the COCO json).

        :return: the lines to print: one per format, with the command that reads it back
        """
        lines = []
        if self.voc_folder:
            lines.append(f"--save-voc: {len(self.voc.written)} Pascal VOC XML files -> {self.voc_folder} (read back: "
                         f"python create_data_lists.py --annotations {self.voc_folder} --images {self.image_root})")
        if self.yolo_folder:
            yaml_path, kept = self.yolo.close()
            how = ", ".join(f"{count} {name}" for name, count in self.placed.items() if count)
            yaml_text = (f"the set's own {os.path.basename(yaml_path)} kept as it is (its names are the model's)"
                         if kept else "data.yaml")
            lines.append(f"--save-yolo: {self.n_images} images ({how or 'none'}) and YOLO label files, and {yaml_text} "
                         f"-> {self.yolo_folder} (read back: python create_data_lists.py --yolo {self.yolo_folder})")
        if self.coco_file:
            document, _ = coco_document(self.coco_images, self.label_map)
            text = coco_json_text(document)
            write_atomically(self.outputs.claim(self.coco_file, "--save-coco"), lambda file: file.write(text))
            lines.append(f"--save-coco: {len(document['images'])} images, {len(document['annotations'])} detections "
                         f"-> {self.coco_file} (file names relative to {self.image_root})")
            if not document["annotations"]:
                lines.append(EMPTY_RESULTS_NOTE)
        if self.left_out:
            lines.append(f"Note: {self.left_out} detection(s) of zero width or height (a box clamped onto the image's "
                         f"edge) are not in these files: no tool reads such a box as an object.")
        return lines
