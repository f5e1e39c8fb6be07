"""create_data_lists.py --yolo: Ultralytics / Roboflow YOLO data sets (ssd_support/yolo_format.py), read as the
VOC route reads the same objects, and every check a one-line error naming the file and line."""

import contextlib
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

import create_data_lists as cdl
from ssd_support.data_lists import DataListError
from data_lists import read_lists
from ssd_support import toy_data, yolo_format
from ssd_support.yolo_format import COORDINATE_TOLERANCE, create_yolo_data_lists, label_path

pytest.importorskip("yaml")


def quiet(function, *args, **kwargs):
    """Call ``function`` with stdout captured; return (result, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = function(*args, **kwargs)
    return result, printed.getvalue()


def voc_to_yolo(voc_folder, yolo_folder, names, image_sets=(("trainval", "train"), ("test", "val"))):
    """Convert a VOC-format folder into an Ultralytics YOLO data set, as labelImg / Roboflow write one: each
    object's own box (1-based inclusive pixels -> 0-based edges [xmin - 1, xmax], clipped to the image) as
    ``class cx cy w h`` in fractions of the image's size, 6 decimals; images/<split>/ID.jpg and
    labels/<split>/ID.txt; data.yaml with ``names`` and the split folders.

    :return: the yaml's path
    """
    for image_set, split in image_sets:
        for sub in ("images", "labels"):
            os.makedirs(os.path.join(yolo_folder, sub, split), exist_ok=True)
        with open(os.path.join(voc_folder, "ImageSets", "Main", image_set + ".txt")) as file:
            ids = file.read().split()
        for image_id in ids:
            root = ET.parse(os.path.join(voc_folder, "Annotations", image_id + ".xml")).getroot()
            image = os.path.join(voc_folder, "JPEGImages", image_id + ".jpg")
            with Image.open(image) as opened:
                width, height = opened.size
            os.link(image, os.path.join(yolo_folder, "images", split, image_id + ".jpg"))
            lines = []
            for obj in root.findall("object"):
                box = obj.find("bndbox")
                x1, y1, x2, y2 = (float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
                x1, y1 = max(x1 - 1, 0.0), max(y1 - 1, 0.0)
                x2, y2 = min(x2, width), min(y2, height)
                class_id = names.index(obj.findtext("name").strip().lower())
                lines.append(f"{class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                             f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
            with open(os.path.join(yolo_folder, "labels", split, image_id + ".txt"), "w") as file:
                file.writelines(lines)
    yaml_path = os.path.join(yolo_folder, "data.yaml")
    with open(yaml_path, "w") as file:
        file.write("train: images/train\nval: images/val\n"
                   f"nc: {len(names)}\nnames: [{', '.join(names)}]\n")
    return yaml_path


def write_yolo(root, splits, names=("cat", "dog"), yaml_text=None):
    """A small YOLO data set: root/images/<split>/<name> (grey images of the given sizes), root/labels/<split>/
    <stem>.txt (the text given; None: no label file), root/data.yaml.

    :param splits: {split: {image file name: ((width, height), label text or None)}}
    :return: the root, a str
    """
    for split, images in splits.items():
        for name, (size, label) in images.items():
            image = root / "images" / split / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (90, 90, 90)).save(image)
            if label is not None:
                text_path = root / "labels" / split / (os.path.splitext(name)[0] + ".txt")
                text_path.parent.mkdir(parents=True, exist_ok=True)
                text_path.write_text(label)
    if yaml_text is None:
        yaml_text = "".join(f"{split}: images/{split}\n" for split in splits) + f"names: {list(names)}\n"
    (root / "data.yaml").write_text(yaml_text)
    return str(root)


# ---------------------------------------------------------------------------------------------------------
# The same boxes as the VOC route
# ---------------------------------------------------------------------------------------------------------


def test_a_toy_set_as_voc_and_as_yolo_gives_the_same_boxes(tmp_path):
    """The toy set (VOC XML, with float coordinates, difficult flags and <part> sub-boxes), converted to YOLO,
    reads into the same boxes and labels. Bound: the converter rounds cx and w to 6 decimals (each off by at most
    5e-7), so an edge (cx - w / 2) * W is off by at most 7.5e-7 * W: 3e-4 pixels on the toy images' at most
    400-pixel sides. YOLO has no difficult flag: every difficulty is 0 where VOC's are 0 or 1."""
    voc = toy_data.make_toy_dataset(str(tmp_path / "toy"), n_train=6, n_test=3, seed=0)
    names = sorted(toy_data.TOY_CLASSES)
    yaml_path = voc_to_yolo(voc, str(tmp_path / "yolo"), names)
    quiet(cdl.create_data_lists, voc07_path=voc, output_folder=str(tmp_path / "voc_lists"))
    summary, printed = quiet(create_yolo_data_lists, os.path.dirname(yaml_path),
                             output_folder=str(tmp_path / "yolo_lists"))
    from_voc, from_yolo = read_lists(tmp_path / "voc_lists"), read_lists(tmp_path / "yolo_lists")

    assert from_yolo["label_map"] == from_voc["label_map"] == {"background": 0, "circle": 1, "square": 2,
                                                               "triangle": 3}
    assert summary["val_is_test"] and "no test split: its val is TEST" in printed
    assert "VAL" not in summary and not (tmp_path / "yolo_lists" / "VAL_objects.json").exists()
    n_difficult = 0
    for split in ("TRAIN", "TEST"):
        assert [os.path.basename(p) for p in from_yolo[f"{split}_images"]] == \
            [os.path.basename(p) for p in from_voc[f"{split}_images"]]
        for path, voc_objects, yolo_objects in zip(from_voc[f"{split}_images"], from_voc[f"{split}_objects"],
                                                   from_yolo[f"{split}_objects"]):
            with Image.open(path) as image:
                bound = 7.5e-7 * max(image.size) + 1e-9
            assert yolo_objects["labels"] == voc_objects["labels"]
            assert yolo_objects["difficulties"] == [0] * len(voc_objects["labels"])
            n_difficult += sum(voc_objects["difficulties"])
            for voc_box, yolo_box in zip(voc_objects["boxes"], yolo_objects["boxes"]):
                assert max(abs(a - b) for a, b in zip(voc_box, yolo_box)) <= bound, (path, voc_box, yolo_box)
    assert sum(len(o["labels"]) for o in from_yolo["TRAIN_objects"]) > 6 and n_difficult > 0  # the test tests


