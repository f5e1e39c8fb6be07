"""create_data_lists.py and ssd_support/voc_format.py: the VOC XML parser's quirks and errors, the printed counts,
the options, the toy data set."""

import json
import os
import re

import pytest
from PIL import Image

import create_data_lists as cdl
from ssd_support import toy_data, voc_format
from utils import VOC_LABELS, make_label_map
from data_lists import read_lists


def voc_object(name, box, difficult="0", extra=""):
    """The XML of one object. ``difficult`` None leaves the tag out; box values are written as given."""
    xmin, ymin, xmax, ymax = box
    tag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    return (f"<object><name>{name}</name><truncated>0</truncated>{tag}"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
            f"{extra}</object>")


def write_voc(folder, images, sets):
    """Write a VOC-format folder.

    :param folder: a pathlib.Path
    :param images: {image_id: (xml text or None for no XML file, (width, height) or None for no image)}
    :param sets: {"trainval": [ids], "test": [ids]}
    :return: the folder as a str
    """
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (xml, size) in images.items():
        if xml is not None:
            (folder / "Annotations" / f"{image_id}.xml").write_text(xml)
        if size is not None:
            Image.new("RGB", size, (90, 90, 90)).save(folder / "JPEGImages" / f"{image_id}.jpg")
    for image_set, ids in sets.items():
        (folder / "ImageSets" / "Main" / f"{image_set}.txt").write_text("".join(i + "\n" for i in ids))
    return str(folder)


def annotation(*objects, size=(200, 100)):
    """The XML of one image of the given size holding the given object XML snippets."""
    return (f"<annotation><filename>x.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>")


# ---------------------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------------------


def test_parser_takes_what_real_annotation_tools_write(tmp_path):
    """Float coordinates, empty / missing <difficult/>, an empty <truncated/>, <part> sub-boxes, odd-case names
    with spaces, boxes outside the image (clipped and counted); 1-based VOC pixels become 0-based edges."""
    part = "<part><name>head</name><bndbox><xmin>30</xmin><ymin>20</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></part>"
    xml = annotation(
        voc_object("person", ("21", "11", "120", "60"), difficult="1", extra=part),
        voc_object(" Dog ", ("107.37", "5.5", "150.0", "90"), difficult=""),
        voc_object("Dining Table", ("1", "1", "10", "10"), difficult=None).replace("<truncated>0</truncated>",
                                                                                    "<truncated/>"),
        voc_object("CAT", ("-5", "50", "230", "120")),
        size=(200, 100))
    folder = write_voc(tmp_path / "VOC", {"000001": (xml, (200, 100))}, {"trainval": ["000001"], "test": []})
    summary = cdl.create_data_lists(voc07_path=folder, output_folder=str(tmp_path / "out"))

    lists = read_lists(tmp_path / "out")
    assert lists["label_map"] == make_label_map(VOC_LABELS)
    assert lists["TRAIN_images"] == [os.path.join(folder, "JPEGImages", "000001.jpg")]
    # Stored relative to the lists' folder, so that the two folders can move together.
    with open(tmp_path / "out" / "TRAIN_images.json") as f:
        assert json.load(f) == [os.path.join("..", "VOC", "JPEGImages", "000001.jpg")]
    objects = lists["TRAIN_objects"][0]
    label_map = lists["label_map"]
    assert objects["labels"] == [label_map[n] for n in ("person", "dog", "diningtable", "cat")]
    assert objects["difficulties"] == [1, 0, 0, 0]
    expected = [[20, 10, 120, 60], [106.37, 4.5, 150, 90], [0, 0, 10, 10], [0, 49, 200, 100]]  # last: clipped
    assert [pytest.approx(box) for box in expected] == objects["boxes"]
    assert summary["clipped"] == 1
    assert lists["TEST_images"] == [] and lists["TEST_objects"] == []


