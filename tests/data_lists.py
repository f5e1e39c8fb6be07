"""Reading back what create_data_lists.py wrote, for the tests of its VOC and COCO paths."""

import json
import os

import datasets


def read_lists(folder):
    """The five JSON files create_data_lists writes, by name without .json; image paths resolved as datasets.py
    resolves them (the files store them relative to the folder)."""
    lists = {}
    for name in ("TRAIN_images", "TRAIN_objects", "TEST_images", "TEST_objects", "label_map"):
        with open(os.path.join(folder, name + ".json")) as file:
            lists[name] = json.load(file)
    for split in ("TRAIN", "TEST"):
        lists[f"{split}_images"] = datasets.read_image_list(str(folder), split)
    return lists
