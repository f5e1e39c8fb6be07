"""eval.py --plots' error analysis (confusion matrix, F1 curves, the worst images) and --save-detections, checked
against counts worked out by hand and against pycocotools run on the files written."""

import contextlib
import csv
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import create_data_lists as cdl
import eval as eval_script
from datasets import PascalVOCDataset, load_label_map
from replay_ssd import ReplaySSD
from ssd_support import error_analysis, operating_points
from utils import make_label_map

LABEL_MAP = make_label_map(["cat", "dog"])  # cat 1, dog 2
SIZES = [(160, 120), (120, 160), (100, 100)]

# Three images, fractional x1y1x2y2 boxes. Image 0: cat A, dog B, a difficult cat C; image 1: dog D and a small
# cat E that nothing finds; image 2: no object.
OBJECTS = [
    {"boxes": [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.6, 0.0, 0.9, 0.3]], "labels": [1, 2, 1],
     "difficulties": [0, 0, 1]},
    {"boxes": [[0.2, 0.2, 0.7, 0.7], [0.0, 0.0, 0.1, 0.1]], "labels": [2, 1], "difficulties": [0, 0]},
    {"boxes": [], "labels": [], "difficulties": []},
]
# (box, label, score) per image.
DETECTIONS = [
    [([0.1, 0.1, 0.4, 0.4], 1, 0.9),     # cat on A: true positive            -> (cat, cat)
     ([0.11, 0.1, 0.41, 0.4], 1, 0.8),   # cat on A again: a duplicate         -> (background, cat)
     ([0.5, 0.5, 0.9, 0.9], 1, 0.7),     # cat on the dog B: wrong class       -> (dog, cat), B not found
     ([0.6, 0.0, 0.9, 0.3], 1, 0.95),    # cat on the difficult cat C: ignored -> nowhere
     ([0.0, 0.6, 0.3, 0.9], 2, 0.6),     # dog on nothing                      -> (background, dog)
     ([0.5, 0.5, 0.9, 0.9], 2, 0.3)],    # dog on B, below the operating score -> nowhere
    [([0.2, 0.2, 0.7, 0.7], 2, 0.85)],   # dog on D: true positive            -> (dog, dog); E -> (cat, missed)
    [([0.3, 0.3, 0.6, 0.6], 1, 0.55),    # cat on an empty image               -> (background, cat)
     ([0.3, 0.3, 0.6, 0.6], 2, 0.4)],    # below the operating score
]
# Worked out by hand from the comments above: rows cat, dog, background; columns cat, dog, missed.
EXPECTED_MATRIX = [[1, 0, 1], [1, 1, 0], [2, 1, None]]
# Per image: false positives (duplicate, wrong class, dog on nothing | - | cat on empty) and misses (B | E | -).
EXPECTED_ERRORS = [(3, 1), (0, 1), (1, 0)]


def _replay():
    """A ReplaySSD giving DETECTIONS."""
    return ReplaySSD([(torch.tensor([d[0] for d in image], dtype=torch.float32).reshape(-1, 4),
                       torch.tensor([d[1] for d in image], dtype=torch.int64),
                       torch.tensor([d[2] for d in image], dtype=torch.float32)) for image in DETECTIONS])


@pytest.fixture()
def hand_folder(tmp_path):
    """A data folder with the three images above (photo-less grey JPEGs of SIZES) as its TEST split."""
    folder = tmp_path / "data"
    folder.mkdir()
    paths, objects = [], []
    for k, ((width, height), entry) in enumerate(zip(SIZES, OBJECTS)):
        path = folder / f"image{k}.jpg"
        Image.new("RGB", (width, height), (120, 130, 140)).save(path)
        paths.append(path.name)
        scale = [width, height, width, height]
        objects.append({**entry, "boxes": [[v * s for v, s in zip(box, scale)] for box in entry["boxes"]]})
    for split, images, entries in (("TEST", paths, objects), ("TRAIN", paths[:1], objects[:1])):
        (folder / f"{split}_images.json").write_text(json.dumps(images))
        (folder / f"{split}_objects.json").write_text(json.dumps(entries))
    (folder / "label_map.json").write_text(json.dumps(LABEL_MAP))
    return folder


