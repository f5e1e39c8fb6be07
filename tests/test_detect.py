"""Tests of detect.py: pixel coordinates, drawing, error handling and the command line."""

import json
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import detect
from ssd_support import checkpoints
from model import SSD300
from utils import make_label_map

LABEL_MAP = make_label_map(["cat", "dog"])


class FakeSSD(nn.Module):
    """Stands in for SSD300: returns the same fractional detections for every image, records its arguments."""

    def __init__(self, boxes, labels, scores):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # detect_batch reads the device from the parameters
        self.detections = (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels),
                           torch.tensor(scores, dtype=torch.float32))
        self.calls = []
        self.image_size = 300

    def forward(self, images):
        assert images.shape[1:] == (3, 300, 300)
        self.calls.append({"batch": images.shape[0], "inference": torch.is_inference_mode_enabled()})
        return torch.zeros(images.shape[0], 8732, 4), torch.zeros(images.shape[0], 8732, 3)

    def detect_objects(self, predicted_locs, predicted_scores, min_score, max_overlap, top_k):
        self.calls[-1].update(min_score=min_score, max_overlap=max_overlap, top_k=top_k)
        n = predicted_locs.shape[0]
        return [self.detections[0]] * n, [self.detections[1]] * n, [self.detections[2]] * n


def _fake():
    # Deliberately not in score order: the output must be sorted.
    return FakeSSD([[0.5, 0.5, 1.0, 1.0], [0.1, 0.2, 0.5, 0.6]], [2, 1], [0.3, 0.9])


def test_detect_returns_pixel_boxes_of_the_original_image_sorted_by_score():
    image = Image.new("RGB", (200, 100), "gray")
    model = _fake()
    annotated, detections = detect.detect(image, model, LABEL_MAP, min_score=0.25, max_overlap=0.4, top_k=7)
    assert detections == [
        {"label": "cat", "score": pytest.approx(0.9), "box": pytest.approx([20.0, 20.0, 100.0, 60.0])},
        {"label": "dog", "score": pytest.approx(0.3), "box": pytest.approx([100.0, 50.0, 200.0, 100.0])},
    ]
    assert model.calls == [{"batch": 1, "inference": True, "min_score": 0.25, "max_overlap": 0.4, "top_k": 7}]
    # The drawing is on a copy of the same size; the original is untouched; the box outline is coloured.
    assert annotated.size == image.size
    assert image.getpixel((20, 40)) == (128, 128, 128)
    assert annotated.getpixel((20, 40)) != (128, 128, 128)
    assert annotated.getpixel((60, 40)) == (128, 128, 128)  # inside the box, away from the label


def test_labels_stay_inside_the_image_on_every_edge():
    """A label that would reach past the right or bottom edge is moved inside, whole (issue 26: a label spanning
    x 270..333 on a 300-pixel image was cut off). The expected place is worked out from a label drawn where it has
    room: its size is measured there from the pixels, and the clamped label must be the same pixels, moved."""
    from ssd_support.drawing import draw_detections

    grey, red = (128, 128, 128), (255, 0, 0)
    detection = {"label": "person", "score": 0.99}

    def draw(size, box):
        drawn = draw_detections(Image.new("RGB", size, grey), [dict(detection, box=box)], colour="#ff0000")
        return np.asarray(drawn)

    # Where there is room, the label sits above the box's top-left corner, its last row on the box's top edge
    # (row 30): measured from the rows above the box, which hold nothing else.
    reference = draw((300, 60), [10, 30, 39, 55])
    rows, columns = np.nonzero((reference[:30] != grey).any(axis=2))
    top, left, right = rows.min(), columns.min(), columns.max()
    assert left == 10 and (reference[top, left:right + 1] == red).all()
    width, height = right - left + 1, 30 - top + 1
    label = reference[top:31, left:right + 1]
    assert width > 30 and 10 <= height <= 18  # wider than the edge box below: unclamped, it would be cut

    # A box at the right edge: the label ends on the last column, whole.
    edge = draw((300, 60), [270, 30, 299, 55])
    assert (edge[top:31, 300 - width:] == label).all()
    assert (edge[:top] == grey).all() and (edge[top:31, :300 - width] == grey).all()

    # A box at the bottom of an image too short for the label above it: the label ends on the last row.
    low = draw((200, 18), [20, 12, 60, 17])
    assert (low[18 - height:, 20:20 + width] == label).all()


