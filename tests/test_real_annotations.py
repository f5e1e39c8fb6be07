"""Real annotation sets, read right (issue 13): every box on its own image's pixels, or the file refused by name.

Each test is one of the situations users of SSD repositories meet with labelImg, CVAT, Roboflow and phone
exports, built here in miniature: the image loader (EXIF, 16-bit, decompression bombs), which image and which
size an annotation belongs to, text as tools write it, reserved and unsafe names, lists that survive a move and
folders without ImageSets, and the COCO metric with the pycocotools versions that need an "info" key.
"""

import contextlib
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import create_data_lists as cdl
from ssd_support.coco_format import create_coco_data_lists
from ssd_support.data_lists import DataListError
from ssd_support.voc_format import create_folder_data_lists, rare_non_voc_names
import datasets
import detect
import eval as eval_script
from ssd_support.coco_eval import build_coco_ground_truth, coco_average_precision
from datasets import PascalVOCDataset
from ssd_support.images import UnreadableImageError, image_size, load_image
from utils import IMAGENET_MEAN, IMAGENET_STD

GREY, WHITE = (90, 90, 90), (255, 255, 255)


def quiet(function, *args, **kwargs):
    """Call ``function`` with its stdout captured; return (result, printed text)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = function(*args, **kwargs)
    return result, buffer.getvalue()


def voc_xml(objects, size=None, filename=None, declaration=""):
    """The text of a VOC XML file: objects is [(name, (xmin, ymin, xmax, ymax))] in 1-based VOC pixels."""
    parts = [declaration, "<annotation>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, (x1, y1, x2, y2) in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
                     f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def voc_tree(root, trainval, test=(), image_sets=None):
    """A VOC folder: JPEGImages, Annotations and ImageSets/Main/{trainval,test}.txt.

    :param trainval / test: lists of image IDs (files are written by the caller)
    :param image_sets: {name: raw bytes} to write instead of the plain lists
    """
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    image_sets = image_sets or {"trainval": "".join(f"{i}\n" for i in trainval).encode(),
                                "test": "".join(f"{i}\n" for i in test).encode()}
    for name, data in image_sets.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_bytes(data)
    return root


def object_image(size, box, colour=WHITE):
    """A grey RGB image with a filled rectangle over 0-based pixels box = (x1, y1, x2, y2), x2 / y2 inclusive."""
    image = Image.new("RGB", size, GREY)
    ImageDraw.Draw(image).rectangle(box, fill=colour)
    return image


def white_extent(item_image):
    """The fractional x1y1x2y2 of the white pixels of a normalized (3, S, S) dataset image."""
    pixels = item_image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    mask = pixels.min(dim=0).values > 0.8
    ys, xs = torch.nonzero(mask, as_tuple=True)
    side = item_image.shape[-1]
    return torch.tensor([xs.min() / side, ys.min() / side, (xs.max() + 1) / side, (ys.max() + 1) / side])


def iou(a, b):
    """IoU of two x1y1x2y2 boxes (tensors of 4)."""
    w = (torch.min(a[2], b[2]) - torch.max(a[0], b[0])).clamp(min=0)
    h = (torch.min(a[3], b[3]) - torch.max(a[1], b[1])).clamp(min=0)
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def bomb_png(path, width=20000, height=20000):
    """A tiny PNG whose header claims width x height (more than twice Pillow's MAX_IMAGE_PIXELS)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------------
# 1. One image loader
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def exif_rotated_voc(tmp_path):
    """A JPEG stored 400x200 with EXIF orientation 6 (shown 200x400), annotated upright: <size> 200x400 and a
    white object over VOC box 21,21,120,150 (0-based pixels 20..119, 20..149 of the upright view); TEST holds
    the same photo as phone2."""
    root = voc_tree(tmp_path / "VOC", ["phone"], ["phone2"])
    upright = object_image((200, 400), (20, 20, 119, 149))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 says: turn 90 degrees clockwise to show
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("phone", "phone2"):
        stored.save(root / "JPEGImages" / f"{name}.jpg", exif=exif, quality=95)
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml([("dog", (21, 21, 120, 150))], size=(200, 400),
                                                                  filename=f"{name}.jpg"))
    return root


