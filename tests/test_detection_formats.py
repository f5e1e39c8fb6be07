"""detect.py --save-voc / --save-yolo / --save-coco, each read back by the tool its format belongs to:
create_data_lists.py for VOC XML and YOLO, pycocotools for COCO. The detections are forced (a stand-in detector
with known boxes), so that every value read back is known."""

import json
import os

import pytest
from PIL import Image

import create_data_lists
import detect
from utils import make_label_map

LABEL_MAP = make_label_map(["cat", "dog", "traffic light"])
SIZES = {"wide.jpg": (160, 90), "tall.png": (70, 120)}


def forced_detections(width, height):
    """Known detections for an image of this size: decimals as detect.py rounds them (0.1 pixel), one box on the
    image's right and bottom edges, one of zero width (clamped onto the edge: no object, left out of the files)."""
    return [{"label": "dog", "score": 0.9312, "box": [10.3, 20.0, 50.7, 60.1]},
            {"label": "traffic light", "score": 0.5, "box": [width - 30.5, height - 12.2, float(width), float(height)]},
            {"label": "cat", "score": 0.25, "box": [0.0, 0.0, 12.0, 7.5]},
            {"label": "cat", "score": 0.2, "box": [float(width), 5.0, float(width), 9.0]}]


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """Two images and detect.py's model replaced by forced detections: (folder, expected {file name: detections
    that have an area})."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size in SIZES.items():
        Image.new("RGB", size, "olive").save(folder / name)

    def make_detector(*args, **kwargs):
        def detect_fn(images):
            return [forced_detections(image.width, image.height) for image in images]
        return detect_fn, LABEL_MAP, "forced detections"

    monkeypatch.setattr(detect, "make_detector", make_detector)
    expected = {name: forced_detections(*size)[:3] for name, size in SIZES.items()}
    return folder, expected


def read_lists(folder, split):
    """create_data_lists' lists of a split: {image file name: [(class name, box)]}."""
    with open(os.path.join(folder, "label_map.json")) as file:
        names = {label: name for name, label in json.load(file).items()}
    with open(os.path.join(folder, f"{split}_images.json")) as file:
        images = json.load(file)
    with open(os.path.join(folder, f"{split}_objects.json")) as file:
        objects = json.load(file)
    return {os.path.basename(path): [(names[label], box) for label, box in zip(entry["labels"], entry["boxes"])]
            for path, entry in zip(images, objects)}


def test_voc_xml_reads_back_through_create_data_lists_into_the_same_boxes(photos, tmp_path, capsys):
    folder, expected = photos
    voc = tmp_path / "voc"
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-voc", str(voc)]) == 0
    printed = capsys.readouterr().out
    assert f"--save-voc: 2 Pascal VOC XML files -> {voc}" in printed
    assert "Note: 2 detection(s) of zero width or height" in printed
    assert sorted(os.listdir(voc)) == ["tall.xml", "wide.xml"]

    lists = tmp_path / "lists"
    assert create_data_lists.main(["--annotations", str(voc), "--images", str(folder), "--output", str(lists),
                                   "--test-fraction", "0"]) == 0
    read = read_lists(lists, "TRAIN")
    assert sorted(read) == sorted(expected)
    for name, detections in expected.items():
        # VOC's 1-based pixels: written as x1 + 1, read back as xmin - 1; the same box to float rounding.
        assert [label for label, _ in read[name]] == [d["label"] for d in detections]
        for (_, box), detection in zip(read[name], detections):
            assert box == pytest.approx(detection["box"], abs=1e-9)
    # <size> is the image's: create_data_lists checks it against the file, so a wrong one would have failed above.


