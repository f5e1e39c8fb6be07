"""Round trips of detect.py's --save-voc / --save-yolo / --save-coco, property-style (issue 31): seeded random
small sets of images, with names that collide by stem and by letter case, several extensions, sub-folders,
unicode, images without detections and boxes on the border, go through detect.py (a stand-in detector that
replays each image's known detections) and back through the read-back the README gives (create_data_lists.py
--annotations / --yolo; pycocotools for COCO). Every image must come back with exactly its own boxes."""

import contextlib
import io
import os
import random

import pytest
from PIL import Image

import create_data_lists
import detect
from data_lists import read_lists
from ssd_support import data_statistics
from utils import make_label_map

CLASSES = ["cat", "dog", "person"]
LABEL_MAP = make_label_map(CLASSES)
# Stems that collide exactly, by letter case, and by unicode look-alikes; several extensions, some upper case.
STEMS = ["a", "A", "IMG_1", "img_1", "IMG_1.jpeg", "café", "cafe\u0301", "日本 photo", "a_2"]
EXTENSIONS = [".jpg", ".jpeg", ".png", ".PNG", ".bmp", ".JPG", ".tif"]
FOLDERS = ["", "", "sub", "sub/deeper"]
N_SETS, IMAGES_PER_SET = 10, 10


def random_set(generator, root):
    """Write a random set of images under ``root``: {path: (size, detections)}; each image's colour identifies it
    (a palette of well-separated colours, which JPEG keeps apart)."""
    images = {}
    while len(images) < IMAGES_PER_SET:
        name = generator.choice(STEMS) + generator.choice(EXTENSIONS)
        path = os.path.join(root, generator.choice(FOLDERS), name)
        if path in images or any(os.path.normcase(path) == os.path.normcase(p) for p in images):
            continue
        width, height = generator.randint(24, 90), generator.randint(24, 90)
        detections = []
        for _ in range(generator.choice([0, 0, 1, 2, 4])):  # images without detections, too
            x1, y1 = generator.uniform(0, width - 4), generator.uniform(0, height - 4)
            x2, y2 = generator.uniform(x1 + 1, width), generator.uniform(y1 + 1, height)
            box = [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)]
            if generator.random() < 0.3:  # on the border, as detect.py clamps boxes
                box = [0.0, box[1], float(width), box[3]] if generator.random() < 0.5 else \
                    [box[0], 0.0, box[2], float(height)]
            if box[2] > box[0] and box[3] > box[1]:
                detections.append({"label": generator.choice(CLASSES), "score": round(generator.random(), 4),
                                   "box": box})
        images[path] = ((width, height), detections)
    return images


def colour(index):
    """A colour per image, 60 levels apart in some channel."""
    return (60 * (index % 4), 60 * (index // 4 % 4), 60 * (index // 16 % 4))


def write_images(images):
    """Write the images, each filled with its colour."""
    for index, (path, ((width, height), _)) in enumerate(images.items()):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        extension = os.path.splitext(path)[1].lower()
        image_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF"}[extension]
        Image.new("RGB", (width, height), colour(index)).save(path, format=image_format)


def replaying_detector(images):
    """detect.make_detector's stand-in: each image's detections, found by its colour."""
    palette = [(colour(index), detections) for index, (_, (_, detections)) in enumerate(images.items())]

    def make_detector(*args, **kwargs):
        def detect_fn(batch):
            found = []
            for image in batch:
                pixel = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
                found.append(min(palette, key=lambda item: sum((a - b) ** 2 for a, b in zip(item[0], pixel)))[1])
            return found
        return detect_fn, LABEL_MAP, "replayed detections"
    return make_detector


def same(box, expected, side):
    """Boxes equal to the formats' rounding: YOLO's 6 decimals of the side (7.5e-7 of it), VOC and COCO exact."""
    return box == pytest.approx(expected, abs=7.6e-7 * side)


def check(read, images, source):
    """``read``: {image file (any path to it): [(class name, box)]}; every image exactly once, with its boxes."""
    by_file = {}
    for path, boxes in read.items():
        key = os.stat(path).st_ino  # the YOLO set's images are hard links to the inputs
        assert key not in by_file, f"{source}: {path} read back twice"
        by_file[key] = boxes
    assert len(by_file) == len(images), source
    for path, ((width, height), detections) in images.items():
        boxes = by_file[os.stat(path).st_ino]
        assert [name for name, _ in boxes] == [d["label"] for d in detections], (source, path)
        for (_, box), detection in zip(boxes, detections):
            assert same(box, detection["box"], max(width, height)), (source, path, box, detection["box"])


def lists_read_back(folder):
    """create_data_lists' TRAIN lists as {image path: [(class name, box)]}."""
    lists = read_lists(folder)
    names = {label: name for name, label in lists["label_map"].items()}
    return {path: [(names[label], box) for label, box in zip(entry["labels"], entry["boxes"])]
            for path, entry in zip(lists["TRAIN_images"], lists["TRAIN_objects"])}


@pytest.mark.parametrize("seed", range(N_SETS))
def test_every_image_reads_back_with_its_own_boxes(seed, tmp_path, monkeypatch):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    generator = random.Random(seed)
    root = str(tmp_path / "photos")
    images = random_set(generator, root)
    write_images(images)
    monkeypatch.setattr(detect, "make_detector", replaying_detector(images))
    # statistics.png is not what this tests, and matplotlib takes most of a read-back's time.
    monkeypatch.setattr(data_statistics, "plot_statistics", lambda *args, **kwargs: None)
    voc, yolo, coco = str(tmp_path / "voc"), str(tmp_path / "yolo"), str(tmp_path / "detections.json")
    with contextlib.redirect_stdout(io.StringIO()):
        assert detect.main(list(images) + ["--output", str(tmp_path / "out"), "--save-voc", voc, "--save-yolo", yolo,
                                           "--save-coco", coco, "--batch-size", "16"]) == 0
        # The read-backs the README gives (detect.py prints them, with the images' common folder).
        image_root = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in images])
        assert create_data_lists.main(["--annotations", voc, "--images", image_root, "--test-fraction", "0",
                                       "--output", str(tmp_path / "from_voc")]) == 0
        assert create_data_lists.main(["--yolo", yolo, "--output", str(tmp_path / "from_yolo")]) == 0
        ground_truth = COCO(coco)
    check(lists_read_back(tmp_path / "from_voc"), images, "voc")
    check(lists_read_back(tmp_path / "from_yolo"), images, "yolo")
    names = {category["id"]: category["name"] for category in ground_truth.loadCats(ground_truth.getCatIds())}
    read = {}
    for image in ground_truth.loadImgs(ground_truth.getImgIds()):
        annotations = ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[image["id"]]))
        read[os.path.join(image_root, image["file_name"])] = [
            (names[a["category_id"]], [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                       a["bbox"][1] + a["bbox"][3]]) for a in annotations]
    check(read, images, "coco")