def test_exif_rotated_photo_is_read_upright_everywhere(exif_rotated_voc, tmp_path):
    """The box lands on the object in the lists, training and evaluation (IoU ~1, was 0.37), and every reader
    gives the upright size 200x400: load_image, image_size, detect.py's loader and eval.py's sizes."""
    path = str(exif_rotated_voc / "JPEGImages" / "phone.jpg")
    with Image.open(path) as raw:
        assert raw.size == (400, 200)
    assert load_image(path).size == (200, 400) and detect.load_image(path).size == (200, 400)
    assert image_size(path) == (200, 400) and eval_script.read_image_sizes([path]) == [(200, 400)]

    out = tmp_path / "lists"
    quiet(cdl.create_data_lists, voc07_path=str(exif_rotated_voc), output_folder=str(out), classes=["dog"])
    for split, augment in (("TEST", False), ("TRAIN", False)):
        image, boxes, _, _ = PascalVOCDataset(str(out), split, augment=augment)[0]
        assert torch.allclose(boxes[0], torch.tensor([0.1, 0.05, 0.6, 0.375]))
        assert iou(white_extent(image), boxes[0]) > 0.95


def test_annotation_of_the_stored_view_of_a_rotated_photo_is_refused(exif_rotated_voc, tmp_path, capsys):
    """An annotation made on the raw, unrotated pixels (<size> 400x200) cannot be placed: one line naming the
    file, the sizes and the EXIF rotation; nothing is written."""
    xml = exif_rotated_voc / "Annotations" / "phone.xml"
    xml.write_text(voc_xml([("dog", (21, 21, 150, 120))], size=(400, 200), filename="phone.jpg"))
    assert cdl.main(["--voc07", str(exif_rotated_voc), "--output", str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == 1  # phone.xml only: phone2.xml was annotated upright
    assert errors[0].startswith(f"error: {xml}: annotated image size 400x200 but ")
    assert "is 200x400 upright (EXIF orientation applied)" in errors[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_wide_images_are_scaled_to_8_bits_by_their_range(tmp_path, mode):
    """A 16-bit grayscale PNG (background 12000, object 40000) gives background 0 and object 255 (was all 255),
    and so do 32-bit integer and float images; the dataset item shows the object where its box is."""
    values = np.full((100, 200), 12000, dtype=np.uint16)
    values[10:60, 20:120] = 40000
    array = {"I;16": values, "I": values.astype(np.int32), "F": values.astype(np.float32) / 65535}[mode]
    path = tmp_path / ("wide.png" if mode == "I;16" else "wide.tif")
    Image.fromarray(array).save(path)
    with Image.open(path) as raw:
        assert raw.mode == mode
    image = np.asarray(load_image(str(path)))
    assert image.shape == (100, 200, 3)
    assert (image[10:60, 20:120] == 255).all() and (image[:10] == 0).all() and (image[60:] == 0).all()
    assert np.array_equal(np.asarray(detect.load_image(str(path))), image)


def test_sixteen_bit_png_through_the_lists_and_the_dataset(tmp_path):
    """The same 16-bit PNG as a VOC image: the TEST item's object pixels are white where its box is."""
    root = voc_tree(tmp_path / "VOC", [], ["wide"])
    values = np.full((100, 200), 12000, dtype=np.uint16)
    values[10:60, 20:120] = 40000
    Image.fromarray(values).save(root / "JPEGImages" / "wide.png")
    (root / "Annotations" / "wide.xml").write_text(voc_xml([("dog", (21, 11, 120, 60))], size=(200, 100)))
    quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"), classes=["dog"])
    image, boxes, _, _ = PascalVOCDataset(str(tmp_path / "out"), "TEST")[0]
    assert iou(white_extent(image), boxes[0]) > 0.95


def test_decompression_bomb_is_one_unreadable_image_line(tmp_path, capsys, save_checkpoint):
    """A tiny PNG claiming 20000x20000 in a folder with ten good photos: detect.py draws all ten and names the bad
    one in one line (it stopped with a traceback and drew none); load_image raises UnreadableImageError."""
    from model import SSD300

    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(10):
        Image.new("RGB", (48 + k, 40), (20 * k, 90, 160)).save(photos / f"photo{k}.jpg")
    bomb = bomb_png(photos / "bomb.png")
    assert os.path.getsize(bomb) < 100
    with pytest.raises(UnreadableImageError, match=f"^{bomb}: unreadable image \\(.*decompression bomb") as error:
        load_image(str(bomb))
    assert "\n" not in str(error.value)
    with pytest.raises(UnreadableImageError, match=f"^{bomb}: unreadable image"):
        image_size(str(bomb))

    torch.manual_seed(0)
    label_map = {"background": 0, "dog": 1}
    checkpoint = save_checkpoint(tmp_path / "ssd300_iter_000000.pt", SSD300(n_classes=2), label_map)
    out = tmp_path / "out"
    status = detect.main([str(photos), "--checkpoint", checkpoint, "--output", str(out), "--device", "cpu",
                          "--batch-size", "11", "--min-score", "0.9"])
    assert status == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"detect.py: error: {bomb}: unreadable image")
    assert sorted(name for name in os.listdir(out) if name.endswith(".jpg")) == [
        f"photo{k}_detections.jpg" for k in range(10)]


def test_decompression_bomb_in_the_lists_is_a_problem_of_its_file(tmp_path, capsys):
    """As a VOC image, the bomb is one "unreadable image" line naming the XML and the image; --skip-bad leaves
    it out and counts it."""
    root = voc_tree(tmp_path / "VOC", ["bomb", "good"])
    bomb_png(root / "JPEGImages" / "bomb.png")
    object_image((200, 100), (20, 10, 119, 59)).save(root / "JPEGImages" / "good.jpg")
    for image_id in ("bomb", "good"):
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml([("dog", (21, 11, 120, 60))]))
    assert cdl.main(["--voc07", str(root), "--output", str(tmp_path / "out"), "--classes", "dog"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == 1 and f"bomb.xml: {root / 'JPEGImages' / 'bomb.png'}: unreadable image" in errors[0]
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"),
                       classes=["dog"], skip_bad=True)
    assert summary["skipped"] == {"unreadable image": 1} and summary["TRAIN"]["images"] == 1


# ---------------------------------------------------------------------------------------------------------
# 2. The annotation and the image must agree
# ---------------------------------------------------------------------------------------------------------


def test_the_image_of_an_id_is_its_own_not_the_one_filename_names(tmp_path):
    """img2.xml still saying <filename>img1.jpg</filename> gets img2.jpg (it got img1.jpg, twice in the lists),
    counted in the summary; ID.<ext> is found in any letter case and any of the extensions; <filename> is the
    fallback for an ID without an image of its own."""
    root = voc_tree(tmp_path / "VOC", ["img1", "img2", "img3", "scan"])
    images = root / "JPEGImages"
    object_image((200, 100), (10, 10, 59, 59)).save(images / "img1.jpg")
    object_image((200, 100), (140, 10, 189, 59)).save(images / "img2.jpg")
    object_image((200, 100), (10, 10, 59, 59)).save(images / "img3.PNG")
    object_image((200, 100), (10, 10, 59, 59)).save(images / "page_007.tif")
    annotations = root / "Annotations"
    (annotations / "img1.xml").write_text(voc_xml([("dog", (11, 11, 60, 60))], (200, 100), "img1.jpg"))
    (annotations / "img2.xml").write_text(voc_xml([("dog", (141, 11, 190, 60))], (200, 100), "img1.jpg"))
    (annotations / "img3.xml").write_text(voc_xml([("dog", (11, 11, 60, 60))], (200, 100), "img3.png"))
    (annotations / "scan.xml").write_text(voc_xml([("dog", (11, 11, 60, 60))], (200, 100), "C:\\scans\\page_007.tif"))
    out = tmp_path / "out"
    summary, printed = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(out), classes=["dog"])
    assert datasets.read_image_list(str(out), "TRAIN") == [
        str(images / name) for name in ("img1.jpg", "img2.jpg", "img3.PNG", "page_007.tif")]
    with open(out / "TRAIN_objects.json") as f:
        assert json.load(f)[1]["boxes"] == [[140.0, 10.0, 190.0, 60.0]]
    assert summary["filename_disagreements"] == 2  # img2 (img1.jpg) and scan (page_007.tif)
    assert "Note: 2 annotation(s) name another image in <filename>" in printed
    image, boxes, _, _ = PascalVOCDataset(str(out), "TRAIN", augment=False)[1]
    assert iou(white_extent(image), boxes[0]) > 0.95


def coco_file(folder, images, annotations, categories=((1, "dog"),)):
    """Write folder/instances.json; images is [(id, file_name, width, height)]."""
    data = {"images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
            "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "iscrowd": 0}
                            for k, (i, c, b) in enumerate(annotations)],
            "categories": [{"id": i, "name": n} for i, n in categories]}
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_coco_sizes_must_be_the_images_sizes(tmp_path, capsys):
    """A COCO file saying 640x480 for images shrunk to 320x240 (boxes reached the loss at up to 1.875 times the
    image): each such image is one line naming the file and both sizes; --skip-bad leaves them out, counted."""
    folder = tmp_path / "coco"
    folder.mkdir()
    Image.new("RGB", (320, 240)).save(folder / "small.jpg")
    Image.new("RGB", (640, 480)).save(folder / "right.jpg")
    path = coco_file(folder, [(1, "small.jpg", 640, 480), (2, "right.jpg", 640, 480)],
                     [(1, 1, [300, 200, 300, 250]), (2, 1, [10, 10, 100, 100])])
    assert cdl.main(["--coco-json", path, "--coco-images", str(folder), "--output", str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {path}: image 1: annotated image size 640x480 but {folder / 'small.jpg'} is 320x240 "
                      f"(resized after annotating?); its boxes would land on the wrong pixels"]
    summary, _ = quiet(create_coco_data_lists, path, str(folder), output_folder=str(tmp_path / "out"),
                       skip_bad=True)
    assert summary["skipped"] == {"size mismatch": 1}
    assert datasets.read_image_list(str(tmp_path / "out"), "TRAIN") == [str(folder / "right.jpg")]


def test_voc_size_must_be_the_images_size(tmp_path, capsys):
    """The same rule for a VOC <size>; a file without <size> (or with 0) is taken at the image's size."""
    root = voc_tree(tmp_path / "VOC", ["shrunk", "nosize"])
    Image.new("RGB", (320, 240)).save(root / "JPEGImages" / "shrunk.jpg")
    Image.new("RGB", (320, 240)).save(root / "JPEGImages" / "nosize.jpg")
    (root / "Annotations" / "shrunk.xml").write_text(voc_xml([("dog", (301, 201, 600, 450))], size=(640, 480)))
    (root / "Annotations" / "nosize.xml").write_text(voc_xml([("dog", (1, 1, 100, 100))], size=(0, 0)))
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"),
                       classes=["dog"], skip_bad=True)
    err = capsys.readouterr().err
    assert f"skipped: {root / 'Annotations' / 'shrunk.xml'}: annotated image size 640x480 but " in err
    assert summary["skipped"] == {"size mismatch": 1} and summary["TRAIN"]["images"] == 1