def test_names_as_a_dict_and_a_roboflow_layout(tmp_path):
    """Roboflow's export: data.yaml beside train/ valid/ test/, each with images/ and labels/, the yaml saying
    ``train: ../train/images`` (Ultralytics also tries such a path without its ../); names as a dict {id: name};
    test -> TEST, valid -> VAL, no note about VAL standing in for TEST."""
    root = tmp_path / "export"
    for split, name in (("train", "a.jpg"), ("valid", "b.jpg"), ("test", "c.jpg")):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir()
        Image.new("RGB", (200, 100)).save(root / split / "images" / name)
        (root / split / "labels" / (name[0] + ".txt")).write_text("1 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
                                    "nc: 2\nnames:\n  0: Helmet\n  1: head\nroboflow:\n  workspace: x\n")
    summary, printed = quiet(create_yolo_data_lists, str(root / "data.yaml"), output_folder=str(tmp_path / "o"))
    lists = read_lists(tmp_path / "o")
    assert lists["label_map"] == {"background": 0, "Helmet": 1, "head": 2}
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["a.jpg"]
    assert [os.path.basename(p) for p in lists["TEST_images"]] == ["c.jpg"]
    with open(tmp_path / "o" / "VAL_images.json") as file:
        assert [os.path.basename(p) for p in json.load(file)] == ["b.jpg"]
    assert lists["TEST_objects"] == [{"boxes": [[50.0, 25.0, 150.0, 75.0]], "labels": [2], "difficulties": [0]}]
    assert not summary["val_is_test"] and "also written as TEST" not in printed


@pytest.mark.parametrize("names_text", ["[no, yes, on, 12:30, 1e3, 0x1A, 3]",
                                        "\n  0: no\n  1: yes\n  2: on\n  3: 12:30\n  4: 1e3\n  5: 0x1A\n  6: 3"])
