"""Synthetic toy data sets: red circles, green squares and blue triangles on textured backgrounds.

Small enough to train SSD300 from random initialisation on a CPU in minutes (README 3.2, the quickstart),
and written in the real formats, so that every tool reads them as it reads user data:

- ``make_toy_dataset(root)``: a Pascal VOC-format folder (JPEGImages, Annotations, ImageSets/Main), with a few
  real-world quirks in the XML (difficult flags, sub-boxes, float coordinates) that the parser must take;
- ``make_toy_coco_dataset(root)``: the same kind of images with COCO ``instances_*.json`` files (non-contiguous
  category ids, crowd regions);
- ``photo_like_pixels(rng, height, width)``: photo-like pixels (smoothed colour blocks plus noise) for the speed
  benchmarks and the image-reading tests.

``python create_data_lists.py --toy DIR`` (or ``--toy-coco DIR``) writes one and its lists.
"""

import json
import os
import random

import numpy as np
from PIL import Image, ImageDraw

from ssd_support.files import write_atomically


# Plain filled shapes, each in its own saturated colour: easy enough to learn from random init in minutes.
TOY_CLASSES = {"circle": (220, 40, 40), "square": (40, 170, 60), "triangle": (40, 70, 220)}
TOY_SIZE_RANGE = (200, 400)  # width and height of the images, drawn separately
TOY_OBJECT_SIDE = (0.3, 0.7)  # object side, as a fraction of the image's shorter side
TOY_DIFFICULT_SIDE = (0.15, 0.25)  # difficult objects are the small ones
TOY_DIFFICULT_FRACTION = 0.1
TOY_MAX_OVERLAP = 0.1  # intersection over the smaller box allowed between two objects
# Background images (make_toy_dataset's background_fraction) hold 1-3 decoys: the classes' shapes in colours no
# class has, so that a detector must look at colour as well as shape not to fire on them (their false positives).
TOY_DECOY_COLOURS = ((150, 150, 150), (230, 150, 30), (150, 60, 170))


def photo_like_pixels(rng, height, width):
    """A stand-in for a photo's pixels: blocks of random colour, smoothed, plus pixel noise.

    JPEG then has detail to decode at every scale, as in a photo (a flat synthetic image would decode several
    times faster than a real one): what the speed benchmarks and the image-reading tests write as JPEGs.

    :param rng: a numpy Generator (two draws: the colour blocks, then the noise)
    :param height: image height in pixels
    :param width: image width in pixels
    :return: uint8 numpy array (height, width, 3)
    """
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    return np.clip(smooth + rng.normal(0, 12, size=smooth.shape), 0, 255).astype(np.uint8)


def _toy_background(rng, width, height):
    """A light background with a faint texture of lines, so that the network cannot key on flat colour."""
    base = tuple(rng.randint(225, 250) for _ in range(3))
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):
        shade = tuple(c - rng.randint(5, 15) for c in base)
        points = [(rng.randint(0, width), rng.randint(0, height)) for _ in range(2)]
        draw.line(points, fill=shade, width=rng.randint(1, 4))
    return image


def _draw_shape(draw, name, box, rng, colour=None):
    """Draw one filled shape whose tight box is ``box`` = [x1, y1, x2, y2] (0-based, x2/y2 exclusive), in its
    class's colour (varied a little) unless ``colour`` is given."""
    x1, y1, x2, y2 = box
    if colour is None:
        colour = tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in TOY_CLASSES[name])
    if name == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=colour)
    elif name == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=colour)
    else:
        draw.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=colour)


