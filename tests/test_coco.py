"""COCO-format data (create_data_lists.py --coco-json ...) and the COCO AP (coco_eval.coco_average_precision,
eval.py --metric coco): lists from COCO files, bad input, AP values worked out by hand, agreement with
pycocotools reading real json files, and eval.py end to end."""

import contextlib
import io
import json
import math
import os
import random
import re
import sys

import pytest
import torch
from PIL import Image

import create_data_lists as cdl
import eval as eval_script
import model as model_module
from ssd_support import checkpoints
from datasets import PascalVOCDataset, load_label_map
from ssd_support.coco_eval import build_coco_detections, build_coco_ground_truth, coco_average_precision
from utils import make_label_map
from replay_ssd import ReplaySSD
from data_lists import read_lists

COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def write_coco(folder, name, images, annotations, categories):
    """Write a COCO instances file and the images it names.

    :param folder: a pathlib.Path; the json goes to folder/name, the images to folder/images/
    :param images: list of (id, file_name, width, height)
    :param annotations: list of dicts (id, image_id, category_id, bbox, iscrowd ...), written as given
    :param categories: list of (id, name)
    :return: (json path, image folder), both str
    """
    image_folder = folder / "images"
    image_folder.mkdir(parents=True, exist_ok=True)
    for _, file_name, width, height in images:
        Image.new("RGB", (width, height), (90, 90, 90)).save(image_folder / file_name)
    data = {"images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
            "annotations": annotations, "categories": [{"id": i, "name": n} for i, n in categories]}
    (folder / name).write_text(json.dumps(data))
    return str(folder / name), str(image_folder)


def ann(ann_id, image_id, category_id, bbox, iscrowd=0):
    """One COCO annotation dict."""
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": iscrowd,
            "area": bbox[2] * bbox[3]}


# Category ids with gaps, listed out of id order, as COCO's are (person 1, dog 18, toothbrush 90).
CATEGORIES = [(90, "toothbrush"), (1, "person"), (18, "dog")]


# ---------------------------------------------------------------------------------------------------------
# COCO files -> lists
# ---------------------------------------------------------------------------------------------------------


def test_coco_files_become_the_same_lists_as_the_voc_path(tmp_path, capsys):
    """Category ids -> labels 1..K in id order, xywh -> clipped xyxy, iscrowd -> difficult, object-less images kept."""
    train_json, train_images = write_coco(
        tmp_path / "train", "instances_train.json",
        images=[(7, "a.jpg", 200, 100), (3, "b.jpg", 50, 60), (12, "empty.jpg", 40, 40)],
        annotations=[ann(1, 7, 18, [10.5, 20, 30, 40.25]), ann(2, 7, 90, [150, 50, 80, 80]),  # clipped at 200x100
                     ann(3, 3, 1, [0, 0, 50, 60], iscrowd=1), ann(4, 7, 1, [1, 2, 3, 4])],
        categories=CATEGORIES)
    test_json, test_images = write_coco(
        tmp_path / "val", "instances_val.json", images=[(500, "c.jpg", 64, 48)],
        annotations=[ann(9, 500, 90, [4, 6, 20, 10])], categories=CATEGORIES)
    out = tmp_path / "out"
    assert cdl.main(["--coco-json", train_json, "--coco-images", train_images, "--coco-test-json", test_json,
                     "--coco-test-images", test_images, "--output", str(out)]) == 0
    printed = capsys.readouterr().out

    lists = read_lists(out)
    assert lists["label_map"] == {"background": 0, "person": 1, "dog": 2, "toothbrush": 3}
    assert lists["TRAIN_images"] == [os.path.join(train_images, f) for f in ("a.jpg", "b.jpg", "empty.jpg")]
    assert lists["TRAIN_objects"] == [
        {"boxes": [[10.5, 20, 40.5, 60.25], [150, 50, 200, 100], [1, 2, 4, 6]], "labels": [2, 3, 1],
         "difficulties": [0, 0, 0]},
        {"boxes": [[0, 0, 50, 60]], "labels": [1], "difficulties": [1]},
        {"boxes": [], "labels": [], "difficulties": []}]
    assert lists["TEST_images"] == [os.path.join(test_images, "c.jpg")]
    assert lists["TEST_objects"] == [{"boxes": [[4, 6, 24, 16]], "labels": [3], "difficulties": [0]}]
    assert "Images without objects: TRAIN 1, TEST 0. Boxes clipped to their image: 1." in printed
    # The lists load like any others: fractional boxes of the image's own size.
    _, boxes, labels, difficulties = PascalVOCDataset(str(out), "TRAIN", keep_difficult=True, augment=False)[1]
    assert boxes.tolist() == [[0.0, 0.0, 1.0, 1.0]] and labels.tolist() == [1] and difficulties.tolist() == [1]