def test_names_that_yaml_would_read_as_booleans_or_numbers_are_read_as_written(tmp_path, names_text):
    """YAML 1.1 reads ``no`` as False, ``12:30`` as 750 (base 60), ``0x1A`` as 26: classes named "False", "750",
    "26" in label_map.json, with exit 0. The names are the text the file holds, as a list or as a dict."""
    root = write_yolo(tmp_path / "set", {"train": {"a.jpg": ((100, 100), "5 0.5 0.5 0.2 0.2\n")},
                                         "val": {"b.jpg": ((100, 100), "0 0.5 0.5 0.2 0.2\n")}},
                      yaml_text=f"train: images/train\nval: images/val\nnc: 7\nnames: {names_text}\n")
    quiet(create_yolo_data_lists, os.path.join(root, "data.yaml"), output_folder=str(tmp_path / "lists"))
    lists = read_lists(tmp_path / "lists")
    assert list(lists["label_map"]) == ["background", "no", "yes", "on", "12:30", "1e3", "0x1A", "3"]
    assert lists["TRAIN_objects"][0]["labels"] == [6] and lists["TEST_objects"][0]["labels"] == [1]


@pytest.mark.parametrize("yaml_text, expected", [
    ("names: [no, yes]\nnames: [1, 2]\n", ["1", "2"]),  # a repeated key: the last, as YAML (and Ultralytics) read it
    ("<<: {names: [no, yes]}\nnames: [1, 2]\n", ["1", "2"]),  # the mapping's own key over a merged one
    ("<<: {names: [no, yes]}\n", ["no", "yes"]),  # a merged key alone
    ("names: {0: yes, 0: 5, 1: b}\n", ["5", "b"]),  # a repeated id: its last entry
    ("names: [2001-12-14, cat]\n", ["2001-12-14", "cat"]),  # a date, as written
    ("names: {0: a, .inf: b}\n", "names has a key that is not a class id"),  # was an OverflowError traceback
])
def test_names_as_written_take_the_entries_yaml_loads(tmp_path, yaml_text, expected):
    (tmp_path / "data.yaml").write_text(yaml_text)
    path = str(tmp_path / "data.yaml")
    if isinstance(expected, str):
        with pytest.raises(yolo_format.YoloDataError, match=expected):
            yolo_format.class_names(yolo_format.load_yaml(path), path)
    else:
        assert yolo_format.class_names(yolo_format.load_yaml(path), path) == expected


def test_list_files_with_windows_separators_and_a_path_key(tmp_path):
    """``path`` names the root (relative to the yaml's folder); train / val are list files whose lines are
    relative to the list's folder, written on Windows (``.\\images\\x\\a.jpg``): they resolve on Linux. The label
    of images/x/a.jpg is labels/x/a.txt (Ultralytics: the last /images/ becomes /labels/)."""
    root = tmp_path / "set"
    write_yolo(root / "data", {"x": {"a.jpg": ((100, 50), "0 0.25 0.5 0.5 1\n"), "b.jpg": ((100, 50), "")}})
    (root / "data" / "train.txt").write_text(".\\images\\x\\a.jpg\r\nimages\\x\\b.jpg\r\n")
    (root / "data" / "val.txt").write_text("./images/x/b.jpg\n")
    (root / "data.yaml").write_text("path: data\ntrain: train.txt\nval: [val.txt]\nnames: [cat, dog]\n")
    assert label_path(str(root / "data" / "images" / "x" / "a.jpg")) == str(root / "data" / "labels" / "x" / "a.txt")
    _, printed = quiet(create_yolo_data_lists, str(root / "data.yaml"), output_folder=str(tmp_path / "o"),
                       skip_bad=True)  # b.jpg is in train and val: the duplicate leaves TRAIN
    lists = read_lists(tmp_path / "o")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["a.jpg"]
    assert lists["TRAIN_objects"][0]["boxes"] == [[0.0, 0.0, 50.0, 50.0]]
    assert "1 image (1 duplicate image)" in printed


