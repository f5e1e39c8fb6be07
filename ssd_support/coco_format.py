"""COCO-format annotation files (instances_*.json), read for create_data_lists.py --coco-json.

A file's images are checked against their files (present, readable, of the size the file gives), its categories
become labels 1..K in increasing id order (:func:`coco_label_map`), its boxes [x, y, w, h] become [x1, y1, x2, y2]
clipped to the image, crowd regions difficult objects; :func:`create_coco_data_lists` writes the lists (through
ssd_support.data_lists) and the json's own ids beside them (ssd_support.detection_export.write_coco_ids).
"""

import os
import sys
from collections import Counter

from ssd_support.data_lists import SPLITS, AnnotationProblem, DataListError, list_path, multi_frame_notes
from ssd_support.data_lists import canonical_class_name, report_and_write
from ssd_support.files import read_json
from ssd_support.images import UnreadableImageError, image_size_and_frames, resolve_written_path
from ssd_support.limits import MAX_OBJECTS_PER_IMAGE
from ssd_support.voc_format import size_mismatch
from utils import make_label_map


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


def _leave_out_crowded_images(data, json_path, images, problems):
    """Report and leave out every image with more than MAX_OBJECTS_PER_IMAGE annotations (ssd_support/limits.py):
    a broken export that wrote 100,000 boxes on one image would need ~8 GB per training step for it. Its
    annotations are then those of an image left out, dropped with it.

    :param data: the parsed file
    :param json_path: its path, named in the problem
    :param images: {image id: image} of :func:`_coco_images`, changed in place
    :param problems: the list of AnnotationProblem, appended to
    """
    counts = Counter(annotation.get("image_id") for annotation in data["annotations"]
                     if isinstance(annotation, dict) and isinstance(annotation.get("image_id"), (int, str)))
    for image_id, count in counts.items():
        if count > MAX_OBJECTS_PER_IMAGE and image_id in images:
            problems.append(AnnotationProblem(
                "too many objects", json_path, f"image {image_id} ({images.pop(image_id)['image']}): {count} "
                f"annotations, more than the limit of {MAX_OBJECTS_PER_IMAGE} per image "
                f"(ssd_support.limits.MAX_OBJECTS_PER_IMAGE)", image=(json_path, "image", image_id)))


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
    _leave_out_crowded_images(data, json_path, images, problems)
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
    :return: the summary dict of :func:`ssd_support.data_lists.report_and_write`
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
    summary = report_and_write(lists, label_map, source, n_clipped, problems, skip_bad, output_folder,
                               [json_path for _, json_path, _ in splits], out, notes=multi_frame_notes(frames))
    # The json's own image and category ids, for eval.py --save-detections (results pycocotools scores on the json).
    from ssd_support.detection_export import write_coco_ids
    write_coco_ids(output_folder, {split: json_path for split, json_path, _ in splits}, categories,
                   {split: {list_path(image["image"], output_folder): image_id for image_id, image in images.items()}
                    for split, (images, _) in read.items()})
    return summary
