"""Issue 26, "Data": paths from another OS, a bad box under --skip-bad, multi-frame images. Each example of the
issue is a test asserting the right value, for every reader (VOC, COCO, YOLO)."""

import contextlib
import io
import json
import os

import pytest
from PIL import Image

import create_data_lists as cdl
from ssd_support.coco_format import create_coco_data_lists
from ssd_support.yolo_format import create_yolo_data_lists
import detect
from data_lists import read_lists
from ssd_support.images import frame_count, multi_frame_note, resolve_written_path


def quiet(function, *args, **kwargs):
    """Call ``function`` with stdout captured; return (result, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = function(*args, **kwargs)
    return result, printed.getvalue()


def voc_xml(objects, size=(200, 100), filename=None, path=None):
    """A VOC XML: objects are (name, {tag: value} of <bndbox>); filename / path as given (None: no tag)."""
    boxes = "".join(f"<object><name>{name}</name><bndbox>"
                    + "".join(f"<{tag}>{value}</{tag}>" for tag, value in box.items()) + "</bndbox></object>"
                    for name, box in objects)
    tags = (f"<filename>{filename}</filename>" if filename is not None else "") + \
        (f"<path>{path}</path>" if path is not None else "")
    return (f"<annotation>{tags}<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
            f"{boxes}</annotation>")


def box(x1, y1, x2, y2):
    """<bndbox> values (1-based VOC pixels)."""
    return {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}


def voc_folder(root, annotations, trainval, test=(), image_files=()):
    """A VOC-format folder: Annotations/<id>.xml for {id: xml}, JPEGImages/<name> 200x100 for each of
    image_files (a name may hold a sub-folder), ImageSets/Main/{trainval,test}.txt with the lines given."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, xml in annotations.items():
        (root / "Annotations" / (image_id + ".xml")).parent.mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / (image_id + ".xml")).write_text(xml)
    for name in image_files:
        (root / "JPEGImages" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (200, 100), (90, 90, 90)).save(root / "JPEGImages" / name)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(line + "\n" for line in trainval))
    (root / "ImageSets" / "Main" / "test.txt").write_text("".join(line + "\n" for line in test))
    return str(root)


def coco_file(folder, images, annotations, categories=((1, "dog"),)):
    """A COCO instances file in ``folder``: images (id, file_name as written, width, height)."""
    data = {"images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
            "annotations": annotations, "categories": [{"id": i, "name": n} for i, n in categories]}
    (folder / "instances.json").write_text(json.dumps(data))
    return str(folder / "instances.json")


def annotation(ann_id, image_id, bbox, category_id=1):
    """One COCO annotation."""
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0}


# ---------------------------------------------------------------------------------------------------------
# Paths written with the other OS's separator
# ---------------------------------------------------------------------------------------------------------


