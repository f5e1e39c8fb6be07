"""statistics.json and statistics.png, which create_data_lists.py writes beside the lists (ssd_support/data_statistics).

The data sets are hand-made VOC trees of 300x300 images whose objects are chosen against the priors: 4x4-pixel
specks no prior fits, boxes that are SSD300 priors exactly, and boxes that are SSD512 conv4_3 priors (scale 0.07:
at most (0.07 / 0.1)^2 = 0.49 IoU with SSD300's smallest priors, 1 with SSD512's).
"""

import json
from collections import Counter

import pytest
import torch
from PIL import Image

import create_data_lists as cdl
from ssd_support.data_lists import split_statistics
import model
from ssd_support import data_statistics
from data_lists import read_lists

SIDE = 300  # every image of the hand-made trees is SIDE x SIDE


def voc_xml(objects, side=SIDE):
    """The VOC XML of a side x side image with objects [(name, (x1, y1, x2, y2) 0-based pixels, difficult)]."""
    parts = [f"<annotation><size><width>{side}</width><height>{side}</height>"
             "<depth>3</depth></size>"]
    for name, (x1, y1, x2, y2), difficult in objects:
        # VOC's 1-based first pixel: create_data_lists reads xmin - 1 as the box's left edge.
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1 + 1!r}</xmin>"
                     f"<ymin>{y1 + 1!r}</ymin><xmax>{x2!r}</xmax><ymax>{y2!r}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def write_tree(folder, images, sets):
    """A VOC-format folder: images {id: objects} (gray side x side JPEGs), sets {"trainval": ids, "test": ids}."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for image_id, objects in images.items():
        (folder / "Annotations" / f"{image_id}.xml").write_text(voc_xml(objects))
        Image.new("RGB", (SIDE, SIDE), (90, 90, 90)).save(folder / "JPEGImages" / f"{image_id}.jpg")
    for image_set, ids in sets.items():
        (folder / "ImageSets" / "Main" / f"{image_set}.txt").write_text("".join(i + "\n" for i in ids))
    return str(folder)


def prior_pixels(config, index):
    """Prior ``index`` of ``config`` as a 0-based pixel box on a SIDE x SIDE image; it must lie inside it."""
    cx, cy, w, h = model.create_prior_boxes(config)[index].double().tolist()
    box = tuple(SIDE * value for value in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    assert all(0 <= value <= SIDE for value in box), box
    return box


def conv4_3_square(config, row, column):
    """Index of the scale-s_1 square prior at (row, column) of the first map (4 priors per location)."""
    return (row * config.feature_maps[0].size + column) * 4


@pytest.fixture(scope="module")
def prior_tree(tmp_path_factory):
    """The hand-made tree: classes speck (4x4 px, 3 objects, one difficult), fit (SSD300 priors of four maps, 4
    objects, one difficult), small (SSD512 conv4_3 priors, 2 objects), mixed (1 speck + 1 SSD300 prior); 4 trainval
    images (one without objects) and 2 test images."""
    ssd300, ssd512 = model.SSD300_VGG16, model.SSD512_VGG16
    # One prior of each kind: conv4_3 square, conv7 ratio-2 (index 2 at a location), conv8_2 extra square
    # (index 1), conv10_2 ratio-1/2 (index 3) at the centre location.
    fit = [prior_pixels(ssd300, conv4_3_square(ssd300, 20, 17)),
           prior_pixels(ssd300, 5776 + (9 * 19 + 9) * 6 + 2),
           prior_pixels(ssd300, 5776 + 2166 + (4 * 10 + 5) * 6 + 1),
           prior_pixels(ssd300, 5776 + 2166 + 600 + 150 + (1 * 3 + 1) * 4 + 3)]
    small = [prior_pixels(ssd512, conv4_3_square(ssd512, 10, 40)), prior_pixels(ssd512, conv4_3_square(ssd512, 50, 7))]
    images = {
        "a": [("speck", (100, 100, 104, 104), 0), ("fit", fit[0], 0), ("small", small[0], 0)],
        "b": [("speck", (10, 250, 14, 254), 1), ("fit", fit[1], 0), ("mixed", (200, 30, 204, 34), 0)],
        "c": [],
        "d": [("fit", fit[2], 1), ("mixed", fit[3], 0)],
        "e": [("speck", (150, 150, 154, 154), 0), ("small", small[1], 0)],
        "f": [("fit", fit[3], 0)],
    }
    return write_tree(tmp_path_factory.mktemp("prior_tree") / "VOC", images,
                      {"trainval": ["a", "b", "c", "d"], "test": ["e", "f"]})


def run_lists(voc_folder, output, capsys, *options):
    """create_data_lists.py --voc07 voc_folder --output output [options]; returns (statistics.json, stdout)."""
    assert cdl.main(["--voc07", voc_folder, "--output", str(output), *options]) == 0
    printed = capsys.readouterr().out
    with open(output / "statistics.json") as file:
        # Plain JSON: a NaN or Infinity would reach parse_constant.
        statistics = json.load(file, parse_constant=lambda name: pytest.fail(f"{name} in statistics.json"))
    return statistics, printed


def test_coverage_is_0_for_specks_1_for_priors_and_the_poor_classes_are_named(prior_tree, tmp_path, capsys):
    statistics, printed = run_lists(prior_tree, tmp_path / "lists", capsys)
    per_class = statistics["all_splits"]["per_class"]
    assert {name: (entry["objects"], entry["covered"]) for name, entry in per_class.items()} == {
        "speck": (3, 0), "fit": (4, 4), "small": (2, 0), "mixed": (2, 1)}
    assert per_class["fit"]["coverage"] == 1.0 and per_class["fit"]["median_best_iou"] > 0.9999
    # Two specks of 16 px^2 against the smallest prior's 30x30 = 900 px^2 at best.
    assert 0 < per_class["speck"]["median_best_iou"] <= 16 / 900
    assert per_class["speck"]["poorly_covered"]["median_scale"] == pytest.approx(4 / SIDE)
    assert statistics["all_splits"]["covered"] == 5 and statistics["all_splits"]["objects"] == 11
    assert statistics["splits"]["TRAIN"]["per_class"]["speck"]["coverage"] == 0.0
    assert statistics["splits"]["TEST"]["per_class"]["fit"]["coverage"] == 1.0
    assert statistics["splits"]["TEST"]["per_class"]["mixed"]["coverage"] is None  # no TEST object: null

    named = {entry["class"]: entry for entry in statistics["poorly_covered_classes"]}
    assert sorted(named) == ["mixed", "small", "speck"]
    assert named["mixed"]["coverage"] == 0.5 and named["mixed"]["poorly_covered"] == 1
    lines = [line for line in printed.splitlines() if line.startswith("  under 90%:")]
    assert sorted(line.split(":")[1].strip() for line in lines) == ["mixed", "small", "speck"]
    speck = next(line for line in lines if "speck" in line)
    assert "0.0% of 3 objects covered; 3 not" in speck and "near 0.0133" in speck and "smallest is 0.1 (30 px)" in speck
    assert "50.0% of 2 objects covered; 1 not" in next(line for line in lines if "mixed" in line)
    assert "Prior coverage (VGG16 SSD300, 8732 priors" in printed and "45.5% of 11 objects" in printed


def test_image_size_512_measures_against_ssd512s_priors(prior_tree, tmp_path, capsys):
    statistics, printed = run_lists(prior_tree, tmp_path / "lists", capsys, "--image-size", "512")
    assert statistics["network"]["name"] == "SSD512" and statistics["network"]["priors"] == 24564
    per_class = statistics["all_splits"]["per_class"]
    assert per_class["small"]["covered"] == 2 and per_class["speck"]["covered"] == 0
    assert "small" not in {entry["class"] for entry in statistics["poorly_covered_classes"]}
    assert "Prior coverage (VGG16 SSD512, 24564 priors" in printed
    assert "smallest is 0.07 (36 px)" in printed  # 0.07 * 512 = 35.8 px


def test_json_counts_equal_the_lists_and_the_priors_are_the_papers(prior_tree, tmp_path, capsys):
    output = tmp_path / "lists"
    statistics, _ = run_lists(prior_tree, output, capsys, "--val-fraction", "0.5")
    assert list(statistics["splits"]) == ["TRAIN", "VAL", "TEST"]
    label_map = json.loads((output / "label_map.json").read_text())
    names = {label: name for name, label in label_map.items()}
    for split in ("TRAIN", "VAL", "TEST"):
        objects = json.loads((output / f"{split}_objects.json").read_text())
        counts = statistics["splits"][split]
        assert counts["images"] == len(objects)
        assert counts["empty_images"] == sum(not image["labels"] for image in objects)
        n_objects = Counter(names[label] for image in objects for label in image["labels"])
        n_difficult = Counter(names[label] for image in objects
                              for label, difficult in zip(image["labels"], image["difficulties"]) if difficult)
        n_images = Counter(names[label] for image in objects for label in set(image["labels"]))
        for name in ("speck", "fit", "small", "mixed"):
            entry = counts["per_class"][name]
            assert (entry["objects"], entry["difficult"], entry["images"]) == (
                n_objects[name], n_difficult[name], n_images[name]), (split, name)
        assert counts["objects"] == sum(n_objects.values())
    assert sum(statistics["splits"][split]["images"] for split in ("TRAIN", "VAL")) == 4
    # README section 1.2's table: the maps' extra square scales and aspect ratios.
    maps = statistics["network"]["feature_maps"]
    assert [round(m["extra_scale"], 3) for m in maps] == [0.141, 0.274, 0.454, 0.631, 0.808, 0.949]
    assert [len(m["aspect_ratios"]) for m in maps] == [3, 5, 5, 5, 3, 3]
    assert statistics["box_shapes"]["quantiles"] == [0.05, 0.25, 0.5, 0.75, 0.95]
    assert statistics["box_shapes"]["scale"][0] == pytest.approx(4 / SIDE)  # the specks are the smallest fifth


def test_statistics_png_opens_at_the_figure_size(toy_data_folder, tmp_path):
    # The session's toy lists, read from their folder; the outputs go to a copy-free folder of their own.
    lists, label_map = data_statistics.read_lists(toy_data_folder)
    counts = {split: split_statistics(objects, label_map) for split, (_, objects) in lists.items()}
    statistics, per_object = data_statistics.compute_statistics(lists, label_map, counts, model.SSD300_VGG16)
    path = tmp_path / "statistics.png"
    data_statistics.plot_statistics(statistics, per_object, str(path))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (data_statistics.FIGURE_SIZE[0] * data_statistics.FIGURE_DPI,
                              data_statistics.FIGURE_SIZE[1] * data_statistics.FIGURE_DPI) == (1200, 720)
        image.load()
    written = read_lists(toy_data_folder)
    assert statistics["splits"]["TRAIN"]["objects"] == sum(len(o["labels"]) for o in written["TRAIN_objects"])


@pytest.mark.parametrize("key", [("vgg16", 300), ("vgg16", 512), ("resnet50", 300)])
def test_nearest_centre_candidates_give_box_iou_s_best_overlap(key):
    config = model.CONFIGS[key]
    priors = model.create_prior_boxes(config)
    generator = torch.Generator().manual_seed(1)
    sides = torch.exp(torch.empty(600, 2).uniform_(-5.0, 0.0, generator=generator))  # 0.007 .. 1 of the side
    centres = torch.rand(600, 2, generator=generator)
    boxes = torch.cat([centres - sides / 2, centres + sides / 2], dim=1).clamp(0.0, 1.0)
    boxes = torch.cat([boxes, box_from_prior(priors[[0, 17, len(priors) - 1]])])  # priors themselves: IoU 1
    best, index = data_statistics.best_prior_overlaps(boxes, priors, config)
    reference, _ = data_statistics.best_prior_overlaps_all_pairs(boxes, priors)
    assert torch.allclose(best, reference, atol=1e-6)
    assert best[-3:].tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    # The index names a prior with that overlap.
    from torchvision.ops import box_iou
    chosen = box_from_prior(priors[index])
    assert torch.allclose(torch.diagonal(box_iou(boxes, chosen)), best, atol=1e-6)
    assert 0.05 < (best >= 0.5).float().mean() < 0.95  # both sides of the threshold are exercised


def box_from_prior(priors_cxcy):
    """Fractional (cx, cy, w, h) -> (x1, y1, x2, y2)."""
    return torch.cat([priors_cxcy[:, :2] - priors_cxcy[:, 2:] / 2, priors_cxcy[:, :2] + priors_cxcy[:, 2:] / 2], 1)


# ---------------------------------------------------------------------------------------------------------
# The network the user will train: --base, --image-size, --priors-from (issue 31)
# ---------------------------------------------------------------------------------------------------------

# A 21x21-pixel object on a 300x300 image (21 px: the ResNet-50 SSD300's and torchvision's smallest prior scale,
# 21 / 300 = 0.07), centred half a pixel off their conv4 prior centred at 100 px (centres every 8 px from 4 px).
TINY = (90, 90, 111, 111)


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    """Classes tiny (two 21x21-pixel objects), fit (an SSD300 prior, covered by every network) and ghost (no
    object: passed with --classes)."""
    fit = prior_pixels(model.SSD300_VGG16, conv4_3_square(model.SSD300_VGG16, 20, 17))
    images = {"a": [("tiny", TINY, 0), ("fit", fit, 0)], "b": [("tiny", TINY, 0)], "c": [("fit", fit, 0)]}
    return write_tree(tmp_path_factory.mktemp("tiny_tree") / "VOC", images, {"trainval": ["a", "b"], "test": ["c"]})


@pytest.fixture(scope="module")
def coco_priors_checkpoint(tmp_path_factory, save_checkpoint):
    """A checkpoint in train.py's format of a VGG16 SSD300 (random weights) with torchvision's COCO priors, the
    priors that convert_weights.py --from torchvision_coco gives its checkpoint and train.py --init-from passes on."""
    from ssd_support.weights import TORCHVISION_COCO_PRIORS

    torch.manual_seed(0)
    network = model.build_ssd(3, base="vgg16", image_size=300)
    network.use_priors(TORCHVISION_COCO_PRIORS)
    path = tmp_path_factory.mktemp("coco_priors") / "ssd300_coco_priors.pt"
    return save_checkpoint(path, network, {"background": 0, "tiny": 1, "fit": 2})


def tiny_coverage(tiny_tree, output, capsys, *options):
    """create_data_lists.py on tiny_tree with options; (statistics.json, stdout, the tiny class's entry)."""
    statistics, printed = run_lists(tiny_tree, output, capsys, "--classes", "tiny,fit", *options)
    return statistics, printed, statistics["all_splits"]["per_class"]["tiny"]


def test_a_21_pixel_object_is_uncovered_by_vgg16_ssd300_and_the_advice_names_the_networks_that_cover_it(
        tiny_tree, tmp_path, capsys):
    statistics, printed, tiny = tiny_coverage(tiny_tree, tmp_path / "lists", capsys)
    assert statistics["network"]["description"] == "VGG16 SSD300" and statistics["network"]["priors_from"] is None
    assert (tiny["objects"], tiny["covered"]) == (2, 0)
    assert tiny["median_best_iou"] < 0.5  # at most (21 / 30)^2 = 0.49 against 30-pixel priors
    # The other networks' coverage, measured on the same objects.
    assert tiny["other_networks"] == {"VGG16 SSD512": 1.0, "ResNet-50 SSD300": 1.0,
                                      "VGG16 SSD300 with torchvision's COCO priors": 1.0}
    line = next(line for line in printed.splitlines() if line.startswith("  under 90%: tiny:"))
    assert "0.0% of 2 objects covered" in line
    assert "the ResNet-50 SSD300 (--base resnet50) covers 100%" in line
    assert "the VGG16 SSD512 (--image-size 512) covers 100%" in line
    assert "torchvision's COCO priors (convert_weights.py --from torchvision_coco" in line
    assert "Prior coverage (VGG16 SSD300, 8732 priors" in printed
    assert "ResNet-50 SSD300 (--base resnet50): 100.0%" in printed  # all objects: tiny and fit


def test_the_resnet50_ssd300_covers_the_21_pixel_object(tiny_tree, tmp_path, capsys):
    statistics, printed, tiny = tiny_coverage(tiny_tree, tmp_path / "lists", capsys, "--base", "resnet50")
    assert statistics["network"]["description"] == "ResNet-50 SSD300" and statistics["network"]["base"] == "resnet50"
    assert statistics["network"]["feature_maps"][0]["scale"] == pytest.approx(21 / 300)
    assert (tiny["objects"], tiny["covered"]) == (2, 2)
    # 20.5 x 20.5 px shared by two 21 x 21 boxes: IoU 420.25 / 461.75.
    assert tiny["median_best_iou"] == pytest.approx(20.5 ** 2 / (2 * 21 ** 2 - 20.5 ** 2), abs=1e-5)
    assert "ResNet-50 SSD300" not in tiny["other_networks"] and "VGG16 SSD300" in tiny["other_networks"]
    assert "Prior coverage (ResNet-50 SSD300, 8732 priors" in printed
    assert statistics["poorly_covered_classes"] == []


def test_priors_from_a_converted_coco_checkpoint_cover_the_21_pixel_object(tiny_tree, coco_priors_checkpoint,
                                                                           tmp_path, capsys):
    statistics, printed, tiny = tiny_coverage(tiny_tree, tmp_path / "lists", capsys,
                                              "--priors-from", coco_priors_checkpoint)
    network = statistics["network"]
    assert network["priors_from"] == coco_priors_checkpoint and network["base"] == "vgg16"
    assert network["description"] == f"VGG16 SSD300 with the priors of {coco_priors_checkpoint}"
    assert [m["scale"] for m in network["feature_maps"]] == [0.07, 0.15, 0.33, 0.51, 0.69, 0.87]
    assert (tiny["objects"], tiny["covered"]) == (2, 2)
    assert tiny["median_best_iou"] == pytest.approx(20.5 ** 2 / (2 * 21 ** 2 - 20.5 ** 2), abs=1e-5)
    # The checkpoint's priors are torchvision's: that alternative is the network itself and is left out.
    assert sorted(tiny["other_networks"]) == ["ResNet-50 SSD300", "VGG16 SSD300", "VGG16 SSD512"]
    assert f"Prior coverage (VGG16 SSD300 with the priors of {coco_priors_checkpoint}, 8732 priors" in printed


def test_image_size_512_describes_ssd512_and_covers_the_21_pixel_object(tiny_tree, tmp_path, capsys):
    statistics, printed, tiny = tiny_coverage(tiny_tree, tmp_path / "lists", capsys, "--image-size", "512")
    assert statistics["network"]["description"] == "VGG16 SSD512" and statistics["network"]["priors"] == 24564
    assert (tiny["objects"], tiny["covered"]) == (2, 2)
    assert tiny["other_networks"]["VGG16 SSD300"] == 0.0
    assert "Prior coverage (VGG16 SSD512, 24564 priors" in printed


def test_a_class_without_objects_is_reported_as_such_not_as_covered(tiny_tree, tmp_path, capsys):
    statistics, printed = run_lists(tiny_tree, tmp_path / "lists", capsys, "--classes", "tiny,fit,ghost",
                                    "--base", "resnet50")
    assert statistics["poorly_covered_classes"] == []  # tiny and fit: every object covered
    assert statistics["classes_without_objects"] == ["ghost"]
    assert statistics["all_splits"]["per_class"]["ghost"]["coverage"] is None
    assert "Every class is at least" not in printed
    assert "Every class with objects is at least 90% covered." in printed
    assert "  no objects (nothing to cover, nothing to learn): ghost" in printed


def test_a_bad_priors_from_file_or_network_is_one_line_and_nothing_is_written(tiny_tree, coco_priors_checkpoint,
                                                                             tmp_path, capsys):
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    for options, words in (
            (["--priors-from", str(not_a_checkpoint)], [str(not_a_checkpoint), "not a readable checkpoint"]),
            (["--priors-from", str(tmp_path / "missing.pt")], [str(tmp_path / "missing.pt")]),
            (["--priors-from", coco_priors_checkpoint, "--base", "resnet50"],
             [coco_priors_checkpoint, "base vgg16", "--base vgg16 --image-size 300"]),
            (["--base", "resnet50", "--image-size", "512"], ["no SSD512 with base 'resnet50'"])):
        output = tmp_path / "lists"
        assert cdl.main(["--voc07", tiny_tree, "--output", str(output), *options]) == 1
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1 and all(word in error for word in words), error
        assert not output.exists()


def test_priors_from_a_checkpoint_that_every_loader_refuses_is_refused_too(tiny_tree, coco_priors_checkpoint,
                                                                          tmp_path, capsys):
    """--priors-from read only the config: it reported coverage for a file that detect.py refuses."""
    good = torch.load(coco_priors_checkpoint, weights_only=True)
    garbage_priors = {**good["model"], "priors_cxcy": torch.rand_like(good["model"]["priors_cxcy"])}
    for name, checkpoint, words in (
            ("huge.pt", {**good, "config": {**good["config"], "n_classes": 10 ** 9}}, ["n_classes", "1000000000"]),
            ("resnet.pt", {**good, "config": {**good["config"], "base": "resnet50", "priors": None}},
             ["the weights lack base."]),
            ("priors.pt", {**good, "model": garbage_priors}, ["model priors_cxcy differs"])):
        path = str(tmp_path / name)
        torch.save(checkpoint, path)
        output = tmp_path / "lists"
        assert cdl.main(["--voc07", tiny_tree, "--output", str(output), "--priors-from", path]) == 1
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1 and path in error and all(w in error for w in words), error
        assert not output.exists()


def test_tiled_boxes_are_the_objects_in_the_tile_of_their_centre():
    boxes = torch.tensor([[160, 10, 170, 20], [140, 0, 170, 30]], dtype=torch.float64) / 300
    tiled = data_statistics.tiled_boxes(boxes, 2)  # 150-pixel tiles
    assert tiled.tolist()[0] == pytest.approx([10 / 150, 10 / 150, 20 / 150, 20 / 150])
    assert tiled.tolist()[1] == pytest.approx([0, 0, 20 / 150, 30 / 150])  # centre 155: the right tile, clipped


def test_specks_smaller_than_every_prior_get_a_measured_tiling(prior_tree, tmp_path, capsys):
    statistics, _ = run_lists(prior_tree, tmp_path / "lists", capsys)
    speck = statistics["all_splits"]["per_class"]["speck"]["poorly_covered"]
    assert speck["better_networks"] == []  # 4 px: no network's priors cover them
    tiles = speck["tiles"]
    # Cut into n x n tiles, the specks are 4n pixels in the 300-pixel input: measured against SSD300's priors.
    priors = model.create_prior_boxes(model.SSD300_VGG16)
    specks = torch.tensor([[100, 100, 104, 104], [10, 250, 14, 254], [150, 150, 154, 154]]) / 300
    for n in data_statistics.TILE_COUNTS:
        iou, _ = data_statistics.best_prior_overlaps_all_pairs(data_statistics.tiled_boxes(specks, n), priors)
        assert (iou >= 0.5).double().mean().item() <= tiles["coverage"]
    assert tiles["coverage"] > 0 and f"cut into {tiles['tiles']} x {tiles['tiles']} tiles" in speck["advice"]
    assert f"covers {100 * tiles['coverage']:.0f}% of those not covered" in speck["advice"]