@pytest.mark.parametrize("kind, images, message", [
    ("unknown class", {"000001": (annotation(voc_object("unicorn", (1, 1, 50, 50))), (200, 100))},
     r"000001\.xml: class 'unicorn' is not in the label map"),
    ("degenerate box", {"000001": (annotation(voc_object("dog", (60, 10, 50, 40))), (200, 100))},
     r"000001\.xml: object 1 \(dog\) has an empty box"),
    ("box outside the image", {"000001": (annotation(voc_object("dog", (300, 10, 350, 40))), (200, 100))},
     r"000001\.xml: object 1 \(dog\) has an empty box"),
    ("missing image", {"000001": (annotation(voc_object("dog", (1, 1, 50, 50))), None)},
     r"000001\.xml: image not found"),
    ("malformed XML", {"000001": ("<annotation><object><name>dog</name>", (200, 100))},
     r"000001\.xml: malformed XML"),
    ("non-numeric coordinate", {"000001": (annotation(voc_object("dog", ("abc", 1, 50, 50))), (200, 100))},
     r"000001\.xml: object 1 \(dog\) has a missing or non-numeric coordinate"),
    ("missing annotation", {"000001": (None, (200, 100))}, r"000001\.xml: annotation file not found"),
])
def test_bad_input_gets_one_line_naming_the_file_and_a_nonzero_status(tmp_path, capsys, kind, images, message):
    """Each kind of bad input, next to a good image: exactly one error line naming the file, status 1, no lists."""
    images = dict(images, **{"000002": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100))})
    folder = write_voc(tmp_path / "VOC", images, {"trainval": ["000001", "000002"], "test": []})
    out_folder = tmp_path / "out"
    status = cdl.main(["--voc07", folder, "--output", str(out_folder), "--classes", "voc"])
    assert status == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(error_lines) == 1, error_lines
    assert re.search(message, error_lines[0]), error_lines[0]
    assert folder in error_lines[0]
    assert not out_folder.exists(), "nothing is written when the run fails"


def test_skip_bad_leaves_out_and_counts_the_bad_images(tmp_path, capsys):
    """--skip-bad: an image with a bad box is left out whole (issue 26: kept without the box, its object was
    taught as background), as a malformed or image-less one is; an object of a class outside the label map
    leaves its image in, without it. The summary counts the images left out, by reason, and the objects."""
    images = {
        "000001": (annotation(voc_object("dog", (1, 1, 50, 50)), voc_object("cat", (60, 10, 50, 40))), (200, 100)),
        "000002": ("<annotation>", (200, 100)),
        "000003": (annotation(voc_object("cat", (1, 1, 50, 50))), None),
        "000004": (annotation(voc_object("cat", (11, 21, 60, 70), difficult="1"), size=(100, 100)), (100, 100)),
        "000005": (annotation(voc_object("dog", (1, 1, 50, 50)), voc_object("unicorn", (1, 1, 50, 50))), (200, 100)),
    }
    folder = write_voc(tmp_path / "VOC", images,
                       {"trainval": ["000001", "000002", "000003", "000005"], "test": ["000004"]})
    status = cdl.main(["--voc07", folder, "--output", str(tmp_path / "out"), "--skip-bad", "--classes", "voc"])
    captured = capsys.readouterr()
    assert status == 0
    assert len([line for line in captured.err.splitlines() if line.startswith("skipped: ")]) == 4
    assert ("Left out (--skip-bad): 3 images (1 degenerate box, 1 malformed XML, 1 missing image); "
            "1 object (1 unknown class).") in captured.out

    lists = read_lists(tmp_path / "out")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["000005.jpg"]
    assert lists["TRAIN_objects"] == [{"boxes": [[0, 0, 50, 50]], "labels": [VOC_LABELS.index("dog") + 1],
                                       "difficulties": [0]}]
    assert lists["TEST_objects"] == [{"boxes": [[10, 20, 60, 70]], "labels": [VOC_LABELS.index("cat") + 1],
                                      "difficulties": [1]}]