def test_resolve_written_path(tmp_path):
    """``images\\b.jpg`` on Linux is images/b.jpg when only that exists; a file whose name holds the backslash
    is taken as written; where neither exists, the path tried is this system's form."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "b.jpg").write_bytes(b"x")
    assert resolve_written_path("images\\b.jpg", str(tmp_path)) == (str(tmp_path / "images" / "b.jpg"),) * 2
    assert resolve_written_path("images/b.jpg", str(tmp_path))[0] == str(tmp_path / "images" / "b.jpg")
    if os.sep == "/":
        (tmp_path / "odd\\name.jpg").write_bytes(b"x")
        assert resolve_written_path("odd\\name.jpg", str(tmp_path))[0] == str(tmp_path / "odd\\name.jpg")
    assert resolve_written_path("images\\c.jpg", str(tmp_path)) == (None, str(tmp_path / "images" / "c.jpg"))


def test_coco_file_name_written_on_windows(tmp_path, capsys):
    """The issue's example: a COCO json written on Windows names ``images\\b.jpg``; on Linux it is images/b.jpg
    (it was ".../images\\b.jpg not found", and --skip-bad dropped it). A file that is not there is named as
    written and as tried."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "images" / "b.jpg")
    json_path = coco_file(tmp_path, [(1, "images\\b.jpg", 64, 48)], [annotation(1, 1, [4, 6, 20, 10])])
    quiet(create_coco_data_lists, json_path, str(tmp_path), output_folder=str(tmp_path / "out"))
    lists = read_lists(tmp_path / "out")
    assert lists["TRAIN_images"] == [str(tmp_path / "images" / "b.jpg")]
    assert lists["TRAIN_objects"] == [{"boxes": [[4, 6, 24, 16]], "labels": [1], "difficulties": [0]}]

    json_path = coco_file(tmp_path, [(1, "images\\b.jpg", 64, 48), (2, "images\\gone.jpg", 64, 48)], [])
    assert cdl.main(["--coco-json", json_path, "--coco-images", str(tmp_path), "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {json_path}: image 2: {tmp_path / 'images' / 'gone.jpg'} not found "
                      f"(file_name 'images\\\\gone.jpg')"]


def test_voc_filename_and_path_written_on_windows(tmp_path, capsys):
    """An annotation whose ID has no image of its own: ``<filename>sub\\b.jpg`` is JPEGImages/sub/b.jpg, and a
    labelImg ``<path>C:\\photos\\c.jpg`` is c.jpg in JPEGImages; one that names nothing says what was tried."""
    root = tmp_path / "VOC"
    folder = voc_folder(root, {"x1": voc_xml([("dog", box(1, 1, 10, 10))], filename="sub\\b.jpg"),
                               "x2": voc_xml([("dog", box(1, 1, 20, 20))], path="C:\\photos\\c.jpg")},
                        ["x1", "x2"], image_files=["sub/b.jpg", "c.jpg"])
    quiet(cdl.create_data_lists, voc07_path=folder, output_folder=str(tmp_path / "out"))
    assert read_lists(tmp_path / "out")["TRAIN_images"] == [str(root / "JPEGImages" / "sub" / "b.jpg"),
                                                            str(root / "JPEGImages" / "c.jpg")]

    (root / "Annotations" / "x3.xml").write_text(voc_xml([("dog", box(1, 1, 9, 9))], filename="sub\\none.jpg"))
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("x3\n")
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {root / 'Annotations' / 'x3.xml'}: image not found")
    assert errors[0].endswith(f"; <filename> 'sub\\\\none.jpg' tried as {root / 'JPEGImages' / 'sub' / 'none.jpg'})")


def test_image_sets_lines_written_on_windows(tmp_path, capsys):
    """An ImageSets line ``2008\\000001`` (written on Windows) is the ID 2008/000001: Annotations/2008/000001.xml
    and JPEGImages/2008/000001.jpg; a line naming no XML is named as written, with the path tried."""
    root = tmp_path / "VOC"
    folder = voc_folder(root, {"2008/000001": voc_xml([("dog", box(1, 1, 10, 10))])}, ["2008\\000001"],
                        image_files=["2008/000001.jpg"])
    quiet(cdl.create_data_lists, voc07_path=folder, output_folder=str(tmp_path / "out"))
    assert read_lists(tmp_path / "out")["TRAIN_images"] == [str(root / "JPEGImages" / "2008" / "000001.jpg")]

    (root / "ImageSets" / "Main" / "trainval.txt").write_text("2008\\000001\n2008\\000002\n")
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {root / 'Annotations' / '2008' / '000002.xml'}: annotation file not found "
                      f"(ImageSets line '2008\\\\000002')"]


def test_yolo_list_file_written_on_windows(tmp_path, capsys):
    """A YOLO list file's line ``images\\val\\v.jpg`` resolves; one naming no file is named as written, with the
    list file, its line number and the path tried."""
    root = tmp_path / "d"
    for split, name in (("train", "t.jpg"), ("val", "v.jpg")):
        (root / "images" / split).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / "images" / split / name)
    (root / "val.txt").write_text("images\\val\\v.jpg\n")
    (root / "data.yaml").write_text("train: images/train\nval: val.txt\nnames: [cat]\n")
    quiet(create_yolo_data_lists, str(root), output_folder=str(tmp_path / "out"))
    assert read_lists(tmp_path / "out")["TEST_images"] == [str(root / "images" / "val" / "v.jpg")]

    (root / "val.txt").write_text("images\\val\\v.jpg\nimages\\val\\gone.jpg\n")
    assert cdl.main(["--yolo", str(root), "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {root / 'val.txt'}: line 2: 'images\\\\val\\\\gone.jpg' not found (tried "
                      f"{root / 'images' / 'val' / 'gone.jpg'})"]


# ---------------------------------------------------------------------------------------------------------
# A bad box makes its image bad
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_box", [box(60, 10, 50, 40), {"xmin": 1, "ymin": 1, "xmax": 20}],
                         ids=["xmin > xmax", "missing ymax"])