def _patch_loader(monkeypatch, load):
    """Make eval.main's checkpoint loader ``load``. eval.main imports it when it runs, from
    ssd_support.checkpoints in issue 23's layout and from model before it, so both names are patched."""
    import model

    monkeypatch.setattr(model, "load_model_from_checkpoint", load, raising=False)
    try:
        from ssd_support import checkpoints
    except ImportError:
        return
    monkeypatch.setattr(checkpoints, "load_model_from_checkpoint", load)


def _run_eval(folder, network, tmp_path, monkeypatch, *options):
    """eval.main on ``folder`` with ``network`` as the checkpoint's model; returns the exit status."""
    checkpoint = tmp_path / "stand-in.pt"
    checkpoint.write_bytes(b"stand-in")
    _patch_loader(monkeypatch, lambda path, device="cpu": (network, load_label_map(str(folder))))
    return eval_script.main(["--data-folder", str(folder), "--checkpoint", str(checkpoint), "--workers", "0",
                             "--batch-size", "2", "--device", "cpu", "--no-progress", *options])


def test_confusion_matrix_of_a_hand_made_detector(hand_folder, tmp_path, monkeypatch):
    """The CSV eval.py --plots writes holds the counts worked out by hand; PNGs open with sane sizes; the drawn
    images are the ones with errors, worst first, at their own size."""
    plots = tmp_path / "plots"
    assert _run_eval(hand_folder, _replay(), tmp_path, monkeypatch, "--plots", str(plots)) == 0
    with open(plots / "confusion_matrix.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["ground truth \\ detected", "cat", "dog", "missed"]
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "background"]
    assert [[int(v) if v else None for v in row[1:]] for row in rows[1:]] == EXPECTED_MATRIX

    for name, minimum in (("confusion_matrix.png", 200), ("f1_curve.png", 300)):
        with Image.open(plots / name) as image:
            assert image.format == "PNG" and minimum <= min(image.size) and max(image.size) <= 2000
    index = json.loads((plots / "predictions" / "index.json").read_text())
    assert index["operating_score"] == 0.5
    # Errors 4, 1, 1: every image has one; the tie keeps image order.
    assert [(entry["false_positives"], entry["misses"]) for entry in index["images"]] == EXPECTED_ERRORS
    assert [os.path.basename(entry["image"]) for entry in index["images"]] == ["image0.jpg", "image1.jpg",
                                                                               "image2.jpg"]
    assert [entry["errors"] for entry in index["images"]] == [4, 1, 1]
    for entry, size in zip(index["images"], SIZES):
        with Image.open(plots / "predictions" / entry["file"]) as image:
            assert image.size == size
    # The PR curves are still there, one per class.
    assert {"pr_cat.png", "pr_dog.png"} <= set(os.listdir(plots))


def test_operating_score_moves_the_counts_and_rows_and_columns_give_the_printed_precision_and_recall(
        hand_folder, tmp_path, monkeypatch, capsys):
    """At --operating-score 0.25 the two low dog detections count too: the one on B finds B (its own class is
    matched before any wrong-class detection), so the cat on B has no unfound object left and is background, as is
    the dog on the empty image. The diagonal over its column / row sums is the precision / recall printed."""
    plots = tmp_path / "plots"
    assert _run_eval(hand_folder, _replay(), tmp_path, monkeypatch, "--plots", str(plots),
                     "--operating-score", "0.25") == 0
    with open(plots / "confusion_matrix.csv", newline="") as file:
        matrix = [[int(v) if v else 0 for v in row[1:]] for row in list(csv.reader(file))[1:]]
    # dog on B (0.3) is now a true positive of B, so the cat on B (0.7) has no unfound object left: background.
    assert matrix == [[1, 0, 1], [0, 2, 0], [3, 2, 0]]
    printed = capsys.readouterr().out
    table = {line.split()[0]: [float(v) for v in line.split()[1:4]] for line in printed.splitlines()
             if line.split() and line.split()[0] in ("cat", "dog") and len(line.split()) == 5}
    matrix = np.array(matrix)
    for k, name in enumerate(("cat", "dog")):
        precision = matrix[k, k] / matrix[:, k].sum()
        recall = matrix[k, k] / matrix[k, :].sum()
        assert table[name][:2] == [pytest.approx(precision, abs=1e-4), pytest.approx(recall, abs=1e-4)]