def test_printed_counts_per_class_and_split(tmp_path, capsys):
    """The table says, per class, how many images and objects (difficult ones) went into each split."""
    images = {
        "000001": (annotation(voc_object("dog", (1, 1, 50, 50)), voc_object("dog", (60, 1, 90, 50), "1"),
                              voc_object("cat", (100, 1, 150, 50))), (200, 100)),
        "000002": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100)),
        "000003": (annotation(voc_object("cat", (1, 1, 50, 50), "1")), (200, 100)),
        "000004": (annotation(), (200, 100)),  # an image without objects
    }
    folder = write_voc(tmp_path / "VOC", images, {"trainval": ["000001", "000002", "000004"], "test": ["000003"]})
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out

    def row(name):
        """The table row of a class, as [[TRAIN images, objects, (difficult)], [TEST ...]]."""
        line = next(line for line in out.splitlines() if line.split("|")[0].strip() == name)
        return [cell.split() for cell in line.split("|")[1:]]

    assert row("dog") == [["2", "3", "(1)"], ["0", "0", "(0)"]]
    assert row("cat") == [["1", "1", "(0)"], ["1", "1", "(1)"]]
    assert row("bird") == [["0", "0", "(0)"], ["0", "0", "(0)"]]
    assert row("total") == [["3", "4", "(1)"], ["1", "1", "(1)"]]
    assert "Images without objects: TRAIN 1, TEST 0." in out
    assert "20 classes + background (the 20 Pascal VOC classes)" in out


def test_voc07_and_voc12_make_train_07_12_and_test_07(tmp_path):
    """The paper's split: TRAIN = 07 trainval + 12 trainval, TEST = 07 test."""
    obj = annotation(voc_object("dog", (1, 1, 50, 50)))
    voc07 = write_voc(tmp_path / "VOC2007", {"a": (obj, (200, 100)), "b": (obj, (200, 100))},
                      {"trainval": ["a"], "test": ["b"]})
    voc12 = write_voc(tmp_path / "VOC2012", {"c": (obj, (200, 100)), "d": (obj, (200, 100))},
                      {"trainval": ["c", "d"]})  # VOC2012 has no public test list; it must not be needed
    assert cdl.main(["--voc07", voc07, "--voc12", voc12, "--output", str(tmp_path / "out")]) == 0
    lists = read_lists(tmp_path / "out")
    assert [os.path.relpath(p, str(tmp_path)) for p in lists["TRAIN_images"]] == [
        os.path.join("VOC2007", "JPEGImages", "a.jpg"), os.path.join("VOC2012", "JPEGImages", "c.jpg"),
        os.path.join("VOC2012", "JPEGImages", "d.jpg")]
    assert [os.path.basename(p) for p in lists["TEST_images"]] == ["b.jpg"]


def test_missing_image_set_list_is_an_error_naming_it(tmp_path, capsys):
    """A folder without ImageSets/Main/test.txt passed as --voc07 fails with the missing path in the message."""
    folder = write_voc(tmp_path / "VOC", {}, {"trainval": []})
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert os.path.join("ImageSets", "Main", "test.txt") in err and "not found" in err


# ---------------------------------------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------------------------------------


def test_classes_option_sets_the_label_map_and_rejects_other_names(tmp_path, capsys):
    """--classes gives the label order; an annotated class not listed is an error."""
    images = {"000001": (annotation(voc_object("Apple", (1, 1, 50, 50)), voc_object("pear", (60, 1, 90, 50))),
                         (200, 100))}
    folder = write_voc(tmp_path / "VOC", images, {"trainval": ["000001"], "test": []})
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "a"), "--classes", "pear,apple"]) == 0
    lists = read_lists(tmp_path / "a")
    assert lists["label_map"] == {"background": 0, "pear": 1, "apple": 2}
    assert lists["TRAIN_objects"][0]["labels"] == [2, 1]

    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "b"), "--classes", "apple"]) == 1
    assert "class 'pear' is not in the label map" in capsys.readouterr().err