def test_detect_suppress_and_paths():
    model = _fake()
    _, detections = detect.detect(Image.new("L", (50, 40)), model, LABEL_MAP, suppress=("dog",))
    assert [d["label"] for d in detections] == ["cat"]


def test_detect_batch_scales_each_image_by_its_own_size():
    images = [Image.new("RGB", (300, 300)), Image.new("RGB", (640, 480))]
    model = _fake()
    results = detect.detect_batch(images, model, LABEL_MAP)
    assert model.calls[0]["batch"] == 2  # one forward pass for the batch
    assert results[0][0]["box"] == pytest.approx([30.0, 60.0, 150.0, 180.0])
    assert results[1][0]["box"] == pytest.approx([64.0, 96.0, 320.0, 288.0])
    assert detect.detect_batch([], model, LABEL_MAP) == []


def test_load_image_gives_one_line_errors_naming_the_file(tmp_path):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    truncated = tmp_path / "half.png"
    Image.new("RGB", (64, 64), "red").save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    for path, reason in ((not_image, "not an image"), (tmp_path / "missing.png", "no such file"),
                         (truncated, "")):
        with pytest.raises(ValueError) as error:
            detect.load_image(str(path))
        assert str(path) in str(error.value) and reason in str(error.value) and "\n" not in str(error.value)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (10, 8)).save(rgba)
    assert detect.load_image(str(rgba)).mode == "RGB"


def test_latest_checkpoint_is_the_highest_iteration_whatever_the_file_times(tmp_path):
    # One rule for detect.py and train.py --resume latest: a copied folder keeps iterations, not file times.
    assert checkpoints.latest_checkpoint(str(tmp_path)) is None
    for age, name in ((100, "ssd300_iter_000200.pt"), (10, "ssd300_iter_000100.pt"), (5, "other.pth")):
        path = tmp_path / name
        path.write_bytes(b"")
        os.utime(path, (time.time() - age, time.time() - age))
    assert checkpoints.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ssd300_iter_000200.pt")
    assert checkpoints.resolve_resume_path("latest", str(tmp_path)) == str(tmp_path / "ssd300_iter_000200.pt")


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory, save_checkpoint):
    """A checkpoint of a randomly initialised SSD300 for 2 classes, in the format train.py writes."""
    torch.manual_seed(0)
    model = SSD300(n_classes=len(LABEL_MAP))
    return save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "ssd300_iter_000000.pt", model, LABEL_MAP)


def test_command_line_processes_good_images_and_reports_bad_ones(tmp_path, random_checkpoint, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (120, 90), "navy").save(inputs / "wide.jpg")
    Image.new("RGB", (64, 100), "olive").save(inputs / "tall.png")
    (inputs / "broken.jpg").write_text("this is text")
    out = tmp_path / "out"
    status = detect.main([str(inputs / "*.*"), str(tmp_path / "absent.jpg"), "--checkpoint", random_checkpoint,
                          "--output", str(out), "--min-score", "0.3", "--device", "cpu", "--batch-size", "2"])
    assert status == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 2
    assert "broken.jpg" in err_lines[0] and "not an image" in err_lines[0]
    assert "absent.jpg" in err_lines[1] and "no such file" in err_lines[1]
    assert sorted(os.listdir(out)) == ["tall_detections.jpg", "tall_detections.json",
                                       "wide_detections.jpg", "wide_detections.json"]
    for stem, extension, (width, height) in (("wide", "jpg", (120, 90)), ("tall", "png", (64, 100))):
        assert Image.open(out / f"{stem}_detections.jpg").size == (width, height)
        document = json.loads((out / f"{stem}_detections.json").read_text())
        # The JSON names its image and the size its boxes are pixels of.
        assert (document["image"], document["width"], document["height"]) == (str(inputs / f"{stem}.{extension}"),
                                                                               width, height)
        detections = document["detections"]
        # A random network on a flat image: many weak detections, all above --min-score, within the image.
        assert 0 < len(detections) <= 200
        scores = [d["score"] for d in detections]
        assert scores == sorted(scores, reverse=True) and min(scores) > 0.3 - 1e-4
        for d in detections:
            assert d["label"] in ("cat", "dog")
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height

    # Only good images: exit status 0.
    assert detect.main([str(inputs / "wide.jpg"), "--checkpoint", random_checkpoint, "--output", str(out),
                        "--device", "cpu", "--min-score", "0.5", "--backend", "torch"]) == 0