def test_analyse_errors_directly_and_the_worst_sixteen():
    """analyse_errors without eval.py; worst_images keeps 16 at most, most errors first, images without error
    left out."""
    boxes = [torch.tensor(entry["boxes"], dtype=torch.float32).reshape(-1, 4) for entry in OBJECTS]
    labels = [torch.tensor(entry["labels"], dtype=torch.int64) for entry in OBJECTS]
    difficulties = [torch.tensor(entry["difficulties"], dtype=torch.uint8) for entry in OBJECTS]
    replay = _replay().pending
    analysis = error_analysis.analyse_errors([d[0] for d in replay], [d[1] for d in replay], [d[2] for d in replay],
                                             boxes, labels, difficulties, LABEL_MAP, min_score=0.5)
    assert analysis["classes"] == ["cat", "dog"]
    assert analysis["matrix"].tolist() == [[1, 0, 1], [1, 1, 0], [2, 1, 0]]
    assert list(zip(analysis["false_positives"].tolist(), analysis["misses"].tolist())) == EXPECTED_ERRORS

    # 20 images with 0, 1, 2, ... 6, 0, 1, ... errors (misses only).
    errors = np.array([k % 7 for k in range(20)])
    many = {"false_positives": np.zeros(20, dtype=np.int64), "misses": errors, "min_score": 0.5}
    worst = error_analysis.worst_images(many)
    assert len(worst) == 16 and worst[:3] == [6, 13, 5]
    assert list(errors[worst]) == sorted(errors[worst], reverse=True) and min(errors[worst]) > 0
    assert error_analysis.worst_images({**many, "misses": np.zeros(20, dtype=np.int64)}) == []


def test_score_curves_at_the_operating_score_equal_hand_values():
    """Cat at score >= 0.5: 1 true positive of 4 counted detections (the ignored one not counted), 2 objects:
    P 1/4, R 1/2, F1 1/3; at 0.96 no detection: 0."""
    boxes = [torch.tensor(entry["boxes"], dtype=torch.float32).reshape(-1, 4) for entry in OBJECTS]
    labels = [torch.tensor(entry["labels"], dtype=torch.int64) for entry in OBJECTS]
    difficulties = [torch.tensor(entry["difficulties"], dtype=torch.uint8) for entry in OBJECTS]
    replay = _replay().pending
    collected = {"det_boxes": [d[0] for d in replay], "det_labels": [d[1] for d in replay],
                 "det_scores": [d[2] for d in replay], "true_boxes": boxes, "true_labels": labels,
                 "true_difficulties": difficulties}
    _, curves = eval_script.score_detections(collected, LABEL_MAP)
    values = error_analysis.score_curves(curves, operating_points.sorted_class_scores(collected, LABEL_MAP),
                                         np.array([0.5, 0.96]))
    assert values["cat"]["precision"].tolist() == pytest.approx([0.25, 0.0])
    assert values["cat"]["recall"].tolist() == pytest.approx([0.5, 0.0])
    assert values["cat"]["f1"].tolist() == pytest.approx([1 / 3, 0.0])
    # dog at 0.5: 1 true positive of 2 detections, 2 objects; the mean of the two classes.
    assert values["dog"]["f1"].tolist() == pytest.approx([0.5, 0.0])
    assert values["all classes"]["f1"].tolist() == pytest.approx([(1 / 3 + 0.5) / 2, 0.0])


def test_candidate_cap_is_the_papers_unless_turned_off(hand_folder, tmp_path, monkeypatch):
    """eval.py asks for Caffe's 400 candidates per class by default, for all with --no-candidate-cap, and says so
    in --output's settings."""
    for options, expected in (((), 400), (("--no-candidate-cap",), None)):
        network, output = _replay(), tmp_path / "results.json"
        assert _run_eval(hand_folder, network, tmp_path, monkeypatch, "--output", str(output), *options) == 0
        assert {call["max_candidates_per_class"] for call in network.calls} == {expected}
        assert json.loads(output.read_text())["settings"]["max_candidates_per_class"] == expected


# ---------------------------------------------------------------------------------------------------------
# --save-detections, scored by pycocotools on the files
# ---------------------------------------------------------------------------------------------------------