def test_yolo_set_reads_back_through_create_data_lists_yolo(photos, tmp_path, capsys):
    folder, expected = photos
    yolo = tmp_path / "yolo"
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-yolo", str(yolo),
                        "--save-scores"]) == 0
    assert f"--save-yolo: 2 images (2 linked) and YOLO label files, and data.yaml -> {yolo}" in capsys.readouterr().out
    assert sorted(os.listdir(yolo)) == ["data.yaml", "images", "labels"]
    assert sorted(os.listdir(yolo / "images")) == sorted(SIZES)

    # Ultralytics' documented format, checked by hand: per line an integer class id (0-based: label - 1), then
    # cx cy w h as fractions of the image's size; here the score as a sixth value.
    lines = (yolo / "labels" / "wide.txt").read_text().splitlines()
    assert len(lines) == 3
    values = [float(value) for value in lines[0].split()]
    width, height = SIZES["wide.jpg"]
    assert lines[0].split()[0] == "1"  # dog: label 2, class id 1
    assert values[1:] == pytest.approx([(10.3 + 50.7) / 2 / width, (20.0 + 60.1) / 2 / height, (50.7 - 10.3) / width,
                                        (60.1 - 20.0) / height, 0.9312], abs=5e-7)
    assert lines[1].split()[0] == "2" and lines[2].split()[0] == "0"

    lists = tmp_path / "lists"
    assert create_data_lists.main(["--yolo", str(yolo), "--output", str(lists)]) == 0
    printed = capsys.readouterr().out
    assert "has its train as val: the images are TRAIN alone" in printed
    with open(lists / "label_map.json") as file:
        assert json.load(file) == LABEL_MAP  # the names of data.yaml, in class-id order
    read = read_lists(lists, "TRAIN")
    assert sorted(read) == sorted(expected)
    for name, detections in expected.items():
        side = max(SIZES[name])
        assert [label for label, _ in read[name]] == [d["label"] for d in detections]
        for (_, box), detection in zip(read[name], detections):
            # 6 decimals of the fractions: off by at most 7.5e-7 of the side (cx and w each rounded).
            assert box == pytest.approx(detection["box"], abs=7.6e-7 * side)

    # Without --save-scores: five values a line, as training tools expect.
    assert detect.main([str(folder / "wide.jpg"), "--output", str(tmp_path / "out"), "--save-yolo",
                        str(tmp_path / "plain")]) == 0
    assert {len(line.split()) for line in (tmp_path / "plain" / "labels" / "wide.txt").read_text().splitlines()} == {5}


