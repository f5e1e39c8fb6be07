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

:class:`DetectionExports` writes them as detect.py processes its images (one file per image, the COCO json and
data.yaml once all are).

The standard library, and PyYAML for data.yaml (requirements.txt); of the project, ssd_support.files' atomic
writer and ssd_support.images' IMAGE_EXTENSIONS.
"""

import json
import os
import shutil
import xml.etree.ElementTree as ET

from ssd_support.files import write_atomically
from ssd_support.images import IMAGE_EXTENSIONS

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


def place_image(source, destination):
    """Put an image file into a YOLO folder's images/ (its label file is found from its path there): a hard link
    where the file system allows one (no copy of the bytes), else a copy.

    :param source: the image file
    :param destination: its path under images/; an existing file there is replaced
    :return: "linked" or "copied"
    """
    if os.path.lexists(destination):
        os.remove(destination)
    try:
        os.link(source, destination)
        return "linked"
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, destination)
        return "copied"


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
    (ssd_support/detection_formats.py), as the images are processed; the COCO file once all are.

    :param label_map: {class name: label}, background 0
    :param image_root: the folder the images' COCO file names are relative to (the common folder of the inputs)
    :param voc_folder: one <stem>.xml per image here (None: none)
    :param yolo_folder: a YOLO data set here: images/<stem>.<ext> (hard link or copy of the file), labels/<stem>.txt,
        data.yaml (None: none)
    :param yolo_scores: the score as a sixth value of each YOLO line
    :param coco_file: one COCO json of every image (None: none)
    :raises ValueError: when the label map's labels are not 1..n (YOLO class ids)
    """

    def __init__(self, label_map, image_root, voc_folder=None, yolo_folder=None, yolo_scores=False, coco_file=None):
        self.label_map, self.image_root = label_map, image_root
        self.voc_folder, self.yolo_folder, self.yolo_scores, self.coco_file = (voc_folder, yolo_folder, yolo_scores,
                                                                               coco_file)
        self.coco_images, self.placed, self.left_out, self.n_images = [], {"linked": 0, "copied": 0, "saved": 0}, 0, 0
        if voc_folder:
            os.makedirs(voc_folder, exist_ok=True)
        if yolo_folder:
            self.yolo_names = yolo_class_names(label_map)
            for sub in ("images", "labels"):
                os.makedirs(os.path.join(yolo_folder, sub), exist_ok=True)

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
        if self.voc_folder:
            text, _ = voc_xml(detections, os.path.basename(path), image.width, image.height,
                              image_path=os.path.abspath(path))
            write_atomically(os.path.join(self.voc_folder, stem + ".xml"), lambda file: file.write(text))
        if self.yolo_folder:
            extension = os.path.splitext(path)[1]
            if extension.lower() in IMAGE_EXTENSIONS:
                how = place_image(path, os.path.join(self.yolo_folder, "images", stem + extension))
            else:  # a file named explicitly with another extension: YOLO readers find images by extension
                image.save(os.path.join(self.yolo_folder, "images", stem + ".png"))
                how = "saved"
            self.placed[how] += 1
            text, _ = yolo_label_lines(detections, self.label_map, image.width, image.height,
                                       self.yolo_scores)
            write_atomically(os.path.join(self.yolo_folder, "labels", stem + ".txt"), lambda file: file.write(text))
        if self.coco_file:
            self.coco_images.append({"file_name": os.path.relpath(os.path.abspath(path), self.image_root).replace(
                os.sep, "/"), "width": image.width, "height": image.height, "detections": detections})

    def close(self):
        """Write what is written once (data.yaml, the COCO json).

        :return: the lines to print: one per format, with the command that reads it back
        """
        lines = []
        if self.voc_folder:
            lines.append(f"--save-voc: {self.n_images} Pascal VOC XML files -> {self.voc_folder} (read back: python "
                         f"create_data_lists.py --annotations {self.voc_folder} --images {self.image_root})")
        if self.yolo_folder:
            yaml_path = os.path.join(self.yolo_folder, "data.yaml")
            text = yolo_data_yaml(self.yolo_names)
            write_atomically(yaml_path, lambda file: file.write(text))
            how = ", ".join(f"{count} {name}" for name, count in self.placed.items() if count)
            lines.append(f"--save-yolo: {self.n_images} images ({how or 'none'}) and YOLO label files, and data.yaml "
                         f"-> {self.yolo_folder} (read back: python create_data_lists.py --yolo {self.yolo_folder})")
        if self.coco_file:
            document, _ = coco_document(self.coco_images, self.label_map)
            text = coco_json_text(document)
            write_atomically(self.coco_file, lambda file: file.write(text))
            lines.append(f"--save-coco: {len(document['images'])} images, {len(document['annotations'])} detections "
                         f"-> {self.coco_file} (file names relative to {self.image_root})")
        if self.left_out:
            lines.append(f"Note: {self.left_out} detection(s) of zero width or height (a box clamped onto the image's "
                         f"edge) are not in these files: no tool reads such a box as an object.")
        return lines