def test_custom_data_takes_its_classes_from_the_annotations(tmp_path, capsys):
    """Names that are not all VOC classes: the label map is the sorted set of names found (canonical)."""
    images = {"1": (annotation(voc_object("Zebra", (1, 1, 50, 50)), voc_object("dog", (60, 1, 90, 50))),
                    (200, 100)),
              "2": (annotation(voc_object(" ant  lion", (1, 1, 50, 50))), (200, 100))}
    folder = write_voc(tmp_path / "Mine", images, {"trainval": ["1"], "test": ["2"]})
    summary = cdl.create_data_lists(voc07_path=folder, output_folder=str(tmp_path / "out"))
    assert summary["label_map"] == {"background": 0, "ant lion": 1, "dog": 2, "zebra": 3}
    assert "classes read from the annotations" in capsys.readouterr().out
    lists = read_lists(tmp_path / "out")
    assert lists["label_map"] == summary["label_map"]
    assert lists["TRAIN_objects"][0]["labels"] == [3, 2] and lists["TEST_objects"][0]["labels"] == [1]


# ---------------------------------------------------------------------------------------------------------
# The toy data set
# ---------------------------------------------------------------------------------------------------------


def test_toy_dataset_is_deterministic_by_seed(tmp_path):
    """The same seed writes byte-identical files; another seed different ones."""
    def files(root):
        """{relative path: bytes} of every file under root."""
        tree = {}
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                tree[os.path.relpath(path, root)] = open(path, "rb").read()
        return tree

    first = files(toy_data.make_toy_dataset(str(tmp_path / "a"), n_train=3, n_test=2, seed=5))
    again = files(toy_data.make_toy_dataset(str(tmp_path / "b"), n_train=3, n_test=2, seed=5))
    other = files(toy_data.make_toy_dataset(str(tmp_path / "c"), n_train=3, n_test=2, seed=6))
    assert len(first) == 5 * 2 + 2 and first == again
    assert first.keys() == other.keys() and first != other


def test_toy_dataset_goes_through_the_parser_with_its_quirks(tmp_path, capsys):
    """--toy writes images of varied non-square sizes, 1-3 objects each (some difficult), XML with quirks the
    parser must take, and lists whose boxes match the XML."""
    root = str(tmp_path / "toy")
    assert cdl.main(["--toy", root, "--toy-train", "24", "--toy-test", "6", "--seed", "0"]) == 0
    assert "3 classes + background" in capsys.readouterr().out
    lists = read_lists(root)
    assert lists["label_map"] == {"background": 0, "circle": 1, "square": 2, "triangle": 3}
    assert len(lists["TRAIN_images"]) == 24 and len(lists["TEST_images"]) == 6

    xml_texts = "".join(open(p).read() for p in sorted(
        os.path.join(root, "ToyVOC", "Annotations", f) for f in os.listdir(os.path.join(root, "ToyVOC", "Annotations"))))
    n_xml_objects = xml_texts.count("<object>")
    assert re.search(r"<xmax>\d+\.\d+</xmax>", xml_texts)  # a float coordinate
    assert "<part>" in xml_texts and "<truncated/>" in xml_texts
    assert n_xml_objects > xml_texts.count("<difficult>")  # some objects without the tag
    assert re.search(r"<name> [A-Z]\w+ </name>", xml_texts)  # odd case and spaces

    all_objects = lists["TRAIN_objects"] + lists["TEST_objects"]
    assert sum(len(o["labels"]) for o in all_objects) == n_xml_objects  # parts are not objects
    assert all(1 <= len(o["labels"]) <= 3 for o in all_objects)
    n_difficult = sum(sum(o["difficulties"]) for o in all_objects)
    assert 0 < n_difficult < 0.3 * n_xml_objects
    sizes = [Image.open(p).size for p in lists["TRAIN_images"] + lists["TEST_images"]]
    assert all(200 <= w <= 437 and 200 <= h <= 437 and w != h for w, h in sizes)
    assert len(set(sizes)) > 20
    for (width, height), objects in zip(sizes, all_objects):
        for x1, y1, x2, y2 in objects["boxes"]:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_toy_objects_are_drawn_where_their_boxes_say(toy_data_folder):
    """The pixel at each box centre has the class colour; the boxes are tight (background just outside)."""
    lists = read_lists(toy_data_folder)
    names = {label: name for name, label in lists["label_map"].items()}
    for path, objects in zip(lists["TRAIN_images"], lists["TRAIN_objects"]):
        image = Image.open(path).convert("RGB")
        for (x1, y1, x2, y2), label in zip(objects["boxes"], objects["labels"]):
            colour = toy_data.TOY_CLASSES[names[label]]
            # The circle's, square's and triangle's centre-bottom pixel is always inside the shape.
            pixel = image.getpixel((int((x1 + x2) / 2), int(y2) - 3))
            assert sum(abs(a - b) for a, b in zip(pixel, colour)) < 80, (path, names[label], pixel)