# ---------------------------------------------------------------------------------------------------------
# 3. Text as real tools write it
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("skip_bad", [False, True])
def test_xml_in_a_declared_multibyte_encoding_is_decoded(tmp_path, skip_bad):
    """<?xml version="1.0" encoding="gb2312"?> with a Chinese class name (crashed with "multi-byte encodings are
    not supported", naming no file, with or without --skip-bad) gives the class its name."""
    root = voc_tree(tmp_path / "VOC", ["cat1"])
    Image.new("RGB", (200, 100)).save(root / "JPEGImages" / "cat1.jpg")
    text = voc_xml([("猫", (11, 11, 60, 60))], (200, 100), "cat1.jpg",
                   declaration='<?xml version="1.0" encoding="gb2312"?>\n')
    (root / "Annotations" / "cat1.xml").write_bytes(text.encode("gb2312"))
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"),
                       skip_bad=skip_bad)
    assert summary["label_map"] == {"background": 0, "猫": 1}
    assert summary["TRAIN"]["objects"] == 1 and summary["skipped"] == {}


def test_xml_that_is_not_its_declared_encoding_is_one_line(tmp_path, capsys):
    """Bytes that are not the declared encoding (or an unknown encoding) are a "malformed XML" line naming it."""
    root = voc_tree(tmp_path / "VOC", ["a", "b"])
    for image_id in ("a", "b"):
        Image.new("RGB", (200, 100)).save(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "Annotations" / "a.xml").write_bytes(b'<?xml version="1.0" encoding="utf-8"?><annotation>'
                                                 b'<object><name>\xff\xfe</name></object></annotation>')
    (root / "Annotations" / "b.xml").write_bytes(b'<?xml version="1.0" encoding="klingon"?><annotation/>')
    assert cdl.main(["--voc07", str(root), "--output", str(tmp_path / "out"), "--skip-bad"]) == 1  # nothing left
    err = capsys.readouterr().err
    assert f"skipped: {root / 'Annotations' / 'a.xml'}: not valid utf-8 text" in err
    assert f"skipped: {root / 'Annotations' / 'b.xml'}: unknown encoding 'klingon'" in err


