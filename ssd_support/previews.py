"""train.py's first batches as pictures: what the network is fed, after augmentation, with its boxes.

Ultralytics writes ``train_batch0.jpg`` for every run; for SSD it answers the questions a loss curve cannot:
are the boxes on the objects after the crop and the flip, are the colours sane after the photometric
distortions, are the class names the right ones.
"""

import math

import torch
from PIL import Image

from ssd_support.drawing import draw_detections
from ssd_support.files import write_atomically

PREVIEW_BATCHES = 2  # train_batch0.jpg, train_batch1.jpg
PREVIEW_MAX_IMAGES = 16  # per grid


def denormalize(images, mean, std):
    """Undo utils.normalize: ``(N, 3, S, S)`` normalized float images back to uint8 RGB pixels.

    :param images: (N, 3, S, S) tensor, (x - mean) / std of [0, 1] values
    :param mean: 3 floats
    :param std: 3 floats
    :return: (N, S, S, 3) uint8 tensor on the CPU
    """
    images = images.detach().float().cpu()
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    pixels = (images * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()


def batch_grid(images, boxes, labels, label_map, max_images=PREVIEW_MAX_IMAGES):
    """One picture of a batch: its images in a square-ish grid, each with its boxes and class names drawn.

    :param images: (N, 3, S, S) uint8 or (N, S, S, 3) uint8 from ``denormalize``
    :param boxes: list of N (n_i, 4) fractional boundary boxes
    :param labels: list of N (n_i,) labels
    :param label_map: {class name: label}
    :param max_images: at most this many images are drawn (the first ones)
    :return: a PIL RGB image of ceil(sqrt(n)) columns
    """
    names = {label: name for name, label in label_map.items()}
    n = min(len(images), max_images)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    side = images.shape[1]
    grid = Image.new("RGB", (columns * side, rows * side), (0, 0, 0))
    for index in range(n):
        image = Image.fromarray(images[index].numpy())
        objects = [{"label": names.get(int(label), str(int(label))), "score": None,
                    "box": [float(v) * side for v in box]} for box, label in zip(boxes[index].cpu(), labels[index].cpu())]
        grid.paste(draw_detections(image, objects, label_map), ((index % columns) * side, (index // columns) * side))
    return grid


def write_batch_preview(path, images, boxes, labels, label_map, mean, std):
    """Write ``path`` (a JPEG): the batch exactly as the network receives it, de-normalized, boxes drawn.

    :param images: (N, 3, S, S) normalized images (on any device)
    :param boxes: list of N (n_i, 4) fractional boxes
    :param labels: list of N (n_i,) labels
    :param mean, std: the normalization the images went through (the model's)
    :raises OSError: when the file cannot be written (written atomically: nothing half-written is left)
    """
    grid = batch_grid(denormalize(images, mean, std), boxes, labels, label_map)
    write_atomically(path, lambda file: grid.save(file, format="JPEG", quality=90), binary=True)