# ---------------------------------------------------------------------------------------------------------
# Data sets from elsewhere (issue 32): bounded in time and memory, refused in one line
# ---------------------------------------------------------------------------------------------------------


def test_an_image_with_more_objects_than_the_limit_is_a_problem_that_skip_bad_leaves_out(tmp_path, capsys):
    """A broken export with 1001 boxes on one image (each costs ~65 KB per training step) is one problem naming the
    XML, the image and the count; --skip-bad leaves the image out and keeps the others."""
    from ssd_support.limits import MAX_OBJECTS_PER_IMAGE

    crowded = annotation(*[voc_object("dog", (1, 1, 50, 50))] * (MAX_OBJECTS_PER_IMAGE + 1))
    folder = write_voc(tmp_path / "VOC", {"000001": (crowded, (200, 100)),
                                          "000002": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100))},
                       {"trainval": ["000001", "000002"], "test": []})
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out"), "--classes", "voc"]) == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(error_lines) == 1 and "000001.xml: 1001 <object> elements, " in error_lines[0]
    assert f"more than the limit of {MAX_OBJECTS_PER_IMAGE} per image" in error_lines[0]

    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out"), "--classes", "voc", "--skip-bad"]) == 0
    assert "1 image (1 too many objects)" in capsys.readouterr().out
    assert [os.path.basename(p) for p in read_lists(tmp_path / "out")["TRAIN_images"]] == ["000002.jpg"]


@pytest.mark.parametrize("doctype, what", [
    ('<!DOCTYPE annotation [<!ENTITY a "dog">]>', "a DTD"),  # the standard parser expanded &a; into "dog"
    ('<!DOCTYPE annotation SYSTEM "http://example.com/voc.dtd">', "a DTD"),
])
def test_xml_declaring_a_dtd_or_entities_is_refused_by_the_hardened_parser(tmp_path, capsys, doctype, what):
    """VOC XML comes from elsewhere: defusedxml refuses DTDs and so every entity (billion laughs, external files),
    one line naming the file."""
    xml = annotation(voc_object("&a;" if "ENTITY" in doctype else "dog", (1, 1, 50, 50)))
    folder = write_voc(tmp_path / "VOC", {"000001": ('<?xml version="1.0"?>' + doctype + xml, (200, 100))},
                       {"trainval": ["000001"], "test": []})
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out")]) == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(error_lines) == 1
    assert error_lines[0] == (f"error: {folder}/Annotations/000001.xml: declares {what} (<!DOCTYPE>), which "
                              f"annotation files do not need and the hardened parser (defusedxml) refuses")