# kind -> (how the input is broken, the error expected). Breaks: "file" replaces the whole file (None: no file),
# "annotation" adds one bad annotation, "missing_image" deletes an image file.
BAD_INPUTS = {
    "missing file": ({"file": None}, r"instances\.json: annotation file not found"),
    "not JSON": ({"file": "{'images': ["}, r"instances\.json: not valid JSON"),
    "missing key": ({"file": json.dumps({"images": [], "categories": []})},
                    r"instances\.json: no 'annotations' list"),
    "missing image file": ({"missing_image": "b.jpg"}, r"instances\.json: image 2: .*b\.jpg not found"),
    "unknown image": ({"annotation": ann(5, 99, 1, [1, 1, 5, 5])},
                      r"instances\.json: annotation 5: image_id 99 is not in 'images'"),
    "unknown category": ({"annotation": ann(5, 1, 4, [1, 1, 5, 5])},
                         r"instances\.json: annotation 5: category_id 4 is not in 'categories'"),
    "degenerate box": ({"annotation": ann(5, 1, 1, [10, 10, 0, 5])},
                       r"instances\.json: annotation 5 \(image 1\) has an empty box"),
    "malformed bbox": ({"annotation": {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2]}},
                       r"instances\.json: annotation 5 has no .* 'bbox' of 4 numbers"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_coco_input_is_one_line_naming_the_file(tmp_path, capsys, kind):
    """Each kind of bad input, beside good images and annotations: one error line naming the json, status 1,
    nothing written. With --skip-bad, a bad annotation of image 1 leaves image 1 out whole (issue 26: kept with an
    object less, its object would be taught as background), an annotation of no image is left out alone."""
    breakage, message = BAD_INPUTS[kind]
    annotations = [ann(1, 1, 1, [1, 1, 20, 20]), ann(2, 2, 18, [5, 5, 20, 20])] + [breakage.get("annotation")] * (
        "annotation" in breakage)
    json_path, image_folder = write_coco(tmp_path, "instances.json", [(1, "a.jpg", 100, 80), (2, "b.jpg", 100, 80)],
                                         annotations, CATEGORIES)
    if "missing_image" in breakage:
        os.remove(os.path.join(image_folder, breakage["missing_image"]))
    if "file" in breakage:
        os.remove(json_path)
        if breakage["file"] is not None:
            open(json_path, "w").write(breakage["file"])
    arguments = ["--coco-test-json", json_path, "--coco-test-images", image_folder]
    out = tmp_path / "out"
    assert cdl.main(arguments + ["--output", str(out)]) == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(error_lines) == 1, error_lines
    assert re.search(message, error_lines[0]) and json_path in error_lines[0], error_lines[0]
    assert not out.exists()

    if "file" not in breakage:
        assert cdl.main(arguments + ["--output", str(out), "--skip-bad"]) == 0
        lists = read_lists(out)
        # A missing b.jpg takes its annotation with it; a bad annotation of image 1 takes a.jpg out.
        kept = {"missing image file": ["a.jpg"], "unknown image": ["a.jpg", "b.jpg"]}.get(kind, ["b.jpg"])
        assert [os.path.basename(p) for p in lists["TEST_images"]] == kept
        assert [o["labels"] for o in lists["TEST_objects"]] == [{"a.jpg": [1], "b.jpg": [2]}[name] for name in kept]


def test_coco_options_go_in_pairs_and_alone(tmp_path):
    """A json without its image folder, or COCO mixed with VOC folders or --classes, is refused by the parser."""
    for argv in (["--coco-json", "a.json"], ["--coco-test-images", "val"],
                 ["--coco-json", "a.json", "--coco-images", "train", "--voc07", "VOC"],
                 ["--coco-json", "a.json", "--coco-images", "train", "--classes", "cat"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            cdl.parse_args(argv)


@pytest.fixture(scope="module")
def toy_coco_folder(tmp_path_factory):
    """--toy-coco with 1 TRAIN and 3 TEST images: the COCO files and their lists."""
    folder = str(tmp_path_factory.mktemp("toy_coco"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(["--toy-coco", folder, "--toy-train", "1", "--toy-test", "3", "--seed", "3"]) == 0
    return folder


def _toy_json(folder, split):
    """The toy COCO instances file of a split."""
    return json.load(open(os.path.join(folder, "ToyCOCO", "annotations", f"instances_{split}.json")))


def test_toy_coco_data_set(toy_coco_folder):
    """Non-contiguous category ids and image ids, a crowd object; the lists hold the json's boxes as xyxy and the
    toy VOC set's label map."""
    coco = _toy_json(toy_coco_folder, "test")
    assert sorted(c["id"] for c in coco["categories"]) == [3, 7, 12]
    assert [image["id"] for image in coco["images"]] == [104, 107, 110]
    assert any(a["iscrowd"] for a in coco["annotations"])
    lists = read_lists(toy_coco_folder)
    assert lists["label_map"] == {"background": 0, "circle": 1, "square": 2, "triangle": 3}
    label_of = {3: 1, 7: 2, 12: 3}
    expected = [{"boxes": [], "labels": [], "difficulties": []} for _ in coco["images"]]
    position = {image["id"]: k for k, image in enumerate(coco["images"])}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        entry = expected[position[a["image_id"]]]
        entry["boxes"].append([x, y, x + w, y + h])
        entry["labels"].append(label_of[a["category_id"]])
        entry["difficulties"].append(a["iscrowd"])
    assert lists["TEST_objects"] == expected
    assert [Image.open(p).size for p in lists["TEST_images"]] == [(i["width"], i["height"]) for i in coco["images"]]


# ---------------------------------------------------------------------------------------------------------
# COCO AP, worked out by hand
# ---------------------------------------------------------------------------------------------------------

TWO_CLASSES = make_label_map(["cat", "dog"])


def _ground_truth():
    """Two images of different sizes; cat and dog boxes, 100x100 pixels each (large objects in COCO's terms)."""
    sizes = [(400, 200), (200, 500)]
    pixel_boxes = [[[0, 0, 100, 100], [200, 50, 300, 150]], [[50, 300, 150, 400]]]
    true_boxes = [torch.tensor(b, dtype=torch.float64) / torch.tensor([w, h, w, h])
                  for b, (w, h) in zip(pixel_boxes, sizes)]
    return true_boxes, [torch.tensor([1, 2]), torch.tensor([2])], [torch.zeros(2), torch.zeros(1)], sizes


def test_perfect_and_shifted_detections():
    """Perfect boxes: every AP is 1. Boxes shifted 20 pixels sideways: IoU 80/120 = 2/3, a match at the IoU
    thresholds 0.50, 0.55, 0.60, 0.65 only, so AP50 = 1, AP75 = 0 and AP = 4/10."""
    pytest.importorskip("pycocotools")
    true_boxes, true_labels, true_difficulties, sizes = _ground_truth()
    scores = [torch.tensor([0.9, 0.8]), torch.tensor([0.7])]
    perfect = coco_average_precision(true_boxes, true_labels, scores, true_boxes, true_labels, true_difficulties,
                                     sizes, TWO_CLASSES)
    assert [perfect[k] for k in ("AP", "AP50", "AP75", "APl", "AR100")] == pytest.approx([1.0] * 5)
    assert math.isnan(perfect["APs"]) and math.isnan(perfect["APm"])  # no small or medium object at all
    assert perfect["per_class"] == {name: pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0})
                                    for name in ("cat", "dog")}

    shifted = [b + torch.tensor([20 / w, 0, 20 / w, 0], dtype=torch.float64) for b, (w, _) in zip(true_boxes, sizes)]
    result = coco_average_precision(shifted, true_labels, scores, true_boxes, true_labels, true_difficulties,
                                    sizes, TWO_CLASSES)
    assert result["AP50"] == pytest.approx(1.0) and result["AP75"] == 0.0
    assert result["AP"] == pytest.approx(0.4)
    assert result["per_class"]["dog"] == pytest.approx({"AP": 0.4, "AP50": 1.0, "AP75": 0.0})

    # No detection at all: 0, not an error.
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    none = coco_average_precision(empty, [torch.zeros(0, dtype=torch.long)] * 2, [torch.zeros(0)] * 2,
                                  true_boxes, true_labels, true_difficulties, sizes, TWO_CLASSES)
    assert none["AP"] == 0.0 and none["AP50"] == 0.0


def test_an_object_on_a_size_boundary_counts_in_both_sizes_as_in_pycocotools():
    """Areas of exactly 32^2 and 96^2 pixels: pycocotools' ranges are closed at both ends, so the first object is
    small and medium, the second medium and large. One found, one missed: AP 1 in the found one's other size, 0 in
    the missed one's, and both in medium (one class of two found: 0.5)."""
    pytest.importorskip("pycocotools")
    sizes = [(200, 200)]
    boxes = [torch.tensor([[0, 0, 32, 32], [100, 100, 196, 196]], dtype=torch.float64) / 200]
    labels, difficulties = [torch.tensor([1, 2])], [torch.tensor([0, 0])]
    for found, expected in (([0], (1.0, 0.5, 0.0)), ([1], (0.0, 0.5, 1.0))):
        result = coco_average_precision([boxes[0][found]], [labels[0][found]], [torch.tensor([0.9])], boxes, labels,
                                        difficulties, sizes, TWO_CLASSES)
        assert (result["APs"], result["APm"], result["APl"]) == pytest.approx(expected)


def test_a_missed_crowd_object_is_no_miss_and_finding_it_no_error():
    """A crowd (difficult) dog that nobody finds does not lower the AP; a detection on it is not a false positive.
    The same dog as a normal object is a miss."""
    pytest.importorskip("pycocotools")
    true_boxes, true_labels, _, sizes = _ground_truth()
    crowd = [torch.tensor([0, 1]), torch.tensor([0])]  # image 0's dog is a crowd region
    found = [true_boxes[0][:1], true_boxes[1]]  # the cat of image 0 and the dog of image 1
    found_labels, found_scores = [torch.tensor([1]), torch.tensor([2])], [torch.tensor([0.9]), torch.tensor([0.8])]
    assert coco_average_precision(found, found_labels, found_scores, true_boxes, true_labels, crowd, sizes,
                                  TWO_CLASSES)["AP"] == pytest.approx(1.0)
    # A detection of the crowd region, scoring above everything else: ignored.
    on_crowd = [true_boxes[0], true_boxes[1]]
    assert coco_average_precision(on_crowd, [torch.tensor([1, 2]), torch.tensor([2])],
                                  [torch.tensor([0.9, 0.95]), torch.tensor([0.8])], true_boxes, true_labels, crowd,
                                  sizes, TWO_CLASSES)["AP"] == pytest.approx(1.0)
    not_crowd = [torch.zeros(2), torch.zeros(1)]
    assert coco_average_precision(found, found_labels, found_scores, true_boxes, true_labels, not_crowd, sizes,
                                  TWO_CLASSES)["per_class"]["dog"]["AP"] == pytest.approx(51 / 101)
    # (precision 1 up to recall 0.5, then nothing: 51 of COCO's 101 recall points 0, 0.01, ..., 1)


def test_at_most_100_detections_per_image_the_best_scoring():
    """COCO's rule: an image's 100 best detections are scored; the rest are left out."""
    boxes = torch.rand(150, 4).sort(dim=1).values
    scores = torch.rand(150)
    detections = build_coco_detections([boxes], [torch.ones(150, dtype=torch.long)], [scores], [(100, 50)])
    assert len(detections) == 100
    assert [d["score"] for d in detections] == pytest.approx(scores.sort(descending=True).values[:100].tolist())
    best = int(scores.argmax())
    x1, y1, x2, y2 = boxes[best].tolist()
    assert detections[0]["bbox"] == pytest.approx([x1 * 100, y1 * 50, (x2 - x1) * 100, (y2 - y1) * 50])
    assert len(build_coco_detections([boxes], [torch.ones(150, dtype=torch.long)], [scores], [(100, 50)],
                                     max_per_image=None)) == 150


# ---------------------------------------------------------------------------------------------------------
# Agreement with pycocotools reading json files, the standard way
# ---------------------------------------------------------------------------------------------------------


def _random_problem(seed):
    """Pixel ground truth (some crowd) on images of random sizes, and detections near it plus false ones.

    :return: (sizes, gt: list per image of (box xywh, label, crowd), detections: list per image of (box xywh,
        label, score)), boxes in pixels
    """
    rng = random.Random(seed)
    sizes, gt, detections = [], [], []
    for _ in range(8):
        width, height = rng.randint(100, 640), rng.randint(100, 640)
        objects = []
        for _ in range(rng.randint(0, 6)):
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            objects.append(([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], rng.randint(1, 3),
                            int(rng.random() < 0.15)))
        found = []
        for (x, y, w, h), label, _ in objects:
            for _ in range(rng.randint(0, 2)):  # misses, hits and duplicates of varying quality
                jitter = [rng.gauss(0, 0.1) * s for s in (w, h, w, h)]
                found.append(([x + jitter[0], y + jitter[1], max(w + jitter[2], 1), max(h + jitter[3], 1)],
                              label if rng.random() < 0.9 else rng.randint(1, 3), rng.random()))
        for _ in range(rng.randint(0, 4)):  # false positives anywhere
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            found.append(([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], rng.randint(1, 3),
                          rng.random()))
        sizes.append((width, height))
        gt.append(objects)
        detections.append(found)
    return sizes, gt, detections


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_pycocotools_on_json_files(tmp_path, seed):
    """The in-memory ground truth and results equal what pycocotools makes of real json files: an instances file
    (image ids and annotation ids of its own) and a results file, loaded with COCO(path) and loadRes(path)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sizes, gt, detections = _random_problem(seed)
    label_map = make_label_map(["a", "b", "c"])
    image_ids = [1000 + 17 * i for i in range(len(sizes))]  # COCO ids need not be positions
    instances = {"images": [{"id": i, "width": w, "height": h, "file_name": f"{i}.jpg"}
                            for i, (w, h) in zip(image_ids, sizes)],
                 "annotations": [{"id": 500 + len(objects) * 10 + k + 100 * n, "image_id": image_ids[n],
                                  "category_id": label, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}
                                 for n, objects in enumerate(gt) for k, (box, label, crowd) in enumerate(objects)],
                 "categories": [{"id": label, "name": name} for name, label in label_map.items() if label]}
    results = [{"image_id": image_ids[n], "category_id": label, "bbox": box, "score": score}
               for n, found in enumerate(detections) for box, label, score in found]
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "results.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(tmp_path / "instances.json"))
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(tmp_path / "results.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    expected = [value if value >= 0 else float("nan") for value in evaluator.stats]

    def fractional(boxes, size):
        """Pixel xywh boxes -> fractional x1y1x2y2, float64 (n, 4)."""
        w, h = size
        return torch.tensor([[x / w, y / h, (x + bw) / w, (y + bh) / h] for x, y, bw, bh in boxes],
                            dtype=torch.float64).reshape(-1, 4)

    ours = coco_average_precision(
        [fractional([d[0] for d in found], size) for found, size in zip(detections, sizes)],
        [torch.tensor([d[1] for d in found], dtype=torch.long) for found in detections],
        [torch.tensor([d[2] for d in found], dtype=torch.float64) for found in detections],
        [fractional([o[0] for o in objects], size) for objects, size in zip(gt, sizes)],
        [torch.tensor([o[1] for o in objects], dtype=torch.long) for objects in gt],
        [torch.tensor([o[2] for o in objects]) for objects in gt], sizes, label_map)
    assert 0.05 < ours["AP"] < 0.95  # a problem where right and wrong both happen
    assert [ours[name] for name in COCO_STATS] == pytest.approx(expected, abs=1e-9, nan_ok=True)


# ---------------------------------------------------------------------------------------------------------
# eval.py
# ---------------------------------------------------------------------------------------------------------


def test_ground_truth_from_a_data_folder_equals_its_coco_file(toy_coco_folder):
    """What eval.py builds from the TEST lists (fractional boxes x image sizes read from the files) is the
    instances file the lists came from: sizes, boxes in pixels, crowd flags, classes."""
    dataset = PascalVOCDataset(toy_coco_folder, "TEST", keep_difficult=True)
    items = [dataset[i] for i in range(len(dataset))]
    built = build_coco_ground_truth([b for _, b, _, _ in items], [lab for _, _, lab, _ in items],
                                    [d for _, _, _, d in items], eval_script.read_image_sizes(dataset.images),
                                    load_label_map(toy_coco_folder))
    coco = _toy_json(toy_coco_folder, "test")
    assert [(i["width"], i["height"]) for i in built["images"]] == [(i["width"], i["height"]) for i in coco["images"]]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [(c["id"], c["name"]) for c in built["categories"]] == [(1, "circle"), (2, "square"), (3, "triangle")]
    position = {image["id"]: k + 1 for k, image in enumerate(coco["images"])}
    expected = [(position[a["image_id"]], names[a["category_id"]], a["iscrowd"], a["bbox"], a["area"])
                for a in coco["annotations"]]
    category_name = {c["id"]: c["name"] for c in built["categories"]}
    got = [(a["image_id"], category_name[a["category_id"]], a["iscrowd"], a["bbox"], a["area"])
           for a in built["annotations"]]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for (*_, box, area), (*_, expected_box, expected_area) in zip(got, expected):
        assert box == pytest.approx(expected_box, abs=1e-3) and area == pytest.approx(expected_area, rel=1e-5)


def test_evaluate_adds_coco_keys_only_when_asked():
    """evaluate(metric="voc") returns exactly the VOC keys train.py reads; "all" adds "coco"; sizes are needed."""
    pytest.importorskip("pycocotools")
    true_boxes, true_labels, true_difficulties, sizes = _ground_truth()
    loader = [(torch.zeros(2, 3, 300, 300), true_boxes, true_labels, true_difficulties)]
    oracle = [(b, lab, torch.ones(len(lab))) for b, lab in zip(true_boxes, true_labels)]
    voc = eval_script.evaluate(ReplaySSD(oracle), loader, TWO_CLASSES, "cpu", progress=False)
    assert set(voc) == {"ap_11pt", "map_11pt", "ap_area", "map_area"}
    both = eval_script.evaluate(ReplaySSD(oracle), loader, TWO_CLASSES, "cpu", progress=False, metric="all",
                                image_sizes=sizes)
    assert both["map_11pt"] == pytest.approx(1.0) and both["coco"]["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="image_sizes"):
        eval_script.evaluate(ReplaySSD(oracle), loader, TWO_CLASSES, "cpu", progress=False, metric="coco")


def _checkpoint(folder, tmp_path, save_checkpoint):
    """An untrained SSD300 for the folder's label map, saved in train.py's checkpoint format."""
    label_map = load_label_map(folder)
    torch.manual_seed(0)
    network = model_module.SSD300(n_classes=len(label_map))
    return save_checkpoint(tmp_path / "ssd300_iter_000000.pt", network, label_map)


def test_command_line_metric_all_with_perfect_detections(toy_coco_folder, tmp_path, monkeypatch, capsys):
    """eval.py --metric all on COCO-made lists, detections = the ground truth: COCO AP 1, VOC mAP 1, standard JSON."""
    pytest.importorskip("pycocotools")
    dataset = PascalVOCDataset(toy_coco_folder, "TEST", keep_difficult=True)
    oracle = ReplaySSD([(boxes, labels, torch.ones(len(labels))) for _, boxes, labels, _ in dataset])
    monkeypatch.setattr(checkpoints, "load_model_from_checkpoint",
                        lambda path, device="cpu": (oracle, load_label_map(toy_coco_folder)))
    checkpoint = tmp_path / "oracle.pt"
    checkpoint.write_bytes(b"stand-in")
    output = tmp_path / "results.json"
    assert eval_script.main(["--data-folder", toy_coco_folder, "--checkpoint", str(checkpoint), "--workers", "0",
                             "--device", "cpu", "--metric", "all", "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "AP 11-point" in printed and "AP50" in printed
    saved = json.loads(output.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert saved["metric"] == "all" and saved["map_11pt"] == pytest.approx(1.0)
    assert saved["coco"]["AP"] == pytest.approx(1.0) and saved["coco"]["AP75"] == pytest.approx(1.0)
    assert saved["coco"]["APs"] is None  # no small object in the toy set: undefined, written as null
    assert set(saved["coco"]["per_class"]) <= {"circle", "square", "triangle"} and saved["coco"]["per_class"]


def test_command_line_metric_coco_with_a_real_untrained_model(toy_coco_folder, tmp_path, capsys, save_checkpoint):
    """An untrained SSD300 checkpoint through eval.py --metric coco: runs, prints the COCO table only, and the
    numbers are valid (AP <= AP50, all in [0, 1])."""
    pytest.importorskip("pycocotools")
    output = tmp_path / "results.json"
    assert eval_script.main(["--data-folder", toy_coco_folder, "--checkpoint", _checkpoint(toy_coco_folder, tmp_path, save_checkpoint),
                             "--workers", "0", "--batch-size", "3", "--device", "cpu", "--metric", "coco",
                             "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "AP 11-point" not in printed  # the COCO table, not the VOC one
    assert re.search(r"VOC mAP \(IoU 0\.5\): \d\.\d{4} 11-point, \d\.\d{4} area", printed)  # alongside
    coco = json.loads(output.read_text())["coco"]
    assert all(0.0 <= coco[name] <= 1.0 for name in COCO_STATS if coco[name] is not None)
    assert coco["AP"] <= coco["AP50"] and coco["AR1"] <= coco["AR100"]


def test_missing_pycocotools_is_one_line_with_the_install_command(toy_coco_folder, monkeypatch, capsys):
    """Without pycocotools: the function raises ImportError saying what to install; eval.py fails before any work."""
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    monkeypatch.setitem(sys.modules, "pycocotools.cocoeval", None)
    true_boxes, true_labels, true_difficulties, sizes = _ground_truth()
    with pytest.raises(ImportError, match="pip install pycocotools"):
        coco_average_precision(true_boxes, true_labels, [torch.ones(2), torch.ones(1)], true_boxes, true_labels,
                               true_difficulties, sizes, TWO_CLASSES)
    assert eval_script.main(["--data-folder", toy_coco_folder, "--checkpoint", "no/such.pt", "--metric", "coco"]) == 1
    assert capsys.readouterr().err.strip() == ("eval.py: error: --metric coco needs pycocotools: "
                                               "pip install pycocotools")


def test_an_image_with_more_annotations_than_the_limit_is_a_problem_that_skip_bad_leaves_out(tmp_path, capsys):
    """Issue 32: a broken export with 1001 boxes on one image is one problem naming the json, the image and the
    count (not 1001 objects of ~65 KB per training step); --skip-bad leaves that image out, the others in."""
    from ssd_support.limits import MAX_OBJECTS_PER_IMAGE

    crowded = [ann(k, 1, 1, [1, 1, 20, 20]) for k in range(1, MAX_OBJECTS_PER_IMAGE + 2)]
    json_path, image_folder = write_coco(tmp_path, "instances.json", [(1, "a.jpg", 100, 80), (2, "b.jpg", 100, 80)],
                                         crowded + [ann(5000, 2, 18, [5, 5, 20, 20])], CATEGORIES)
    arguments = ["--coco-json", json_path, "--coco-images", image_folder, "--output", str(tmp_path / "out")]
    assert cdl.main(arguments) == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: /")]
    assert len(error_lines) == 1, error_lines
    assert error_lines[0].startswith(f"error: {json_path}: image 1 ({os.path.join(image_folder, 'a.jpg')}): 1001 "
                                     f"annotations, more than the limit of {MAX_OBJECTS_PER_IMAGE} per image")
    assert cdl.main(arguments + ["--skip-bad"]) == 0
    lists = read_lists(tmp_path / "out")
    assert [os.path.basename(p) for p in lists["TRAIN_images"]] == ["b.jpg"]
    assert [o["labels"] for o in lists["TRAIN_objects"]] == [[2]]