def test_test_fraction_draws_test_from_train(tmp_path):
    """--test-fraction as for --annotations: a seeded draw of train becomes TEST (the same each run); VAL stays
    data.yaml's val and is no longer TEST."""
    train = {f"i{k}.jpg": ((64, 64), "0 0.5 0.5 0.5 0.5\n") for k in range(10)}
    root = write_yolo(tmp_path / "d", {"train": train, "val": {"v.jpg": ((64, 64), "")}})
    argv = ["--yolo", root, "--test-fraction", "0.3", "--seed", "1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(argv + ["--output", str(tmp_path / "o1")]) == 0
        assert cdl.main(argv + ["--output", str(tmp_path / "o2")]) == 0
    first, second = read_lists(tmp_path / "o1"), read_lists(tmp_path / "o2")
    assert len(first["TEST_images"]) == 3 and len(first["TRAIN_images"]) == 7
    assert first["TEST_images"] == second["TEST_images"]
    assert not set(first["TEST_images"]) & set(first["TRAIN_images"])
    with open(tmp_path / "o1" / "VAL_images.json") as file:
        assert [os.path.basename(p) for p in json.load(file)] == ["v.jpg"]


def test_upright_size_by_exif_and_background_images(tmp_path):
    """A phone photo stored 200x100 with EXIF orientation 6 is 100x200 upright, the size its label is normalised
    by; an image without label file is a background image, kept with no objects and counted."""
    root = tmp_path / "d"
    write_yolo(root, {"train": {"bg.jpg": ((50, 50), None)}, "val": {"v.jpg": ((50, 50), "")}})
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (200, 100)).save(root / "images" / "train" / "photo.jpg", exif=exif)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train" / "photo.txt").write_text("0 0.5 0.25 1 0.5\n")
    summary, printed = quiet(create_yolo_data_lists, str(root), output_folder=str(tmp_path / "o"))
    lists = read_lists(tmp_path / "o")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["bg.jpg", "photo.jpg"]
    assert lists["TRAIN_objects"][0]["boxes"] == [] and lists["TRAIN_objects"][1]["boxes"] == [[0, 0, 100, 100]]
    assert summary["background_images"] == 1 and "1 image(s) without a label file: background images" in printed


def test_polygons_scores_and_rounding(tmp_path):
    """A segmentation line becomes its polygon's bounding box (said in a note); a sixth value (a score) is
    ignored; an edge up to COORDINATE_TOLERANCE beyond 1 is rounding, clipped and counted."""
    label = ("0 0.1 0.2 0.5 0.1 0.3 0.6\n"          # a triangle: x 0.1..0.5, y 0.1..0.6
             "1 0.5 0.5 0.2 0.2 0.87\n"              # with a score
             f"1 0.9 0.5 {0.2 + 1.8 * COORDINATE_TOLERANCE} 0.2\n")  # right edge 1 + 0.9 * tolerance
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((200, 100), label)}, "val": {"b.jpg": ((8, 8), "")}})
    summary, printed = quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
    objects = read_lists(tmp_path / "o")["TRAIN_objects"][0]
    assert objects["labels"] == [1, 2, 2]
    expected = [[20, 10, 100, 60], [80, 40, 120, 60], [200 * (0.8 - 0.9 * COORDINATE_TOLERANCE), 40, 200, 60]]
    assert objects["boxes"] == [pytest.approx(box) for box in expected]
    assert summary["clipped"] == 1 and summary["polygons"] == 1
    assert "1 label line(s) are polygons" in printed and "1 label line(s) have a sixth value" in printed


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line naming the file and the line
# ---------------------------------------------------------------------------------------------------------