def test_command_line_without_a_checkpoint_fails_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (10, 10)).save(tmp_path / "x.png")
    assert detect.main(["x.png"]) == 1
    assert "checkpoints: no ssd300_iter_N.pt / ssd512_iter_N.pt checkpoint found; pass --checkpoint" in capsys.readouterr().err
    assert detect.main(["x.png", "--checkpoint", "nope.pt"]) == 1
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err


def test_an_image_whose_annotated_copy_cannot_be_a_jpeg_leaves_the_rest_of_the_batch(tmp_path, random_checkpoint,
                                                                                    capsys):
    """Issue 32: a 100000x1 image (JPEG holds at most 65,500 pixels a side) ended detect.py with a traceback and
    lost the rest of the batch; now one error line naming it, its JSON and every other image's files, status 1."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (120, 90), "navy").save(inputs / "a.png")
    Image.new("RGB", (100000, 1), "olive").save(inputs / "b_line.png")
    Image.new("RGB", (64, 100), "teal").save(inputs / "c.png")
    out = tmp_path / "out"
    status = detect.main([str(inputs), "--checkpoint", random_checkpoint, "--output", str(out), "--device", "cpu",
                          "--backend", "torch", "--save-coco", str(tmp_path / "all.json")])
    assert status == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and f"{inputs / 'b_line.png'}: its annotated copy cannot be written" in err_lines[0]
    assert sorted(os.listdir(out)) == ["a_detections.jpg", "a_detections.json", "b_line_detections.json",
                                       "c_detections.jpg", "c_detections.json"]
    document = json.loads((out / "b_line_detections.json").read_text())
    assert (document["width"], document["height"]) == (100000, 1)
    assert len(json.loads((tmp_path / "all.json").read_text())["images"]) == 3


def test_tiles_too_small_or_too_many_are_refused_in_one_line(tmp_path, random_checkpoint, capsys):
    """A new user's trial: --tile 4 --tile-overlap 0.75 cut a 1300x1000 photo into 1.3 million crops, all held in
    memory; now a tile below 32 pixels is an argparse error, and an image of more than MAX_TILES_PER_IMAGE crops is
    refused in one line naming it while the other images run (ssd_support/tiling.py)."""
    with pytest.raises(SystemExit):
        detect.parse_args(["x.png", "--tile", "4"])
    assert "--tile must be at least 32 pixels" in capsys.readouterr().err
    Image.new("RGB", (1300, 1000), "navy").save(tmp_path / "big.png")
    Image.new("RGB", (30, 20), "olive").save(tmp_path / "small.png")  # one crop
    out = tmp_path / "out"
    status = detect.main([str(tmp_path / "big.png"), str(tmp_path / "small.png"), "--checkpoint", random_checkpoint,
                          "--output", str(out), "--device", "cpu", "--backend", "torch", "--tile", "32",
                          "--tile-overlap", "0.9"])
    assert status == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith(f"detect.py: error: {tmp_path / 'big.png'}: a 1300x1000 ")
    assert "137,376 tiles" in err_lines[0] and "32-pixel tiles with overlap 0.9" in err_lines[0]
    assert sorted(os.listdir(out)) == ["small_detections.jpg", "small_detections.json"]
