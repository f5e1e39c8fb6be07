"""The PyTorch Dataset over the JSON lists that create_data_lists.py writes.

Images are read with the project's one loader, ``images.load_image`` (as arrays: ``images.load_image_array``)."""

import os

import torch
from torch.utils.data import Dataset

from ssd_support.data_lists import check_list_set, check_objects_list
from ssd_support.fast_augment import augment_train
from ssd_support.files import SPLITS, images_list_path, label_map_path, objects_list_path, read_json
from ssd_support.images import load_image_array
from utils import AUGMENTATION_STEPS, preprocess_settings, transform


def _read_json(path):
    """Load a JSON file, with an error naming the file and the fix when it is missing or broken."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (run create_data_lists.py to make the data lists)")
    return read_json(path)  # JSONFileError (a ValueError): one line naming the file


def read_image_list(data_folder, split):
    """The image paths of a split's list, resolved: create_data_lists.py writes them relative to the lists'
    folder (so that a project folder can be moved or copied whole); absolute paths are kept as they are.

    :param data_folder: folder holding {split}_images.json
    :param split: "TRAIN" or "TEST"
    :return: list of paths
    :raises FileNotFoundError: when the list is missing; ValueError when it is not JSON
    """
    return [os.path.normpath(os.path.join(data_folder, path)) for path in
            _read_json(images_list_path(data_folder, split))]


def check_images_exist(data_folder, split):
    """Check that every image a split lists is there, before training or evaluation starts rather than at the
    first batch that meets a missing one.

    :param data_folder: folder holding {split}_images.json
    :param split: "TRAIN" or "TEST"
    :return: the resolved image paths (:func:`read_image_list`)
    :raises FileNotFoundError: one line naming the list, how many images are missing and the first of them
    """
    paths = read_image_list(data_folder, split)
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"{images_list_path(data_folder, split)}: {len(missing)} of {len(paths)} listed images "
            f"not found, the first {missing[0]} (moved? run create_data_lists.py again)")
    return paths


def load_label_map(data_folder):
    """Read the label map that create_data_lists.py wrote.

    :param data_folder: folder holding label_map.json
    :return: dict {class name: label}, with "background": 0
    """
    return _read_json(label_map_path(data_folder))


def load_image_tensor(path):
    """Read an image file as the dataset does: upright, 8-bit RGB, a uint8 tensor (3, H, W) viewing (H, W, 3) memory.

    :func:`images.load_image_array` (the pixels of the project's one loader, ``images.load_image``), in the layout
    the TRAIN path's resampler and OpenCV kernels work in.

    :raises UnreadableImageError: naming the file, when it cannot be read
    """
    return torch.from_numpy(load_image_array(path)).permute(2, 0, 1)


def stack_images(images):
    """Stack images (3, S, S) into a batch (N, 3, S, S), in the memory layout they are stored in.

    The TRAIN path's images, and the TEST path's when the image was decoded by the dataset (TF.resize keeps the
    layout it is given), are stored pixel by pixel, (S, S, 3) in memory: stacking them into a channel-by-channel
    batch gathers every byte from three places, 5-10 times the time of stacking them as stored
    (bench/bench_transforms.py prints both), in each loader worker, for every batch. So such images become a
    channels-last batch: the same values, the layout the network runs in on the GPU (train.py), with no reorder
    left for it to do there.

    :param images: a sequence of N tensors (3, S, S), any dtype
    :return: tensor (N, 3, S, S), channels-last when every image is stored pixel by pixel
    :raises RuntimeError: torch.stack's, when the images differ in size
    """
    same_size = all(image.shape == images[0].shape for image in images)
    if same_size and all(image.permute(1, 2, 0).is_contiguous() for image in images):
        return torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)
    return torch.stack(images)  # images of different sizes: torch.stack's error names them (3, H, W)


def collate_fn(batch):
    """Stack a batch of images; keep boxes, labels and difficulties as per-image lists.

    Images hold different numbers of objects, so their boxes cannot be stacked into one tensor.

    :param batch: an iterable of (image (3, 300, 300), boxes (n_i, 4), labels (n_i), difficulties (n_i))
    :return: images (N, 3, S, S) (S: the network's input side; channels-last memory when the images are stored
        pixel by pixel, see :func:`stack_images`), and lists of N tensors: boxes, labels, difficulties
    """
    images, boxes, labels, difficulties = zip(*batch)
    return stack_images(images), list(boxes), list(labels), list(difficulties)


class PascalVOCDataset(Dataset):
    """Images and objects of one split, augmented (TRAIN) or just resized (TEST).

    TRAIN runs the paper's augmentations as ``ssd_support.fast_augment.augment_train`` (the draws and boxes of
    ``utils.transform``, several times faster), or ``utils.transform`` itself with ``reference_augment=True``.

    Each item is (image (3, S, S) ImageNet-normalized float (uint8 with ``normalized=False``), S = image_size
    (300), boxes (n_objects, 4) fractional x1y1x2y2, labels (n_objects) int64, difficulties (n_objects) uint8).
    n_objects may be 0.
    """

    def __init__(self, data_folder, split, keep_difficult=False, augment=None, image_size=300, preprocess=None,
                 normalized=True, reference_augment=False, augment_steps=AUGMENTATION_STEPS):
        """
        :param data_folder: folder holding {split}_images.json and {split}_objects.json
        :param split: "TRAIN", "VAL" or "TEST" (any case); VAL is resized like TEST, not augmented
        :param keep_difficult: keep the objects marked difficult (the paper trains on them; the VOC
            evaluation needs them too, to ignore detections of them)
        :param augment: apply the paper's TRAIN augmentations (default: for the TRAIN split only);
            False gives resize + normalize only, e.g. to overfit a few training images
        :param image_size: side the images are resized to: the model's ``image_size`` (512 for SSD512)
        :param preprocess: the model's ``preprocess_config`` (None: ImageNet mean/std, antialiased resizing;
            a converted COCO checkpoint names its own), see ``utils.preprocess_settings``
        :param normalized: items hold normalized float images (True) or uint8 ones (False), which the training
            loop normalizes a batch at a time on the GPU (``utils.normalize``): the loader workers skip the float
            work and pass a quarter of the bytes through shared memory, pinning and the copy to the GPU
        :param reference_augment: augment with the paper's chain as ``utils.transform`` writes it, step by step on
            whole images (train.py --reference-augment), instead of ``ssd_support.fast_augment.augment_train``:
            the same random draws and boxes, pixels equal up to rounding (tests/test_fast_augment.py), slower
        :param augment_steps: the parts of the TRAIN chain applied (utils.AUGMENTATION_STEPS, the paper's, by
            default); none: the TEST transform
        """
        self.split = split.upper()
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.data_folder = data_folder
        self.keep_difficult = keep_difficult
        self.augment = self.split == "TRAIN" if augment is None else augment
        self.image_size = image_size
        self.preprocess_settings = preprocess_settings(preprocess)
        self.normalized = normalized
        self.reference_augment = reference_augment
        # No part of the chain left: the TEST transform, exactly (train.py with all four --no-* equals --no-augment).
        self.augment_steps = tuple(augment_steps)
        if not self.augment_steps:
            self.augment = False

        images_path = images_list_path(data_folder, self.split)
        objects_path = objects_list_path(data_folder, self.split)
        # The lists and the label map must be of one run of create_data_lists.py (a kill between two files, a VAL
        # split of an earlier run): refused in one line, before anything is read.
        check_list_set(data_folder, [images_path, objects_path, label_map_path(data_folder)])
        # Relative paths are taken relative to the data folder, so that a folder can be moved whole; a missing
        # image is reported now, in one line, not by a DataLoader worker in the middle of training.
        self.images = check_images_exist(data_folder, self.split)
        self.objects = _read_json(objects_path)
        # Lists may come from elsewhere: a label outside the label map, or 100,000 boxes on one image (~65 KB per
        # object per training step), is refused now, in one line naming the file.
        label_map = load_label_map(data_folder) if os.path.isfile(label_map_path(data_folder)) else None
        check_objects_list(self.objects, objects_path, label_map)
        if len(self.images) != len(self.objects):
            raise ValueError(f"{objects_path}: {len(self.objects)} entries, but {images_path} lists "
                             f"{len(self.images)} images")

    def __len__(self):
        """The number of images in the split."""
        return len(self.images)

    def load_image(self, i):
        """Read image ``i`` upright, as 8-bit RGB: a uint8 tensor (3, H, W) (:func:`load_image_tensor`).

        :raises UnreadableImageError: naming the file, when it cannot be read
        """
        return load_image_tensor(self.images[i])

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
        if self.augment and not self.reference_augment:
            return augment_train(self.load_image(i), boxes, labels, difficulties, size=self.image_size,
                                 normalized=self.normalized, steps=self.augment_steps, **self.preprocess_settings)
        return transform(self.load_image(i), boxes, labels, difficulties, split="TRAIN" if self.augment else "TEST",
                         size=self.image_size, normalized=self.normalized, steps=self.augment_steps,
                         **self.preprocess_settings)

    collate_fn = staticmethod(collate_fn)