def _noisy_detections(dataset, seed, extra_in_first=0):
    """Per image: every object found with a jittered box and a random score, a few random boxes of random classes,
    and ``extra_in_first`` more random boxes in the first image (to pass COCO's 100 per image)."""
    generator = torch.Generator().manual_seed(seed)
    detections = []
    for k, (_, boxes, labels, _) in enumerate(dataset):
        n_random = 5 + (extra_in_first if k == 0 else 0)
        corners = torch.rand(n_random, 2, generator=generator) * 0.7
        random_boxes = torch.cat([corners, corners + 0.05 + 0.25 * torch.rand(n_random, 2, generator=generator)], 1)
        jittered = (boxes + 0.02 * torch.randn(boxes.shape, generator=generator)).clamp(0, 1)
        all_boxes = torch.cat([jittered, random_boxes])
        all_labels = torch.cat([labels, torch.randint(1, 4, (n_random,), generator=generator)])
        # The objects' detections mostly above the random ones, which keeps the AP away from 0 and 1.
        scores = torch.cat([0.3 + 0.69 * torch.rand(len(labels), generator=generator),
                            0.01 + 0.6 * torch.rand(n_random, generator=generator)])
        detections.append((all_boxes, all_labels, scores))
    return detections


def _pycocotools_stats(annotation_file, results_file):
    """COCOeval's 12 statistics for two json files on disk, run the standard way (NaN for its -1)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(annotation_file))
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(results_file)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [value if value >= 0 else float("nan") for value in evaluator.stats]


def _printed_stats(output):
    """The 12 COCO statistics of eval.py --output, in COCOeval's order (NaN for null)."""
    coco = json.loads(output.read_text())["coco"]
    return [float("nan") if coco[name] is None else coco[name] for name in (
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")]


def test_saved_detections_on_coco_lists_score_on_the_original_json_as_metric_coco(tmp_path, monkeypatch):
    """Toy COCO set (image ids 104, 107, 110; category ids 3, 7, 12): the saved file has the json's ids, and
    pycocotools on the original instances file gives --metric coco's 12 numbers to 1e-9. The first image has
    130 detections: the file keeps its best 100, as --metric coco scores them."""
    pytest.importorskip("pycocotools")
    folder = tmp_path / "toy_coco"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(["--toy-coco", str(folder), "--toy-train", "1", "--toy-test", "3", "--seed", "3"]) == 0
    dataset = PascalVOCDataset(str(folder), "TEST", keep_difficult=True)
    detections = _noisy_detections(dataset, seed=1, extra_in_first=130)
    output, saved = tmp_path / "results.json", tmp_path / "detections.json"
    assert _run_eval(folder, ReplaySSD(detections), tmp_path, monkeypatch, "--metric", "coco", "--output",
                     str(output), "--save-detections", str(saved)) == 0
    annotation_file = folder / "ToyCOCO" / "annotations" / "instances_test.json"
    instances = json.loads(annotation_file.read_text())
    results = json.loads(saved.read_text())
    assert {r["image_id"] for r in results} == {image["id"] for image in instances["images"]} == {104, 107, 110}
    assert {r["category_id"] for r in results} <= {3, 7, 12}
    first = instances["images"][0]["id"]
    assert sum(r["image_id"] == first for r in results) == 100
    assert sum(r["image_id"] != first for r in results) == sum(len(d[1]) for d in detections[1:])
    np.testing.assert_allclose(_pycocotools_stats(annotation_file, saved), _printed_stats(output), rtol=0,
                               atol=1e-9)
    # The ground truth beside it holds the same images (ids, file names, sizes) as the json: it is the whole split.
    truth = json.loads((tmp_path / "detections_ground_truth.json").read_text())
    assert sorted((i["id"], i["file_name"], i["width"], i["height"]) for i in truth["images"]) == sorted(
        (i["id"], i["file_name"], i["width"], i["height"]) for i in instances["images"])
    np.testing.assert_allclose(_pycocotools_stats(tmp_path / "detections_ground_truth.json", saved),
                               _printed_stats(output), rtol=0, atol=1e-9)
    # Not a test that cannot fail: the AP is neither 0 nor 1 here.
    assert 0.05 < _printed_stats(output)[0] < 0.95


def test_saved_detections_on_voc_lists_come_with_their_ground_truth(tmp_path, monkeypatch, toy_data_folder):
    """VOC lists: detections.json and detections_ground_truth.json (ids 1..N, the labels as category ids, difficult
    objects as crowd) give --metric coco's numbers through pycocotools."""
    pytest.importorskip("pycocotools")
    dataset = PascalVOCDataset(toy_data_folder, "TEST", keep_difficult=True)
    detections = _noisy_detections(dataset, seed=2)
    output, saved = tmp_path / "results.json", tmp_path / "detections.json"
    assert _run_eval(toy_data_folder, ReplaySSD(detections), tmp_path, monkeypatch, "--metric", "coco", "--output",
                     str(output), "--save-detections", str(saved)) == 0
    truth = tmp_path / "detections_ground_truth.json"
    ground_truth = json.loads(truth.read_text())
    assert [image["id"] for image in ground_truth["images"]] == list(range(1, len(dataset) + 1))
    assert any(a["iscrowd"] for a in ground_truth["annotations"])  # the toy set's difficult objects
    # Each image named (relative to info["images_folder"]) and sized, as detectron2, FiftyOne and
    # create_data_lists.py --coco-json need.
    for image, path in zip(ground_truth["images"], dataset.images):
        assert os.path.samefile(os.path.join(ground_truth["info"]["images_folder"], image["file_name"]), path)
        assert (image["width"], image["height"]) == Image.open(path).size
    np.testing.assert_allclose(_pycocotools_stats(truth, saved), _printed_stats(output), rtol=0, atol=1e-9)
    assert 0.05 < _printed_stats(output)[0] < 0.95


def test_saved_ground_truth_is_the_scored_split_of_coco_lists_with_a_val_split(tmp_path, monkeypatch):
    """Lists from a COCO json with --val-fraction: the json holds TRAIN and VAL images, so scoring the saved
    detections on it counts the VAL detections against every TRAIN image too (issue 31: AP 0.0005 for eval.py's
    0.0017). The ground truth written beside the detections holds the VAL images alone, with their json ids,
    file names and sizes: COCOeval's default parameters on it give eval.py's AP, and create_data_lists.py
    --coco-json reads it back into the same lists."""
    pytest.importorskip("pycocotools")
    folder = tmp_path / "toy_coco"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(["--toy-coco", str(folder), "--toy-train", "6", "--toy-test", "1", "--seed", "4",
                         "--val-fraction", "0.5"]) == 0
    dataset = PascalVOCDataset(str(folder), "VAL", keep_difficult=True)
    detections = _noisy_detections(dataset, seed=5)
    output, saved = tmp_path / "results.json", tmp_path / "detections.json"
    assert _run_eval(folder, ReplaySSD(detections), tmp_path, monkeypatch, "--split", "VAL", "--metric", "coco",
                     "--output", str(output), "--save-detections", str(saved)) == 0
    truth_file = tmp_path / "detections_ground_truth.json"
    truth = json.loads(truth_file.read_text())
    instances = json.loads((folder / "ToyCOCO" / "annotations" / "instances_train.json").read_text())
    by_name = {image["file_name"]: image for image in instances["images"]}
    assert len(truth["images"]) == len(dataset) < len(instances["images"])
    for image, path in zip(truth["images"], dataset.images):
        assert image["file_name"] == os.path.basename(path)
        original = by_name[image["file_name"]]
        assert (image["id"], image["width"], image["height"]) == (original["id"], original["width"],
                                                                  original["height"])
    printed = _printed_stats(output)
    assert abs(_pycocotools_stats(truth_file, saved)[0] - printed[0]) < 1e-6
    np.testing.assert_allclose(_pycocotools_stats(truth_file, saved), printed, rtol=0, atol=1e-9)
    # The test can fail: on the whole json the same detections score otherwise (a TRAIN image has objects).
    assert abs(_pycocotools_stats(folder / "ToyCOCO" / "annotations" / "instances_train.json", saved)[0]
               - printed[0]) > 1e-3

    # This project's own COCO reader opens it (file names relative to info["images_folder"]): the same lists.
    read_back = tmp_path / "read_back"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(["--coco-json", str(truth_file), "--coco-images", truth["info"]["images_folder"],
                         "--output", str(read_back)]) == 0
    original = PascalVOCDataset(str(folder), "VAL", keep_difficult=True)
    again = PascalVOCDataset(str(read_back), "TRAIN", keep_difficult=True)
    assert [os.path.abspath(p) for p in again.images] == [os.path.abspath(p) for p in original.images]
    for mine, theirs in zip(again.objects, original.objects):
        assert (mine["labels"], mine["difficulties"]) == (theirs["labels"], theirs["difficulties"])
        np.testing.assert_allclose(np.array(mine["boxes"]).reshape(-1, 4), np.array(theirs["boxes"]).reshape(-1, 4),
                                   rtol=0, atol=1e-4)  # float32 fractions of the pass, back to pixels


def test_coco_ids_that_fit_only_some_images_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """A coco_ids.json naming 2 of the 3 TEST images (lists edited after create_data_lists.py): one line naming it."""
    folder = tmp_path / "toy_coco"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cdl.main(["--toy-coco", str(folder), "--toy-train", "1", "--toy-test", "3", "--seed", "3"]) == 0
    ids_path = folder / "coco_ids.json"
    ids = json.loads(ids_path.read_text())
    ids["images"]["TEST"].pop(sorted(ids["images"]["TEST"])[0])
    ids_path.write_text(json.dumps(ids))
    assert _run_eval(folder, ReplaySSD([]), tmp_path, monkeypatch, "--save-detections",
                     str(tmp_path / "d.json")) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "coco_ids.json: no COCO image id for 1 of the 3 TEST images" in error


def test_precision_and_recall_at_the_operating_score_of_a_hand_made_detector(hand_folder):
    """What train.py --eval-every logs as eval_precision / eval_recall. At score >= 0.5: cat keeps 0.95 (the
    difficult C: neither right nor wrong), 0.9 (A), 0.8 (duplicate), 0.7 (on the dog), 0.55 (empty image): 1 right of
    4 counted, 1 of its 2 objects (A, E) found; dog keeps 0.85 (D) and 0.6 (nothing): 1 of 2, 1 of its 2 (B, D)."""
    from datasets import PascalVOCDataset, collate_fn

    loader = torch.utils.data.DataLoader(PascalVOCDataset(str(hand_folder), "TEST", keep_difficult=True),
                                         batch_size=2, collate_fn=collate_fn)
    point = eval_script.evaluate(_replay(), loader, LABEL_MAP, "cpu", progress=False,
                                 operating_score=0.5)["operating_point"]
    per_class = {name: (p["precision"], p["recall"]) for name, p in point["per_class"].items()}
    assert per_class == {"cat": (0.25, 0.5), "dog": (0.5, 0.5)}
    assert point["precision"] == 0.375 and point["recall"] == 0.5 and point["score"] == 0.5


def test_pr_curve_files_of_any_class_name(tmp_path):
    """eval.py --plots on classes "person/rider", "a:b", ".." (it crashed on the "/"): one safe file each."""
    curves = {name: (np.array([1.0, 0.5]), np.array([0.5, 1.0]), 2) for name in ("person/rider", "a:b", "..", "a_b")}
    written = error_analysis.save_pr_curves(curves, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in written] == ["pr_person_rider.png", "pr_a_b.png", "pr__.png", "pr_a_b_2.png"]
    assert all(os.path.dirname(p) == str(tmp_path / "plots") and os.path.getsize(p) > 0 for p in written)


def test_saved_detections_without_a_single_detection_say_so(tmp_path, monkeypatch, toy_data_folder, capsys):
    """No detections: the results file is [], which pycocotools' loadRes cannot read (IndexError), so eval.py says
    it in one line; the ground truth is written as always, and --metric coco gives AP 0."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    dataset = PascalVOCDataset(toy_data_folder, "TEST", keep_difficult=True)
    nothing = [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0)) for _ in range(len(dataset))]
    output, saved = tmp_path / "results.json", tmp_path / "detections.json"
    assert _run_eval(toy_data_folder, ReplaySSD(nothing), tmp_path, monkeypatch, "--metric", "coco", "--output",
                     str(output), "--save-detections", str(saved)) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "loadRes" in line]
    assert len(notes) == 1 and "empty list" in notes[0] and "AP of no detections is 0" in notes[0]
    assert json.loads(saved.read_text()) == [] and _printed_stats(output)[0] == 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(tmp_path / "detections_ground_truth.json"))
        with pytest.raises(IndexError):  # what the note is about: if pycocotools learns to, drop the note
            ground_truth.loadRes([])
