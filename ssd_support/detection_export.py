"""eval.py --save-detections FILE: the detections as a COCO results file, which pycocotools (and any COCO tool)
scores against an annotation file.

The ground truth of exactly the scored split is written beside FILE (``FILE`` with ``_ground_truth`` before the
extension), each image with its ``file_name``, width and height: ``COCOeval`` with default parameters on the two
files gives the AP eval.py --metric coco prints, whatever the lists came from. For lists that create_data_lists.py
made from a COCO json, the image and category ids in both files are that json's own (it writes them to
``coco_ids.json`` beside the lists); for any other lists (VOC, YOLO), image ids are 1..N in list order and category
ids the labels, as eval.py --metric coco builds them. (The original COCO json agrees only when the split is all
of it: not for a VAL split drawn from it, nor when --skip-bad left images out.)
"""

import os

from ssd_support.coco_eval import COCO_MAX_DETECTIONS_PER_IMAGE, build_coco_detections, build_coco_ground_truth
from ssd_support.files import images_list_path, read_json, write_json_atomically

# Beside the lists: {"annotation_files": {split: json path}, "categories": {class name: category id},
# "images": {split: {image path as the split's list holds it: image id}}}
COCO_IDS_FILE = "coco_ids.json"


def coco_ids_path(data_folder):
    """``<data_folder>/coco_ids.json``: the COCO ids of lists made from COCO annotation files."""
    return os.path.join(data_folder, COCO_IDS_FILE)


def write_coco_ids(output_folder, annotation_files, categories, image_ids):
    """Remember the COCO json's own ids beside the lists (create_data_lists.py's COCO reader).

    :param output_folder: the lists' folder
    :param annotation_files: {split: the COCO json the split was read from}
    :param categories: {category id: class name}
    :param image_ids: {split: {image path as the split's list file holds it: the json's image id}}
    :return: the file written
    """
    path = coco_ids_path(output_folder)
    write_json_atomically(path, {"annotation_files": {split: os.path.abspath(f) for split, f in annotation_files.items()},
                                 "categories": {name: int(category_id) for category_id, name in categories.items()},
                                 "images": image_ids}, indent=1)
    return path


def load_coco_ids(data_folder, split, label_map):
    """The COCO ids of a split's images and of the label map's classes, when the lists came from a COCO json.

    A VAL split drawn from TRAIN (--val-fraction) keeps the TRAIN json's image ids.

    :param data_folder: the lists' folder
    :param split: "TRAIN", "VAL" or "TEST"
    :param label_map: {class name: label}, background 0
    :return: None for lists not made from a COCO json (no coco_ids.json, or one naming none of the split's
        images: left by an earlier run of another source); otherwise {"image_ids": list of the json's image ids
        in list order, "category_ids": {label: category id}, "annotation_file": the json's path}
    :raises ValueError: naming coco_ids.json when it gives ids to only some of the images, or lacks a class
    """
    path = coco_ids_path(data_folder)
    if not os.path.isfile(path):
        return None
    document = read_json(path)
    source_split = "TRAIN" if split == "VAL" else split
    known = document.get("images", {}).get(source_split, {})
    listed = read_json(images_list_path(data_folder, split))
    image_ids = [known.get(entry) for entry in listed]
    missing = [entry for entry, image_id in zip(listed, image_ids) if image_id is None]
    if len(missing) == len(listed):
        return None
    if missing:
        raise ValueError(f"{path}: no COCO image id for {len(missing)} of the {len(listed)} {split} images (the "
                         f"first {missing[0]}); run create_data_lists.py again")
    categories = document.get("categories", {})
    lacking = [name for name, label in label_map.items() if label != 0 and name not in categories]
    if lacking:
        raise ValueError(f"{path}: no COCO category id for the class(es) {', '.join(map(repr, lacking))}")
    return {"image_ids": image_ids,
            "category_ids": {label: categories[name] for name, label in label_map.items() if label != 0},
            "annotation_file": document.get("annotation_files", {}).get(source_split)}


def ground_truth_path(results_path):
    """Where the ground truth of the scored split goes: ``dets.json`` -> ``dets_ground_truth.json``."""
    stem, extension = os.path.splitext(results_path)
    return f"{stem}_ground_truth{extension or '.json'}"


def images_folder(image_paths):
    """The folder the ground truth's ``file_name`` entries are relative to: the images' common folder."""
    if not image_paths:
        return os.path.abspath(".")
    return os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in image_paths])


def save_coco_detections(path, collected, image_sizes, label_map, coco_ids=None,
                         max_per_image=COCO_MAX_DETECTIONS_PER_IMAGE, image_paths=None):
    """Write the detections as a COCO results file, and beside it the ground truth of exactly the scored split.

    Each image keeps its ``max_per_image`` best-scoring detections (COCO's rule: 100), those --metric coco scores.
    The ground truth (:func:`ground_truth_path`) holds the images eval.py scored, no other (not the rest of a COCO
    json that a VAL split was drawn from, nor the images --skip-bad left out), each with its ``file_name``
    (relative to ``info["images_folder"]``, the images' common folder), width and height; difficult objects are
    crowd objects. So pycocotools' ``COCOeval`` with default parameters on the two files gives eval.py's COCO AP,
    and detectron2, mmdetection, FiftyOne and create_data_lists.py --coco-json read the ground truth.

    :param path: the results file: a JSON list of {"image_id", "category_id", "bbox": [x, y, width, height] in
        pixels of the original image, "score"} (an empty list when nothing was detected: pycocotools' loadRes
        cannot read one, the caller says so)
    :param collected: eval.collect_detections' dict (per image "det_boxes" fractional x1y1x2y2, "det_labels",
        "det_scores", "true_boxes", "true_labels", "true_difficulties")
    :param image_sizes: (width, height) of each image in pixels, in the same order
    :param label_map: {class name: label}, background 0
    :param coco_ids: :func:`load_coco_ids`'s dict (the json's image and category ids, in both files), or None
        (image ids 1..N in list order, category ids the labels)
    :param max_per_image: detections kept per image, the best-scoring (None: all)
    :param image_paths: the images' files, in the same order (for ``file_name``; None: "1", "2", ...)
    :return: (the number of detections written, the ground-truth file written)
    """
    detections = build_coco_detections(collected["det_boxes"], collected["det_labels"], collected["det_scores"],
                                       image_sizes, max_per_image)
    truth = build_coco_ground_truth(collected["true_boxes"], collected["true_labels"],
                                    collected["true_difficulties"], image_sizes, label_map)
    root = images_folder(image_paths or [])
    for index, image in enumerate(truth["images"]):
        image["file_name"] = (os.path.relpath(os.path.abspath(image_paths[index]), root).replace(os.sep, "/")
                              if image_paths else str(image["id"]))
    truth["info"] = {"description": "the ground truth of the split eval.py scored (eval.py --save-detections)",
                     "images_folder": root}
    if coco_ids is not None:  # build_coco_* number the images 1..N and use the labels: the json's own ids instead
        image_ids, category_ids = coco_ids["image_ids"], coco_ids["category_ids"]
        for item in detections + truth["annotations"]:
            item["image_id"] = image_ids[item["image_id"] - 1]
            item["category_id"] = category_ids[item["category_id"]]
        for image in truth["images"]:
            image["id"] = image_ids[image["id"] - 1]
        for category in truth["categories"]:
            category["id"] = category_ids[category["id"]]
    truth_path = ground_truth_path(path)
    write_json_atomically(truth_path, truth)
    write_json_atomically(path, detections)
    return len(detections), truth_path