def test_an_image_set_list_outside_the_data_set_is_refused_without_echoing_it(tmp_path, capsys):
    """ImageSets/Main/trainval.txt linked to a file outside the data set: its lines used to be printed as missing
    IDs. Refused in one line naming the path; no line of the outside file appears."""
    secret = tmp_path / "private.txt"
    secret.write_text("password=hunter2\napi-key-0123\n")
    folder = write_voc(tmp_path / "VOC", {"000001": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100))},
                       {"test": ["000001"]})
    os.symlink(secret, os.path.join(folder, "ImageSets", "Main", "trainval.txt"))
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "hunter2" not in err and "api-key" not in err
    assert err.splitlines() == [f"error: {folder}/ImageSets/Main/trainval.txt: refused, it resolves to {secret}, "
                                f"outside the data set folder {folder} (a symbolic link?); an image set list must be "
                                f"a file of the data set"]


def test_an_image_set_list_is_read_bounded_and_decoded_as_tools_write_it(tmp_path, capsys, monkeypatch):
    """ImageSets lists go through the one bounded text reader (ssd_support.files.read_bounded_text): a UTF-16 list
    with a byte-order mark and CRLF line ends is read; one over MAX_LIST_FILE_BYTES, or not text, is refused in one
    line naming it (it used to be read whole, whatever its size)."""
    folder = write_voc(tmp_path / "VOC", {"000001": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100)),
                                          "000002": (annotation(voc_object("cat", (1, 1, 50, 50))), (200, 100))},
                       {"test": ["000002"]})
    trainval = os.path.join(folder, "ImageSets", "Main", "trainval.txt")
    with open(trainval, "wb") as file:
        file.write("000001\r\n\r\n".encode("utf-16"))
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "TRAIN_images.json") as file:
        assert [os.path.basename(path) for path in json.load(file)] == ["000001.jpg"]
    capsys.readouterr()
    for content, message in ((b"000001\n" * 10, "larger than 40 bytes"), (b"\xc3\x28 bad\n", "not UTF-8 text"),
                             ("000001\n".encode("utf-16-le"), "not text (a NUL character"),  # UTF-16, no mark
                             ("000001\n".encode("utf-16") + b"x", "not UTF-16 text")):
        monkeypatch.setattr(voc_format, "MAX_LIST_FILE_BYTES", 40)
        with open(trainval, "wb") as file:
            file.write(content)
        assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out2")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {trainval}: {message}") and len(err.splitlines()) == 1, err
    os.remove(trainval)
    os.mkdir(trainval)  # a folder of that name: not "not found", but what it is
    assert cdl.main(["--voc07", folder, "--output", str(tmp_path / "out3")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {trainval}: not a regular file"


def test_a_fifo_named_like_an_image_is_not_opened(tmp_path, capsys, time_limit):
    """A FIFO 000001.jpg in JPEGImages made create_data_lists.py wait forever; only regular files are images."""
    folder = write_voc(tmp_path / "VOC", {"000001": (annotation(voc_object("dog", (1, 1, 50, 50))), None),
                                          "000002": (annotation(voc_object("dog", (1, 1, 50, 50))), (200, 100))},
                       {"trainval": ["000001", "000002"], "test": []})
    os.mkfifo(os.path.join(folder, "JPEGImages", "000001.jpg"))
    with time_limit(30):
        status = cdl.main(["--voc07", folder, "--output", str(tmp_path / "out"), "--skip-bad"])
    assert status == 0
    fifo = os.path.join(folder, "JPEGImages", "000001.jpg")
    assert f"skipped: {folder}/Annotations/000001.xml: {fifo}: not a regular file (a FIFO, socket or device); not " \
           f"read" in capsys.readouterr().err.splitlines()
    assert [os.path.basename(p) for p in read_lists(tmp_path / "out")["TRAIN_images"]] == ["000002.jpg"]