@pytest.mark.parametrize("bom, encoding", [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")])
def test_image_set_list_with_a_byte_order_mark(tmp_path, bom, encoding):
    """An ImageSets list saved by Windows Notepad with a byte-order mark (and CRLF): the first ID is found (was
    "not found")."""
    listed = bom + "first\r\nsecond\r\n".encode(encoding)
    root = voc_tree(tmp_path / "VOC", [], image_sets={"trainval": listed, "test": b""})
    for image_id in ("first", "second"):
        Image.new("RGB", (200, 100)).save(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml([("dog", (1, 1, 50, 50))], (200, 100)))
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"))
    assert summary["TRAIN"]["images"] == 2 and summary["skipped"] == {}


def test_image_set_line_is_the_whole_id(tmp_path):
    """"leaf 1" is the ID of "leaf 1.xml" (it was cut to "leaf"); a per-class line "000005  1" / "000006 -1"
    still means 000005 / 000006."""
    lines = "leaf 1\n000005  1\n000006 -1\n"
    root = voc_tree(tmp_path / "VOC", [], image_sets={"trainval": lines.encode(), "test": b""})
    for image_id in ("leaf 1", "000005", "000006"):
        Image.new("RGB", (200, 100)).save(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml([("dog", (1, 1, 50, 50))], (200, 100)))
    quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"))
    assert [os.path.basename(p) for p in datasets.read_image_list(str(tmp_path / "out"), "TRAIN")] == [
        "leaf 1.jpg", "000005.jpg", "000006.jpg"]


# ---------------------------------------------------------------------------------------------------------
# 4. Names
# ---------------------------------------------------------------------------------------------------------


def test_background_is_reserved_for_label_0(tmp_path, capsys):
    """A class named "Background" is refused in one line naming the file and the reason (it was "not in the label
    map"); with --skip-bad the label map stays {"background": 0, "kitten": 1} (it became {"background": 1,
    "kitten": 1}, and eval.py scored "background" as a class). In a COCO file, the whole file is refused."""
    root = voc_tree(tmp_path / "VOC", ["a"])
    Image.new("RGB", (200, 100)).save(root / "JPEGImages" / "a.jpg")
    (root / "Annotations" / "a.xml").write_text(
        voc_xml([("kitten", (1, 1, 50, 50)), ("Background", (60, 1, 120, 50))], (200, 100)))
    assert cdl.main(["--voc07", str(root), "--output", str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {root / 'Annotations' / 'a.xml'}: object 2 is named 'Background', which is reserved "
                      f"for label 0 (no object); rename the class"]
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"),
                       skip_bad=True)
    assert summary["label_map"] == {"background": 0, "kitten": 1}
    assert summary["skipped"] == {"reserved class name": 1} and summary["TRAIN"]["objects"] == 1

    folder = tmp_path / "coco"
    folder.mkdir()
    Image.new("RGB", (64, 48)).save(folder / "a.jpg")
    path = coco_file(folder, [(1, "a.jpg", 64, 48)], [], categories=((1, "cat"), (2, "BACKGROUND")))
    with pytest.raises(DataListError, match="category 2 \\('BACKGROUND'\\): .*not 'background'"):
        quiet(create_coco_data_lists, path, str(folder), output_folder=str(tmp_path / "coco_out"))


def test_a_rare_non_voc_name_among_voc_names_is_named_in_the_summary(tmp_path):
    """One "dgo" among 150 "dog"s (and other VOC names): the label map is the names found, and the summary says
    that every name but 'dgo' is a VOC class, suggesting 'dog'. Many non-VOC names (a custom set) say nothing."""
    root = voc_tree(tmp_path / "VOC", ["many", "typo"])
    for image_id in ("many", "typo"):
        Image.new("RGB", (200, 100)).save(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "Annotations" / "many.xml").write_text(
        voc_xml([("dog", (1, 1, 50, 50))] * 150 + [("cat", (1, 1, 50, 50))] * 10, (200, 100)))
    (root / "Annotations" / "typo.xml").write_text(voc_xml([("dgo", (1, 1, 50, 50))], (200, 100)))
    summary, printed = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(tmp_path / "out"))
    assert summary["rare_non_voc_names"] == {"dgo": 1}
    assert summary["label_map"] == {"background": 0, "cat": 1, "dgo": 2, "dog": 3}
    assert "every class name but 'dgo' (1 object; did you mean 'dog'?) is a Pascal VOC class" in printed
    assert rare_non_voc_names({"dog": 50, "scratch": 40}) == {}  # a real class of its own
    assert rare_non_voc_names({"dog": 50}) == {}


# ---------------------------------------------------------------------------------------------------------
# 5. Folders without ImageSets
# ---------------------------------------------------------------------------------------------------------


def labelimg_folders(root, n_images, side_by_side=False, prefix="img"):
    """labelImg's layout: images/ and labels/ (or one folder with both), ID.jpg and ID.xml."""
    images = root if side_by_side else root / "images"
    labels = root if side_by_side else root / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for k in range(n_images):
        image_id = f"{prefix}{k:02d}"
        object_image((120, 90), (10, 10, 49, 49)).save(images / f"{image_id}.jpg")
        (labels / f"{image_id}.xml").write_text(voc_xml([("dog", (11, 11, 50, 50))], (120, 90), f"{image_id}.jpg"))
    return str(images), str(labels)


def test_annotations_folder_with_a_seeded_split(tmp_path, capsys):
    """--annotations/--images: every XML of the folder, a seeded draw of --test-fraction for TEST; the same
    command gives the same split, --test-fraction 0 puts all in TRAIN."""
    images, labels = labelimg_folders(tmp_path / "data", 10)

    def split(*options):
        out = tmp_path / "out"
        assert cdl.main(["--annotations", labels, "--images", images, "--output", str(out), *options]) == 0
        return [[os.path.basename(p) for p in datasets.read_image_list(str(out), s)] for s in ("TRAIN", "TEST")]

    train, test = split("--test-fraction", "0.3", "--seed", "1")
    assert len(train) == 7 and len(test) == 3 and sorted(train + test) == [f"img{k:02d}.jpg" for k in range(10)]
    assert split("--test-fraction", "0.3", "--seed", "1") == [train, test]
    assert split("--test-fraction", "0.3", "--seed", "2") != [train, test]  # (a 1 in 120 chance of equal)
    assert split("--test-fraction", "0") == [[f"img{k:02d}.jpg" for k in range(10)], []]
    assert len(split()[1]) == 2  # default 0.2
    capsys.readouterr()


def test_an_image_listed_twice_is_a_problem_not_a_silent_duplicate(tmp_path, capsys):
    """Each way one image reaches the lists twice is one line naming it: b.xml without b.jpg whose <filename>
    names a1.jpg (which has its own XML); an ID in both trainval.txt and test.txt; an ID twice in test.txt.
    --skip-bad keeps one listing, TEST's when TRAIN and TEST share the image."""
    folder = tmp_path / "labelimg"
    folder.mkdir()
    for name, filename, cls in (("a1", "a1", "dog"), ("a2", "a2", "dog"), ("b", "a1", "cat")):
        if name == filename:
            object_image((120, 80), (10, 20, 49, 59)).save(folder / f"{name}.jpg")
        (folder / f"{name}.xml").write_text(voc_xml([(cls, (11, 21, 50, 60))], (120, 80), f"{filename}.jpg"))
    out = tmp_path / "out"
    assert cdl.main(["--annotations", str(folder), "--images", str(folder), "--test-fraction", "0",
                     "--output", str(out)]) == 1
    error = capsys.readouterr().err
    assert f"{folder / 'a1.jpg'}: listed twice in TRAIN" in error and "1 duplicate image" in error
    assert cdl.main(["--annotations", str(folder), "--images", str(folder), "--test-fraction", "0",
                     "--output", str(out), "--skip-bad"]) == 0
    assert sorted(os.path.basename(p) for p in datasets.read_image_list(str(out), "TRAIN")) == ["a1.jpg", "a2.jpg"]
    capsys.readouterr()

    root = voc_tree(tmp_path / "VOC", ["p1", "p2"], image_sets={"trainval": b"p1\np2\n", "test": b"p2\np3\np3\n"})
    for name in ("p1", "p2", "p3"):
        object_image((120, 80), (10, 20, 49, 59)).save(root / "JPEGImages" / f"{name}.jpg")
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml([("dog", (11, 21, 50, 60))], (120, 80)))
    with pytest.raises(DataListError, match="2 problem"):
        quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(out), classes=["dog"])
    error = capsys.readouterr().err
    assert f"{root / 'JPEGImages' / 'p2.jpg'}: listed in both TEST and TRAIN" in error
    assert f"{root / 'JPEGImages' / 'p3.jpg'}: listed twice in TEST" in error
    summary, _ = quiet(cdl.create_data_lists, voc07_path=str(root), output_folder=str(out), classes=["dog"],
                       skip_bad=True)
    assert [os.path.basename(p) for p in datasets.read_image_list(str(out), "TRAIN")] == ["p1.jpg"]
    assert [os.path.basename(p) for p in datasets.read_image_list(str(out), "TEST")] == ["p2.jpg", "p3.jpg"]
    assert summary["skipped"] == {"duplicate image": 2}
    capsys.readouterr()