BAD_LABELS = {
    "class id outside names": ("0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n",
                               r"labels/train/a\.txt: line 2: class 2 is not a class id of names \(0\.\.1\)"),
    "coordinates outside [0, 1]": ("1 0.95 0.5 0.2 0.2\n",
                                   r"labels/train/a\.txt: line 1: x2 1\.05 is outside \[0, 1\]"),
    "pixels": ("0 100 50 20 20\n", r"labels/train/a\.txt: line 1: cx 100 is outside \[0, 1\]"),
    "zero-size box": ("0 0.5 0.5 0 0.2\n", r"labels/train/a\.txt: line 1: zero-size box \(w 0, h 0\.2\)"),
    "four values": ("0 0.5 0.5 0.2\n", r"labels/train/a\.txt: line 1: 4 values; a box is 'class cx cy w h'"),
    "not numbers": ("\n0 0.5 0.5 0.2 0.2\ncat 0.5 0.5 0.2 0.2\n", r"labels/train/a\.txt: line 3: not numbers"),
    "duplicate line": ("0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n0 0.5 0.5 0.2 0.2\n",
                       r"labels/train/a\.txt: line 3 repeats line 1"),
}


@pytest.mark.parametrize("kind", list(BAD_LABELS))
def test_bad_label_line_is_one_line_naming_file_and_line(tmp_path, capsys, kind):
    """Each bad line, beside a good image: one error line naming the label file and the line, status 1, nothing
    written. --skip-bad leaves the image out (a bad box makes its image bad), except for a repeated line, which
    alone is dropped (the image keeps the object once)."""
    label, message = BAD_LABELS[kind]
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((200, 100), label), "b.jpg": ((200, 100), "1 .5 .5 .5 .5")},
                                       "val": {"c.jpg": ((8, 8), "")}})
    out = tmp_path / "o"
    assert cdl.main(["--yolo", root, "--output", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not out.exists()

    assert cdl.main(["--yolo", root, "--output", str(out), "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    lists = read_lists(out)
    if kind == "duplicate line":
        objects = lists["TRAIN_objects"][0]
        assert objects["labels"] == [1, 2] and objects["difficulties"] == [0, 0]
        assert objects["boxes"] == [pytest.approx([80, 40, 120, 60]), pytest.approx([30, 15, 50, 25])]
        assert "Left out (--skip-bad): 1 object (1 duplicate line)." in printed
    else:
        assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["b.jpg"]
        reason = "malformed label" if kind in ("four values", "not numbers") else \
            "degenerate box" if kind == "zero-size box" else \
            "coordinates outside [0, 1]" if kind == "pixels" else kind
        assert f"Left out (--skip-bad): 1 image (1 {reason})." in printed


def test_label_without_image_and_labelimg_classes_file(tmp_path, capsys):
    """A label file whose image is not there is one line naming it (--skip-bad: counted as a file); labelImg's
    classes.txt among the labels is not a label file."""
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), "0 .5 .5 .5 .5\n")},
                                       "val": {"b.jpg": ((8, 8), "")}})
    (tmp_path / "d" / "labels" / "train" / "gone.txt").write_text("0 .5 .5 .5 .5\n")
    (tmp_path / "d" / "labels" / "train" / "classes.txt").write_text("cat\ndog\n")
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {tmp_path / 'd' / 'labels' / 'train' / 'gone.txt'}: label file without an image "
                      f"(looked for {tmp_path / 'd' / 'images' / 'train' / 'gone'}.jpg, .png, ...)"]
    summary, _ = quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"), skip_bad=True)
    assert summary["skipped_files"] == {"label without image": 1} and summary["skipped_images"] == {}
    assert summary["TRAIN"]["images"] == 1