def test_coco_json_loads_in_pycocotools_as_data_and_as_results(photos, tmp_path, capsys):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    folder, expected = photos
    path = tmp_path / "detections.json"
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-coco", str(path)]) == 0
    assert f"--save-coco: 2 images, 6 detections -> {path} (file names relative to {folder})" in \
        capsys.readouterr().out

    coco = COCO(str(path))
    images = {image["file_name"]: image for image in coco.loadImgs(coco.getImgIds())}
    assert {name: (image["width"], image["height"]) for name, image in images.items()} == SIZES
    assert {category["id"]: category["name"] for category in coco.loadCats(coco.getCatIds())} == {
        1: "cat", 2: "dog", 3: "traffic light"}
    for name, detections in expected.items():
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[images[name]["id"]]))
        assert [(a["category_id"], a["score"], a["iscrowd"]) for a in annotations] == [
            (LABEL_MAP[d["label"]], d["score"], 0) for d in detections]
        for annotation, detection in zip(annotations, detections):
            x1, y1, x2, y2 = detection["box"]
            assert annotation["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-9)
            assert annotation["area"] == pytest.approx((x2 - x1) * (y2 - y1), abs=1e-6)

    # Its annotations are also a results file: scored against the file itself, every detection is right.
    with open(path) as file:
        results = coco.loadRes(json.load(file)["annotations"])
    evaluation = COCOeval(coco, results, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0) and evaluation.stats[1] == pytest.approx(1.0)


def test_a_coco_file_without_detections_says_that_loadres_cannot_read_them(photos, tmp_path, monkeypatch, capsys):
    folder, _ = photos
    monkeypatch.setattr(detect, "make_detector",
                        lambda *args, **kwargs: (lambda images: [[] for _ in images], LABEL_MAP, "none"))
    path = tmp_path / "detections.json"
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-coco", str(path)]) == 0
    assert "pycocotools' loadRes cannot read" in capsys.readouterr().out
    assert json.loads(path.read_text())["annotations"] == []


def test_the_per_image_json_names_its_image_and_size(photos, tmp_path):
    folder, expected = photos
    out = tmp_path / "out"
    assert detect.main([str(folder / "tall.png"), "--output", str(out)]) == 0
    document = json.loads((out / "tall_detections.json").read_text())
    assert (document["image"], document["width"], document["height"]) == (str(folder / "tall.png"), 70, 120)
    assert document["detections"] == forced_detections(70, 120)  # the JSON keeps every detection


def test_writers_refuse_what_they_cannot_write():
    from ssd_support import detection_formats

    with pytest.raises(ValueError, match=r"labels are \[1, 3\], not 1..2"):
        detection_formats.yolo_class_names({"background": 0, "cat": 1, "dog": 3})
    with pytest.raises(KeyError, match="horse"):
        detection_formats.yolo_label_lines([{"label": "horse", "score": 1.0, "box": [0, 0, 1, 1]}], LABEL_MAP, 10, 10)


def test_a_yolo_set_pre_annotated_in_place_keeps_its_images(photos, tmp_path, capsys):
    """detect.py ds/images --save-yolo ds (issue 31): the images are already where the set needs them; they stay
    (the writer used to delete each one and fail to link it: FileNotFoundError, the image gone). Writing into the
    set again replaces its labels and data.yaml only with --overwrite, refused before any work otherwise."""
    folder, expected = photos
    dataset = tmp_path / "ds"
    os.makedirs(dataset / "images")
    content = {}
    for name in SIZES:
        os.replace(folder / name, dataset / "images" / name)
        content[name] = (dataset / "images" / name).read_bytes()
    assert detect.main([str(dataset / "images"), "--output", str(tmp_path / "out"), "--save-yolo",
                        str(dataset)]) == 0
    assert "2 images (2 in place)" in capsys.readouterr().out
    assert {name: (dataset / "images" / name).read_bytes() for name in SIZES} == content
    assert sorted(os.listdir(dataset / "images")) == sorted(SIZES)
    lists = tmp_path / "lists"
    assert create_data_lists.main(["--yolo", str(dataset), "--output", str(lists)]) == 0
    assert {name: [label for label, _ in boxes] for name, boxes in read_lists(lists, "TRAIN").items()} == {
        name: [d["label"] for d in detections] for name, detections in expected.items()}

    labels = (dataset / "labels" / "wide.txt").read_text()
    (dataset / "labels" / "wide.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # the user corrected it
    capsys.readouterr()
    assert detect.main([str(dataset / "images"), "--output", str(tmp_path / "out"), "--save-yolo",
                        str(dataset)]) == 1
    captured = capsys.readouterr()
    assert "objects ->" not in captured.out  # refused before any image was processed
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and str(dataset / "labels") in error[0] and "--overwrite" in error[0]
    assert (dataset / "labels" / "wide.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"
    assert detect.main([str(dataset / "images"), "--output", str(tmp_path / "out"), "--save-yolo", str(dataset),
                        "--overwrite"]) == 0
    assert (dataset / "labels" / "wide.txt").read_text() == labels
    assert {name: (dataset / "images" / name).read_bytes() for name in SIZES} == content


def split_yolo_set(root, names):
    """A YOLO set with its own train/val split and data.yaml: images/train/t1.jpg with a hand-made class 0 box,
    images/val/v1.jpg with a class 1 box. :return: (the set's folder, data.yaml's text)"""
    dataset = root / "ds"
    for split, stem, class_id in (("train", "t1", 0), ("val", "v1", 1)):
        os.makedirs(dataset / "images" / split)
        os.makedirs(dataset / "labels" / split)
        Image.new("RGB", (160, 90), "teal").save(dataset / "images" / split / f"{stem}.jpg")
        (dataset / "labels" / split / f"{stem}.txt").write_text(f"{class_id} 0.5 0.5 0.2 0.2\n")
    text = f"path: .\ntrain: images/train\nval: images/val\nnames: [{', '.join(names)}]\n"
    (dataset / "data.yaml").write_text(text)
    return dataset, text


def test_a_yolo_set_with_other_names_is_refused_even_with_overwrite(photos, tmp_path, capsys):
    """Writing into part of a YOLO set whose data.yaml names other classes used to replace its data.yaml (its split
    lost, and its hand-made labels/train/t1.txt, class 0 = triangle, read back as cat): refused before any work."""
    dataset, text = split_yolo_set(tmp_path, ["triangle", "square", "circle"])
    assert detect.main([str(dataset / "images" / "val"), "--output", str(tmp_path / "out"), "--save-yolo",
                        str(dataset), "--overwrite"]) == 1
    captured = capsys.readouterr()
    assert "objects ->" not in captured.out  # refused before any image was processed
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and str(dataset / "data.yaml") in error[0]
    assert "['triangle', 'square', 'circle']" in error[0] and "['cat', 'dog', 'traffic light']" in error[0]
    assert (dataset / "data.yaml").read_text() == text
    assert (dataset / "labels" / "val" / "v1.txt").read_text() == "1 0.5 0.5 0.2 0.2\n"


def test_a_yolo_set_with_the_models_names_keeps_its_data_yaml(photos, tmp_path, capsys):
    """The set's own data.yaml, with the model's names, is kept as it is (its split too): the labels written and
    those left are read back with the same classes."""
    dataset, text = split_yolo_set(tmp_path, ["cat", "dog", "traffic light"])
    assert detect.main([str(dataset / "images" / "val"), "--output", str(tmp_path / "out"), "--save-yolo",
                        str(dataset), "--overwrite"]) == 0
    assert "the set's own data.yaml kept as it is" in capsys.readouterr().out
    assert (dataset / "data.yaml").read_text() == text
    lists = tmp_path / "lists"
    assert create_data_lists.main(["--yolo", str(dataset), "--output", str(lists)]) == 0
    assert {name: [label for label, _ in boxes] for name, boxes in read_lists(lists, "TRAIN").items()} == {
        "t1.jpg": ["cat"]}  # the hand-made label, its class unchanged
    assert {name: [label for label, _ in boxes] for name, boxes in read_lists(lists, "TEST").items()} == {
        "v1.jpg": [d["label"] for d in forced_detections(160, 90)[:3]]}  # the val split: this run's detections


def test_two_images_of_one_yolo_label_file_are_refused(photos, tmp_path, capsys):
    """In place, a.jpg and a.png would share labels/a.txt (YOLO pairs by the name without extension)."""
    folder, _ = photos
    images = tmp_path / "ds" / "images"
    os.makedirs(images)
    Image.new("RGB", (40, 30)).save(images / "a.jpg")
    Image.new("RGB", (50, 30)).save(images / "a.png")
    assert detect.main([str(images), "--output", str(tmp_path / "out"), "--save-yolo", str(tmp_path / "ds")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "a.txt" in error[0] and "rename one" in error[0]
    assert not os.path.exists(tmp_path / "ds" / "labels" / "a.txt")


def test_save_voc_into_a_folder_of_annotations_is_refused_before_any_work(photos, tmp_path, capsys):
    """A folder of ground-truth XML (labelImg writes them beside the images) is not overwritten by detections."""
    folder, _ = photos
    truth = '<annotation><filename>wide.jpg</filename></annotation>'
    (folder / "wide.xml").write_text(truth)
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-voc", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "objects ->" not in captured.out and not (tmp_path / "out" / "wide_detections.jpg").exists()
    assert captured.err.strip() == (f"detect.py: error: {folder / 'wide.xml'}: exists and was not written by this "
                                    f"run (--save-voc would replace it); give --overwrite to replace it, or write "
                                    f"elsewhere")
    assert (folder / "wide.xml").read_text() == truth
    assert not (folder / "tall.xml").exists()


def test_an_annotated_output_that_is_an_input_is_refused(photos, tmp_path, capsys):
    """detect.py out/ --output out after an earlier run: wide.jpg's out/wide_detections.jpg is itself an input."""
    folder, _ = photos
    Image.new("RGB", (20, 20)).save(folder / "wide_detections.jpg")
    content = (folder / "wide_detections.jpg").read_bytes()
    assert detect.main([str(folder), "--output", str(folder)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{folder / 'wide_detections.jpg'}: is an input of this run" in error[0]
    assert (folder / "wide_detections.jpg").read_bytes() == content


def test_images_of_one_stem_read_back_each_with_its_own_boxes(photos, tmp_path, capsys):
    """IMG_1.jpeg and IMG_1.jpg (issue 31): VOC writes IMG_1.jpeg.xml beside IMG_1.xml, which the README's
    read-back pairs correctly (it used to list IMG_1.jpg twice, or give it IMG_1.jpeg's boxes with --skip-bad);
    YOLO and COCO keep them apart too."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    folder = tmp_path / "same_stem"
    folder.mkdir()
    sizes = {"IMG_1.jpeg": (160, 90), "IMG_1.jpg": (70, 120), "IMG_1.PNG": (100, 100)}
    for name, size in sizes.items():
        Image.new("RGB", size, "olive").save(folder / name, format="PNG" if name.endswith("PNG") else "JPEG")
    expected = {name: forced_detections(*size)[:3] for name, size in sizes.items()}  # boxes follow the size
    voc, yolo, coco = tmp_path / "voc", tmp_path / "yolo", tmp_path / "d.json"
    assert detect.main([str(folder), "--output", str(tmp_path / "out"), "--save-voc", str(voc), "--save-yolo",
                        str(yolo), "--save-coco", str(coco)]) == 0
    assert sorted(os.listdir(voc)) == ["IMG_1.PNG.xml", "IMG_1.jpeg.xml", "IMG_1.xml"]
    for source, options in (("voc", ["--annotations", str(voc), "--images", str(folder), "--test-fraction", "0"]),
                            ("yolo", ["--yolo", str(yolo)])):
        lists = tmp_path / f"lists_{source}"
        assert create_data_lists.main(options + ["--output", str(lists)]) == 0, source
        read = read_lists(lists, "TRAIN")
        if source == "yolo":  # images/<unique name>.<ext>: map back through the links' sizes
            assert sorted(Image.open(yolo / "images" / name).size for name in read) == sorted(sizes.values())
            read = {next(n for n, s in sizes.items() if s == Image.open(yolo / "images" / name).size): boxes
                    for name, boxes in read.items()}
        assert sorted(read) == sorted(expected), source
        for name, detections in expected.items():
            side = max(sizes[name])
            assert [label for label, _ in read[name]] == [d["label"] for d in detections], (source, name)
            for (_, box), detection in zip(read[name], detections):
                assert box == pytest.approx(detection["box"], abs=7.6e-7 * side), (source, name)
    ground_truth = COCO(str(coco))
    for image in ground_truth.loadImgs(ground_truth.getImgIds()):
        annotations = ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[image["id"]]))
        assert [a["category_id"] for a in annotations] == [LABEL_MAP[d["label"]] for d in expected[image["file_name"]]]
        assert (image["width"], image["height"]) == sizes[image["file_name"]]