def test_roboflow_export_with_its_own_test_split(tmp_path):
    """Roboflow's VOC export: train/ and valid/ with images and XMLs side by side; --test-annotations gives TEST."""
    labelimg_folders(tmp_path / "export" / "train", 3, side_by_side=True, prefix="train")
    labelimg_folders(tmp_path / "export" / "valid", 2, side_by_side=True, prefix="valid")
    out = tmp_path / "out"
    summary, _ = quiet(create_folder_data_lists, str(tmp_path / "export" / "train"), output_folder=str(out),
                       test_annotations=str(tmp_path / "export" / "valid"))
    assert (summary["TRAIN"]["images"], summary["TEST"]["images"]) == (3, 2)
    assert [os.path.basename(p) for p in datasets.read_image_list(str(out), "TEST")] == ["valid00.jpg", "valid01.jpg"]


def test_a_test_image_that_is_a_link_of_a_train_image_is_a_duplicate_image(tmp_path, capsys):
    """--annotations ann --test-annotations test, test/b.jpg a symbolic link to ann/train00.jpg (b.xml its own
    annotation): TRAIN and TEST would hold one file. One line naming both paths, exit 1."""
    labelimg_folders(tmp_path / "ann", 2, side_by_side=True, prefix="train")
    test = tmp_path / "test"
    test.mkdir()
    os.symlink(tmp_path / "ann" / "train00.jpg", test / "b.jpg")
    (test / "b.xml").write_text(voc_xml([("dog", (11, 11, 50, 50))], (120, 90), "b.jpg"))
    assert cdl.main(["--annotations", str(tmp_path / "ann"), "--test-annotations", str(test),
                     "--output", str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "duplicate" in line or "listed" in line]
    assert any(line.startswith(f"error: {tmp_path / 'ann' / 'train00.jpg'}: listed in both TEST and TRAIN")
               and f"the same file as {test / 'b.jpg'}" in line for line in errors), errors


def test_voc07_without_image_sets_points_to_annotations(tmp_path, capsys):
    """--voc07 on a labelImg folder: one line saying to use --annotations DIR --images DIR."""
    labelimg_folders(tmp_path / "data", 2)
    assert cdl.main(["--voc07", str(tmp_path / "data"), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "use --annotations DIR --images DIR" in err


# ---------------------------------------------------------------------------------------------------------
# 6. COCO metric with pycocotools 2.0.9 / 2.0.10
# ---------------------------------------------------------------------------------------------------------


def test_coco_ground_truth_has_the_info_key_pycocotools_2_0_10_reads(monkeypatch):
    """pycocotools 2.0.9 and 2.0.10's loadRes reads dataset["info"] (KeyError: 'info' after the whole evaluation);
    the ground truth built in memory has one, so the evaluation finishes with those versions' loadRes."""
    from pycocotools.coco import COCO

    original = COCO.loadRes

    def load_res_2_0_10(self, results):
        """As 2.0.10 does: res.dataset['info'] = copy.deepcopy(self.dataset['info'])."""
        info = self.dataset["info"]
        res = original(self, results)
        res.dataset["info"] = dict(info)
        return res

    monkeypatch.setattr(COCO, "loadRes", load_res_2_0_10)
    boxes = [torch.tensor([[0.1, 0.1, 0.5, 0.5]])]
    labels, difficulties = [torch.tensor([1])], [torch.tensor([0])]
    assert "info" in build_coco_ground_truth(boxes, labels, difficulties, [(100, 100)], {"background": 0, "a": 1})
    result = coco_average_precision(boxes, labels, [torch.tensor([0.9])], boxes, labels, difficulties, [(100, 100)],
                                    label_map={"background": 0, "a": 1})
    assert result["AP"] == pytest.approx(1.0)


def test_loss_option_mines_negatives_on_images_without_objects():
    """README 3.6: with the paper's loss (the default) an image without objects gets exactly zero gradient; with
    MultiBoxLoss(negatives_per_empty_image=K) its K hardest negatives are learned as background."""
    from model import create_prior_boxes
    from utils import MultiBoxLoss

    torch.manual_seed(0)
    priors = create_prior_boxes()
    boxes = [torch.tensor([[0.1, 0.1, 0.6, 0.7]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.long)]
    locs = torch.randn(2, len(priors), 4)
    scores = torch.randn(2, len(priors), 3)
    gradients = {}
    for k in (0, 10):
        predicted = scores.clone().requires_grad_(True)
        loss_fn = MultiBoxLoss(priors, negatives_per_empty_image=k)
        sum(loss_fn(locs, predicted, boxes, labels)).backward()
        gradients[k] = predicted.grad[1].abs().sum(dim=1)
        if k:
            true_classes, _, _ = loss_fn.match(boxes, labels)
            n_positives = int((true_classes != 0).sum())
            background_loss = torch.nn.functional.cross_entropy(scores[1], torch.zeros(len(priors), dtype=torch.long),
                                                                reduction="none")
            without = sum(MultiBoxLoss(priors)(locs, scores, boxes, labels))
            with_empty = sum(loss_fn(locs, scores, boxes, labels))
            torch.testing.assert_close(with_empty - without, background_loss.topk(k).values.sum() / n_positives)
    assert gradients[0].sum() == 0
    assert int((gradients[10] > 0).sum()) == 10
    with pytest.raises(ValueError, match="negatives_per_empty_image"):
        MultiBoxLoss(priors, negatives_per_empty_image=-1)


def test_eval_with_a_listed_image_gone_is_one_line(tmp_path, capsys, save_checkpoint):
    """Lists copied to a machine without some images: eval.py stops before the model runs, in one line naming
    the list, how many images are missing and the first (it died at the first batch with a traceback)."""
    from model import SSD300

    images, labels = labelimg_folders(tmp_path / "data", 3)
    out = tmp_path / "lists"
    quiet(create_folder_data_lists, labels, images, str(out), test_fraction=0.7, classes=["dog"])
    test_images = datasets.read_image_list(str(out), "TEST")
    for path in test_images:
        os.remove(path)
    checkpoint = save_checkpoint(tmp_path / "ckpt.pt", SSD300(n_classes=2), {"background": 0, "dog": 1})
    assert eval_script.main(["--data-folder", str(out), "--checkpoint", checkpoint, "--device", "cpu",
                             "--workers", "0", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"eval.py: error: {out / 'TEST_images.json'}: 2 of 2 listed images not found, the first "
                   f"{test_images[0]} (moved? run create_data_lists.py again)")