@pytest.mark.parametrize("yaml_text, message", [
    ("train: images/train\nval: images/val\nnc: 3\nnames: [cat, dog]\n", r"data\.yaml: nc is 3 but names has 2"),
    ("train: images/train\nval: images/val\nnames: {0: cat, 2: dog}\n",
     r"data\.yaml: the class ids of names must be 0\.\.1"),
    ("train: images/train\nval: images/val\nnames: [cat, Background]\n",
     r"data\.yaml: class names must be .*not 'background'"),
    ("train: images/train\nval: images/val\n", r"data\.yaml: no 'names'"),
    ("train: images/train\nval: images/val\nnames: [a, b, null]\n",
     r"data\.yaml: names: the class name of id 2 is null \(empty\), not a name"),
    ("train: images/train\nval: images/val\nnames: {0: a, 1: }\n",
     r"data\.yaml: names: the class name of id 1 is null \(empty\), not a name"),
    ("train: images/train\nval: images/val\nnames: [a, [b, c]]\n",
     r"data\.yaml: names: the class name of id 1 is a list"),
    ("train: images/train\nval: images/val\nnames: [{a: b}, c]\n",
     r"data\.yaml: names: the class name of id 0 is a mapping"),
    ("train: images/train\nnames: [cat, dog]\n", r"data\.yaml: no 'val:'"),
    ("train: images/train\nval: images\\nowhere\nnames: [cat, dog]\n",
     r"data\.yaml: val: 'images\\\\nowhere' not found \(tried .*/images/nowhere\)"),
    ("train: images/train\nval: images/val\nnames: [cat, dog\n", r"data\.yaml: not valid YAML at line 4"),
])
def test_bad_data_yaml_is_one_line(tmp_path, yaml_text, message):
    """A data.yaml that cannot be used stops the run with one line naming it."""
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((8, 8), "")}, "val": {"b.jpg": ((8, 8), "")}},
                      yaml_text=yaml_text)
    with pytest.raises(DataListError, match=message):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))


def test_yolo_options(tmp_path):
    """--classes and --val-fraction are refused with --yolo (data.yaml's names and val make them); --test-fraction
    is accepted with it; a folder without data.yaml is one line."""
    for argv in (["--yolo", "d", "--classes", "cat"], ["--yolo", "d", "--val-fraction", "0.2"],
                 ["--yolo", "d", "--annotations", "x"], ["--test-fraction", "0.2"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            cdl.parse_args(argv)
    assert cdl.parse_args(["--yolo", "d", "--test-fraction", "0.2"]).test_fraction == 0.2
    with pytest.raises(DataListError, match="no data.yaml in this folder"):
        create_yolo_data_lists(str(tmp_path), output_folder=str(tmp_path / "o"))


# ---------------------------------------------------------------------------------------------------------
# Issue 31: the reader means what it says
# ---------------------------------------------------------------------------------------------------------


def test_two_images_one_label_is_a_problem_naming_both(tmp_path, capsys):
    """a.jpg (labelled) and another photo a.png in one folder: labels are matched by stem, so a.txt would be read
    as the label of both. One problem per image, each naming the label file and the other image; --skip-bad
    leaves both out."""
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), "0 .5 .5 .5 .5\n"), "a.png": ((64, 64), None),
                                                 "b.jpg": ((64, 64), "1 .5 .5 .5 .5\n")},
                                       "val": {"c.jpg": ((8, 8), "")}})
    images, label = tmp_path / "d" / "images" / "train", tmp_path / "d" / "labels" / "train" / "a.txt"
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert errors == [f"error: {images / name}: its label file {label} is also the label of {images / other} "
                      f"(labels are matched by the image's name without extension: which image is it of?)"
                      for name, other in (("a.jpg", "a.png"), ("a.png", "a.jpg"))]
    summary, _ = quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"), skip_bad=True)
    assert summary["skipped_images"] == {"one label, two images": 2}
    assert [os.path.basename(p) for p in read_lists(tmp_path / "o")["TRAIN_images"]] == ["b.jpg"]


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_a_link_of_a_train_image_in_val_is_a_duplicate_image(tmp_path, capsys, link):
    """val/a2.jpg, a link of train/a.jpg with its own label: TRAIN and TEST would hold one file (the test set scoring
    an image the network trained on). One line naming both paths; --skip-bad keeps TEST's."""
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), "0 .5 .5 .5 .5\n"),
                                                 "b.jpg": ((64, 64), "1 .5 .5 .5 .5\n")},
                                       "val": {"c.jpg": ((64, 64), "")}})
    train, val = tmp_path / "d" / "images" / "train", tmp_path / "d" / "images" / "val"
    link(train / "a.jpg", val / "a2.jpg")
    (tmp_path / "d" / "labels" / "val" / "a2.txt").write_text("0 .5 .5 .5 .5\n")
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {train / 'a.jpg'}: listed in both TEST and TRAIN")
    assert f"the same file as {val / 'a2.jpg'}" in errors[0]
    summary, _ = quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"), skip_bad=True)
    assert summary["skipped_images"] == {"duplicate image": 1}
    lists = read_lists(tmp_path / "o")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["b.jpg"]
    assert sorted(os.path.basename(p) for p in lists["TEST_images"]) == ["a2.jpg", "c.jpg"]