def test_voc_image_whose_only_box_is_bad_is_skipped_in_every_split(tmp_path, capsys, bad_box):
    """The issue's examples: an image whose only box is bad (xmin > xmax, a missing <ymax>) stayed in the lists with
    no objects; under --skip-bad it is left out of every split that lists it (here trainval and test), counted
    once as an image left out, by reason. An image with one bad box among good ones goes the same way."""
    root = tmp_path / "VOC"
    folder = voc_folder(root, {"bad": voc_xml([("dog", bad_box)]),
                               "mixed": voc_xml([("dog", box(1, 1, 50, 50)), ("cat", bad_box)]),
                               "good": voc_xml([("dog", box(1, 1, 50, 50))])},
                        ["bad", "mixed", "good"], ["bad"], image_files=["bad.jpg", "mixed.jpg", "good.jpg"])
    summary, printed = quiet(cdl.create_data_lists, voc07_path=folder, output_folder=str(tmp_path / "out"),
                             skip_bad=True)
    lists = read_lists(tmp_path / "out")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["good.jpg"]
    assert lists["TEST_images"] == []
    reason = "degenerate box" if "ymax" in bad_box else "malformed XML"
    assert summary["skipped_images"] == {reason: 2} and summary["skipped"] == {reason: 2}
    assert f"Left out (--skip-bad): 2 images (2 {reason})." in printed
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("skipped: ")]) == 2


def test_coco_image_with_a_bad_box_is_skipped(tmp_path):
    """COCO: an image whose box is empty (w 0) or whose annotation names an unknown category is left out whole,
    not kept with an object less; an annotation of no image leaves the images as they are."""
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (64, 48)).save(tmp_path / "images" / name)
    json_path = coco_file(tmp_path, [(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48), (3, "c.jpg", 64, 48)],
                          [annotation(1, 1, [1, 1, 10, 10]), annotation(2, 1, [5, 5, 0, 10]),
                           annotation(3, 2, [1, 1, 10, 10], category_id=7), annotation(4, 3, [2, 2, 8, 8]),
                           annotation(5, 99, [2, 2, 8, 8])])
    summary, _ = quiet(create_coco_data_lists, json_path, str(tmp_path / "images"),
                       output_folder=str(tmp_path / "out"), skip_bad=True)
    lists = read_lists(tmp_path / "out")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["c.jpg"]
    assert lists["TRAIN_objects"] == [{"boxes": [[2, 2, 10, 10]], "labels": [1], "difficulties": [0]}]
    assert summary["skipped_images"] == {"degenerate box": 1, "unknown category": 1}
    assert summary["skipped_objects"] == {"unknown image": 1}


