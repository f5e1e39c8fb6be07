"""The PyTorch Dataset over the JSON lists that create_data_lists.py writes."""

import json
import os

import torch
from PIL import Image
from torch.utils.data import Dataset

from utils import transform

SPLITS = ("TRAIN", "VAL", "TEST")  # VAL: create_data_lists.py --val-fraction


def _read_json(path):
    """Load a JSON file, with an error naming the file and the fix when it is missing or broken."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (run create_data_lists.py to make the data lists)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def load_label_map(data_folder):
    """Read the label map that create_data_lists.py wrote.

    :param data_folder: folder holding label_map.json
    :return: dict {class name: label}, with "background": 0
    """
    return _read_json(os.path.join(data_folder, "label_map.json"))


def collate_fn(batch):
    """Stack a batch of images; keep boxes, labels and difficulties as per-image lists.

    Images hold different numbers of objects, so their boxes cannot be stacked into one tensor.

    :param batch: an iterable of (image (3, 300, 300), boxes (n_i, 4), labels (n_i), difficulties (n_i))
    :return: images (N, 3, 300, 300), and lists of N tensors: boxes, labels, difficulties
    """
    images, boxes, labels, difficulties = zip(*batch)
    return torch.stack(images, dim=0), list(boxes), list(labels), list(difficulties)


class PascalVOCDataset(Dataset):
    """Images and objects of one split, augmented (TRAIN) or just resized (TEST) by utils.transform.

    Each item is (image (3, S, S) ImageNet-normalized float, S = image_size (300), boxes (n_objects, 4)
    fractional x1y1x2y2, labels (n_objects) int64, difficulties (n_objects) uint8). n_objects may be 0.
    """

    def __init__(self, data_folder, split, keep_difficult=False, augment=None, image_size=300):
        """
        :param data_folder: folder holding {split}_images.json and {split}_objects.json
        :param split: "TRAIN", "VAL" or "TEST" (any case); VAL is resized like TEST, not augmented
        :param keep_difficult: keep the objects marked difficult (the paper trains on them; the VOC
            evaluation needs them too, to ignore detections of them)
        :param augment: apply the paper's TRAIN augmentations (default: for the TRAIN split only);
            False gives resize + normalize only, e.g. to overfit a few training images
        :param image_size: side the images are resized to: the model's ``image_size`` (512 for SSD512)
        """
        self.split = split.upper()
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.data_folder = data_folder
        self.keep_difficult = keep_difficult
        self.augment = self.split == "TRAIN" if augment is None else augment
        self.image_size = image_size

        images_path = os.path.join(data_folder, f"{self.split}_images.json")
        objects_path = os.path.join(data_folder, f"{self.split}_objects.json")
        # Relative paths are taken relative to the data folder, so that a folder can be moved whole.
        self.images = [path if os.path.isabs(path) else os.path.join(data_folder, path)
                       for path in _read_json(images_path)]
        self.objects = _read_json(objects_path)
        if len(self.images) != len(self.objects):
            raise ValueError(f"{objects_path}: {len(self.objects)} entries, but {images_path} lists "
                             f"{len(self.images)} images")

    def __len__(self):
        """The number of images in the split."""
        return len(self.images)

    def load_image(self, i):
        """Read image ``i`` as a PIL RGB image, with an error naming the file when it cannot be read."""
        path = self.images[i]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as error:
            raise OSError(f"{path}: cannot read image ({error})") from error

    def load_objects(self, i):
        """The objects of image ``i`` as tensors, difficult ones left out unless keep_difficult.

        :return: boxes (n_objects, 4) float pixel x1y1x2y2, labels (n_objects) int64, difficulties (n_objects)
            uint8
        """
        objects = self.objects[i]
        boxes = torch.tensor(objects["boxes"], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor(objects["labels"], dtype=torch.int64).reshape(-1)
        difficulties = torch.tensor(objects["difficulties"], dtype=torch.uint8).reshape(-1)
        if not self.keep_difficult:
            keep = difficulties == 0
            boxes, labels, difficulties = boxes[keep], labels[keep], difficulties[keep]
        return boxes, labels, difficulties

    def __getitem__(self, i):
        """:return: image (3, S, S), boxes (n_objects, 4) fractional, labels (n_objects), difficulties
        (n_objects)"""
        boxes, labels, difficulties = self.load_objects(i)
        return transform(self.load_image(i), boxes, labels, difficulties, split="TRAIN" if self.augment else "TEST",
                         size=self.image_size)

    collate_fn = staticmethod(collate_fn)