def test_val_without_test_is_test_counted_once(tmp_path):
    """train and val, no test: val becomes TEST (the split eval.py scores) and is not also written as VAL, so
    statistics.json counts its objects once; a VAL left by an earlier run into the folder is removed."""
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), "0 .5 .5 .5 .5\n")},
                                       "val": {"v.jpg": ((64, 64), "1 .5 .5 .5 .5\n1 .2 .2 .2 .2\n")}})
    out = tmp_path / "o"
    out.mkdir()
    for name in ("VAL_images.json", "VAL_objects.json"):
        (out / name).write_text("[]")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cdl.main(["--yolo", root, "--output", str(out)]) == 0
    assert "no test split: its val is TEST" in printed.getvalue()
    assert not (out / "VAL_images.json").exists() and not (out / "VAL_objects.json").exists()
    assert [os.path.basename(p) for p in read_lists(out)["TEST_images"]] == ["v.jpg"]
    with open(out / "statistics.json") as file:
        statistics = json.load(file)
    assert list(statistics["splits"]) == ["TRAIN", "TEST"]
    assert statistics["all_splits"]["objects"] == 3


def test_labels_where_ultralytics_puts_them(tmp_path):
    """Ultralytics' img2label_paths: the LAST /images/ becomes /labels/ (an images folder inside a folder named
    images); an absolute ``path:`` and a list file of absolute image paths; a .heic photo (Ultralytics reads it,
    Pillow here does not) is a problem, not silently left out, and its label no orphan; a wildcard entry is
    refused in one line saying so."""
    nested = tmp_path / "images" / "set"
    root = write_yolo(nested, {"train": {"a.jpg": ((64, 32), "0 .5 .5 .5 .5\n")}, "val": {"b.jpg": ((8, 8), "")}})
    assert label_path(str(nested / "images" / "train" / "a.jpg")) == str(nested / "labels" / "train" / "a.txt")
    (nested / "train.txt").write_text(f"{nested / 'images' / 'train' / 'a.jpg'}\n")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "data.yaml").write_text(f"path: {nested}\ntrain: train.txt\nval: images/val\n"
                                                f"names: [cat, dog]\n")
    quiet(create_yolo_data_lists, str(tmp_path / "cfg"), output_folder=str(tmp_path / "o"))
    assert read_lists(tmp_path / "o")["TRAIN_objects"] == [{"boxes": [[16.0, 8.0, 48.0, 24.0]], "labels": [1],
                                                            "difficulties": [0]}]
    (nested / "images" / "val" / "c.heic").write_bytes(b"\0" * 16)
    (nested / "labels" / "val" / "c.txt").write_text("0 .5 .5 .5 .5\n")
    with pytest.raises(DataListError, match=r"1 problem\(s\) .*first: .*/images/val/c\.heic: \.heic images are not "
                                            r"read here"):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
    (nested / "data.yaml").write_text("train: images/*/a.jpg\nval: images/val\nnames: [cat, dog]\n")
    with pytest.raises(DataListError, match=r"data\.yaml: train: 'images/\*/a\.jpg' not found .*wildcards are not "
                                            r"read"):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))


# ---------------------------------------------------------------------------------------------------------
# Issue 32: bounded on a data set from elsewhere, never echoing a file outside it
# ---------------------------------------------------------------------------------------------------------


def test_yaml_aliases_and_size_are_refused(tmp_path, monkeypatch):
    """Nested aliases ("billion laughs": 9x per level, names' str() expanding them) are refused at the first
    alias, in one line naming data.yaml and the line; a data.yaml over MAX_YAML_BYTES is refused unread."""
    laughs = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 4))
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((8, 8), "")}, "val": {"b.jpg": ((8, 8), "")}},
                      yaml_text=laughs + "train: images/train\nval: images/val\nnames: [*a3, dog]\n")
    with pytest.raises(DataListError, match=r"data\.yaml: not valid YAML at line 2 \(an alias \(\*a0\): aliases "
                                            r"are not read"):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
    monkeypatch.setattr(yolo_format, "MAX_YAML_BYTES", 40)
    (tmp_path / "d" / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    with pytest.raises(DataListError, match=r"data\.yaml: larger than 40 bytes"):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))