def _overlaps_too_much(box, boxes):
    """True if ``box`` covers more than TOY_MAX_OVERLAP of itself or of any box in ``boxes``."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw > 0 and ih > 0:
            smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
            if iw * ih > TOY_MAX_OVERLAP * smaller:
                return True
    return False


def _toy_objects(rng, width, height):
    """Place 1-3 large shapes (about 10% small "difficult" ones) with little overlap.

    :return: list of (class name, [x1, y1, x2, y2] 0-based pixel box, difficult 0/1)
    """
    objects = []
    for _ in range(rng.randint(1, 3)):
        difficult = int(rng.random() < TOY_DIFFICULT_FRACTION)
        for _ in range(30):  # placement attempts; an object that does not fit is left out
            side = int(rng.uniform(*(TOY_DIFFICULT_SIDE if difficult else TOY_OBJECT_SIDE)) * min(width, height))
            x1, y1 = rng.randint(0, width - side), rng.randint(0, height - side)
            box = [x1, y1, x1 + side, y1 + side]
            if not _overlaps_too_much(box, [b for _, b, _ in objects]):
                objects.append((rng.choice(sorted(TOY_CLASSES)), box, difficult))
                break
    return objects


def _toy_xml(image_id, width, height, objects, object_counter):
    """The VOC XML of one toy image, with a few real-world quirks that the parser must take.

    Quirks, by running object number: a missing <difficult> tag, a float coordinate, a <part> sub-box,
    a class name in odd case with spaces, an empty <truncated/> tag.
    """
    lines = ["<annotation>", "  <folder>ToyVOC</folder>", f"  <filename>{image_id}.jpg</filename>",
             f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
             "  <segmented>0</segmented>"]
    for k, (name, (x1, y1, x2, y2), difficult) in enumerate(objects):
        n = object_counter + k  # running object number over the whole data set
        shown_name = f" {name.capitalize()} " if n % 17 == 8 else name
        xmax = f"{x2 - 0.37:.2f}" if n % 11 == 5 else str(x2)
        lines += ["  <object>", f"    <name>{shown_name}</name>", "    <pose>Unspecified</pose>",
                  "    <truncated/>" if n % 5 == 1 else "    <truncated>0</truncated>"]
        if difficult or n % 7 != 3:
            lines.append(f"    <difficult>{difficult}</difficult>")
        lines.append(f"    <bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                     f"<xmax>{xmax}</xmax><ymax>{y2}</ymax></bndbox>")
        if n % 13 == 2:  # a sub-box, like the head / hand parts of VOC people: not an object
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            lines.append(f"    <part><name>centre</name><bndbox><xmin>{cx}</xmin><ymin>{cy}</ymin>"
                         f"<xmax>{cx + 2}</xmax><ymax>{cy + 2}</ymax></bndbox></part>")
        lines.append("  </object>")
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _toy_image(rng, background=False):
    """Draw one toy image: a textured background of random (non-square) size with 1-3 shapes on it.

    :param rng: a random.Random, advanced by the drawing
    :param background: draw an image without objects instead: 1-3 decoys (the shapes in TOY_DECOY_COLOURS)
    :return: (PIL RGB image, objects: list of (class name, [x1, y1, x2, y2] 0-based pixel box, difficult 0/1);
        empty for a background image)
    """
    width = rng.randint(*TOY_SIZE_RANGE)
    height = rng.randint(*TOY_SIZE_RANGE)
    if height == width:
        height += 37  # not square, so that the resize to 300x300 changes the aspect
    image = _toy_background(rng, width, height)
    objects = _toy_objects(rng, width, height)
    draw = ImageDraw.Draw(image)
    for name, box, _ in objects:
        if background:
            decoy = rng.choice(TOY_DECOY_COLOURS)
            _draw_shape(draw, name, box, rng, colour=tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in decoy))
        else:
            _draw_shape(draw, name, box, rng)
    return image, [] if background else objects


def make_toy_dataset(root, n_train=64, n_test=16, seed=0, background_fraction=0.0):
    """Write a small synthetic VOC-format data set: red circles, green squares and blue triangles.

    Layout: root/ToyVOC/{JPEGImages, Annotations, ImageSets/Main/{trainval,test}.txt}. Images are 200-400
    pixels a side (not square), with 1-3 large shapes on a light, faintly textured background; about 10%
    of the objects are small ones marked difficult. The same seed gives the same files.

    :param root: the folder to write into
    :param n_train: number of trainval images
    :param n_test: number of test images
    :param seed: the random seed
    :param background_fraction: this fraction of the images (drawn at random, in both splits) have no objects,
        only decoys (_toy_image's ``background``); 0 draws exactly the images of earlier versions
    :return: the path of the VOC-format folder (root/ToyVOC)
    """
    rng = random.Random(seed)
    # Its own generator, so that background_fraction=0 leaves the images' draws as they were.
    background_rng = random.Random(f"background{seed}")
    voc_folder = os.path.join(root, "ToyVOC")
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_folder, sub), exist_ok=True)

    ids = {"trainval": [], "test": []}
    object_counter = 0
    for index in range(n_train + n_test):
        image_id = f"{index + 1:06d}"
        ids["trainval" if index < n_train else "test"].append(image_id)
        image, objects = _toy_image(rng, background=background_rng.random() < background_fraction)
        width, height = image.size
        image.save(os.path.join(voc_folder, "JPEGImages", image_id + ".jpg"), quality=95)
        with open(os.path.join(voc_folder, "Annotations", image_id + ".xml"), "w") as f:
            f.write(_toy_xml(image_id, width, height, objects, object_counter))
        object_counter += len(objects)

    for image_set, image_ids in ids.items():
        with open(os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt"), "w") as f:
            f.write("\n".join(image_ids) + "\n")
    return voc_folder


# Non-contiguous category ids, listed out of order, as in COCO (whose 80 categories have ids 1..90 with gaps).
# In id order they give labels circle 1, square 2, triangle 3: the toy VOC data set's label map.
TOY_COCO_CATEGORY_IDS = {"triangle": 12, "circle": 3, "square": 7}


def make_toy_coco_dataset(root, n_train=64, n_test=16, seed=0):
    """Write a small synthetic data set in the COCO layout: the toy images, COCO-format annotation files.

    Layout: root/ToyCOCO/{train, test}/<image id>.jpg and root/ToyCOCO/annotations/instances_{train,test}.json.
    The images are drawn like :func:`make_toy_dataset`'s; image ids are not positions (101, 104, 107, ...),
    category ids are non-contiguous (TOY_COCO_CATEGORY_IDS), boxes are [x, y, width, height] floats, and the
    small shapes the VOC toy set marks difficult are crowd regions (iscrowd 1), as is the first object of the
    first test image, so that even a tiny set has one. The same seed gives the same files.

    :param root: the folder to write into
    :param n_train: number of TRAIN images
    :param n_test: number of TEST images
    :param seed: the random seed
    :return: {"train_json", "train_images", "test_json", "test_images"}: the paths of the files and folders
    """
    rng = random.Random(seed)
    coco_folder = os.path.join(root, "ToyCOCO")
    paths = {"train_json": os.path.join(coco_folder, "annotations", "instances_train.json"),
             "train_images": os.path.join(coco_folder, "train"),
             "test_json": os.path.join(coco_folder, "annotations", "instances_test.json"),
             "test_images": os.path.join(coco_folder, "test")}
    for folder in (paths["train_images"], paths["test_images"], os.path.dirname(paths["train_json"])):
        os.makedirs(folder, exist_ok=True)

    categories = [{"id": category_id, "name": name, "supercategory": "shape"}
                  for name, category_id in TOY_COCO_CATEGORY_IDS.items()]
    files = {split: {"images": [], "annotations": [], "categories": categories} for split in ("train", "test")}
    n_annotations = 0
    for index in range(n_train + n_test):
        split = "train" if index < n_train else "test"
        image_id = 101 + 3 * index
        file_name = f"{image_id:012d}.jpg"
        image, objects = _toy_image(rng)
        image.save(os.path.join(paths[f"{split}_images"], file_name), quality=95)
        files[split]["images"].append({"id": image_id, "file_name": file_name,
                                       "width": image.size[0], "height": image.size[1]})
        for k, (name, (x1, y1, x2, y2), difficult) in enumerate(objects):
            n_annotations += 1
            crowd = difficult or (index == n_train and k == 0)
            files[split]["annotations"].append({
                "id": n_annotations, "image_id": image_id, "category_id": TOY_COCO_CATEGORY_IDS[name],
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float((x2 - x1) * (y2 - y1)), "iscrowd": int(crowd)})
    for split in ("train", "test"):
        write_atomically(paths[f"{split}_json"], lambda file: json.dump(files[split], file))
    return paths