def test_yolo_image_with_a_bad_box_is_skipped_in_every_split(tmp_path):
    """YOLO: an image listed in train and test whose label has a zero-size box is left out of both, once."""
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name, label in (("bad", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n"), ("good", "0 0.5 0.5 0.2 0.2\n")):
        Image.new("RGB", (100, 100)).save(root / "images" / f"{name}.jpg")
        (root / "labels" / f"{name}.txt").write_text(label)
    (root / "train.txt").write_text("./images/bad.jpg\n./images/good.jpg\n")
    (root / "test.txt").write_text("./images/bad.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nval: test.txt\ntest: test.txt\nnames: [cat]\n")
    summary, _ = quiet(create_yolo_data_lists, str(root), output_folder=str(tmp_path / "out"), skip_bad=True)
    lists = read_lists(tmp_path / "out")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["good.jpg"] and lists["TEST_images"] == []
    assert summary["skipped_images"] == {"degenerate box": 1}


# ---------------------------------------------------------------------------------------------------------
# Multi-frame images
# ---------------------------------------------------------------------------------------------------------


def save_frames(path, n_frames, size=(200, 100), fmt=None):
    """An image file of ``n_frames`` frames (GIF, TIFF, MPO...)."""
    frames = [Image.new("RGB", size, (40 * k, 90, 90)) for k in range(n_frames)]
    frames[0].save(path, format=fmt, save_all=n_frames > 1, append_images=frames[1:])


def test_frame_count(tmp_path):
    """An animated GIF counts its frames, a TIFF its pages, a still image 1, and an MPO (a camera JPEG holding a
    preview or a stereo pair) 1: its first picture is the whole photo."""
    save_frames(tmp_path / "a.gif", 3)
    save_frames(tmp_path / "p.tif", 2)
    save_frames(tmp_path / "camera.jpg", 2, fmt="MPO")
    save_frames(tmp_path / "still.png", 1)
    assert [frame_count(str(tmp_path / name)) for name in ("a.gif", "p.tif", "camera.jpg", "still.png")] == \
        [3, 2, 1, 1]
    assert multi_frame_note(str(tmp_path / "a.gif")) == \
        f"Note: {tmp_path / 'a.gif'} has 3 frames (an animated or multi-page file); only the first is read"
    assert multi_frame_note(str(tmp_path / "still.png")) is None


def test_multi_frame_images_are_noted_once_per_file_by_every_reader(tmp_path):
    """VOC, COCO and YOLO: each multi-frame image is one note naming it (once, though listed in two splits)."""
    root = tmp_path / "VOC"
    folder = voc_folder(root, {"anim": voc_xml([("dog", box(1, 1, 50, 50))]),
                               "still": voc_xml([("dog", box(1, 1, 50, 50))])}, ["anim", "still"], ["anim"])
    save_frames(root / "JPEGImages" / "anim.gif", 3)
    save_frames(root / "JPEGImages" / "still.jpg", 1)
    _, printed = quiet(cdl.create_data_lists, voc07_path=folder, output_folder=str(tmp_path / "v"), skip_bad=True)
    notes = [line for line in printed.splitlines() if "frames (an animated" in line]
    assert notes == [f"Note: {root / 'JPEGImages' / 'anim.gif'} has 3 frames (an animated or multi-page file); only "
                     f"the first is read"]

    (tmp_path / "coco").mkdir()
    save_frames(tmp_path / "coco" / "pages.tif", 2, size=(64, 48))
    json_path = coco_file(tmp_path / "coco", [(1, "pages.tif", 64, 48)], [annotation(1, 1, [1, 1, 10, 10])])
    _, printed = quiet(create_coco_data_lists, json_path, str(tmp_path / "coco"), output_folder=str(tmp_path / "c"))
    assert f"Note: {tmp_path / 'coco' / 'pages.tif'} has 2 frames" in printed

    yolo = tmp_path / "yolo"
    for split in ("train", "val"):
        (yolo / "images" / split).mkdir(parents=True)
    save_frames(yolo / "images" / "train" / "a.gif", 4)
    save_frames(yolo / "images" / "val" / "b.jpg", 1)
    (yolo / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat]\n")
    _, printed = quiet(create_yolo_data_lists, str(yolo), output_folder=str(tmp_path / "y"))
    assert [line for line in printed.splitlines() if "frames (an animated" in line] == \
        [f"Note: {yolo / 'images' / 'train' / 'a.gif'} has 4 frames (an animated or multi-page file); only the first "
         f"is read"]


def test_detect_notes_a_multi_frame_image_once(tmp_path, monkeypatch, capsys):
    """detect.py says it once per multi-frame file, and nothing for a still image (the detector stubbed: the
    note is about reading the file)."""
    save_frames(tmp_path / "anim.gif", 3, size=(64, 48))
    save_frames(tmp_path / "still.png", 1, size=(64, 48))
    monkeypatch.setattr(detect, "make_detector",
                        lambda *args, **kwargs: (lambda images: [[] for _ in images], {"background": 0, "cat": 1},
                                                 "stub"))
    detect.main([str(tmp_path / "anim.gif"), str(tmp_path / "still.png"), "--output", str(tmp_path / "out")])
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Note:")]
    assert notes == [f"Note: {tmp_path / 'anim.gif'} has 3 frames (an animated or multi-page file); only the first "
                     f"is read"]