def test_label_file_of_garbage_is_bounded(tmp_path, capsys, monkeypatch):
    """A label file of garbage lines: its first MAX_PROBLEMS_PER_FILE problems, then one line counting the rest
    (not one kept problem per line); a label file over MAX_LABEL_FILE_BYTES, or more lines than
    MAX_OBJECTS_PER_IMAGE (a problem naming the image and the count), is not parsed."""
    garbage = "".join(f"garbage {k}\n" for k in range(yolo_format.MAX_PROBLEMS_PER_FILE + 25)) + "0 .5 .5 .5\n"
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), garbage)}, "val": {"b.jpg": ((8, 8), "")}})
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(errors) == yolo_format.MAX_PROBLEMS_PER_FILE + 1
    assert errors[-1].endswith("labels/train/a.txt: ... and 26 more bad line(s) (26 malformed label; a file's first "
                               f"{yolo_format.MAX_PROBLEMS_PER_FILE} are listed)")

    label = tmp_path / "d" / "labels" / "train" / "a.txt"
    label.write_text("0 .5 .5 .5 .5\n1 .5 .5 .2 .2\n1 .5 .5 .1 .1\n\n0 .4 .4 .1 .1\n")
    monkeypatch.setattr(yolo_format, "MAX_OBJECTS_PER_IMAGE", 3)
    image = tmp_path / "d" / "images" / "train" / "a.jpg"
    with pytest.raises(DataListError, match=rf"first: {label}: 4 lines \(objects\) for {image}, more than "
                                            r"MAX_OBJECTS_PER_IMAGE \(3, "):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
    monkeypatch.setattr(yolo_format, "MAX_LABEL_FILE_BYTES", 20)
    with pytest.raises(DataListError, match=rf"first: {label}: larger than 20 bytes"):
        quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))


def test_files_outside_the_data_set_are_never_quoted(tmp_path, capsys):
    """A label file linked to a file outside the data set, and a data.yaml whose train is an absolute path to
    one: each problem names the file and its line, never the content (a shadow file's hash); a train that is a
    device (/dev/zero: reading it never ends) or a label linked to one is one line, read no further."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    root = write_yolo(tmp_path / "d", {"train": {"a.jpg": ((64, 64), None)}, "val": {"b.jpg": ((8, 8), "")}})
    label = tmp_path / "d" / "labels" / "train" / "a.txt"
    label.parent.mkdir(parents=True)
    label.symlink_to(secret)
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    printed = capsys.readouterr()
    assert "SECRET" not in printed.out + printed.err
    assert f"error: {label}: line 1: malformed label (not quoted: the file lies outside the data set's folder " \
           f"{tmp_path / 'd'})" in printed.err

    label.unlink()
    (tmp_path / "d" / "data.yaml").write_text(f"train: {secret}\nval: images/val\nnames: [cat, dog]\n")
    assert cdl.main(["--yolo", root, "--output", str(tmp_path / "o")]) == 1
    printed = capsys.readouterr()
    assert "SECRET" not in printed.out + printed.err
    assert f"error: {secret}: line 1: names no image file (not quoted" in printed.err

    if os.path.exists("/dev/zero"):
        (tmp_path / "d" / "data.yaml").write_text("train: /dev/zero\nval: images/val\nnames: [cat, dog]\n")
        with pytest.raises(DataListError, match=r"data\.yaml: train: /dev/zero is not a folder, an image or a list"):
            quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
        (tmp_path / "d" / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
        label.symlink_to("/dev/zero")
        with pytest.raises(DataListError, match=rf"first: {label}: not a regular file"):
            quiet(create_yolo_data_lists, root, output_folder=str(tmp_path / "o"))
