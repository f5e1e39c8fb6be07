"""ssd_support/tiling.py: crop geometry, and tiled detection equal to per-image detection on a grid of images."""

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_ssd
from ssd_support.detector import SSDDetector
from ssd_support.limits import MAX_TILES_PER_IMAGE, MIN_TILE_SIZE
from ssd_support.tiling import (check_tile_count, crop_batches, crop_tensor, tile_boxes, tile_starts,
                                tiled_detect_fn)


@pytest.mark.parametrize("length, tile, overlap", [(100, 300, 0.25), (300, 300, 0), (1000, 300, 0), (1000, 300, 0.25),
                                                   (601, 300, 0), (977, 256, 0.25)])
def test_tiles_cover_the_side_inside_the_image_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    if length <= tile:
        assert starts == [0]
        return
    assert starts[0] == 0 and starts[-1] == length - tile  # flush with both edges, no crop past the image
    gaps = np.diff(starts)
    assert (gaps > 0).all() and (gaps <= round(tile * (1 - overlap))).all()  # covered, at least the overlap shared
    assert len(starts) == -(-(length - tile) // round(tile * (1 - overlap))) + 1


def test_tile_boxes_of_a_non_divisible_image():
    boxes = tile_boxes(500, 250, 300, 0)
    assert boxes == [(0, 0, 300, 250), (200, 0, 500, 250)]  # the short side is one crop of its whole length


@pytest.mark.parametrize("tile, overlap", [(0, 0), (MIN_TILE_SIZE - 1, 0), (300, 1.0), (300, -0.1)])
def test_bad_tile_settings_are_refused(tile, overlap):
    with pytest.raises(ValueError):
        tile_starts(1000, tile, overlap)


def four_images(size=(140, 120), seed=0):
    """Four random RGB images (H, W) = size and the 2 x 2 grid of them: [[0, 1], [2, 3]]."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(4)]
    grid = np.concatenate([np.concatenate(images[:2], axis=1), np.concatenate(images[2:], axis=1)], axis=0)
    return images, grid


def test_square_grid_tiled_at_the_image_size_without_overlap_equals_per_image_detection():
    torch.manual_seed(0)
    network = build_ssd(4).eval()
    images, grid = four_images(size=(128, 128))
    to_tensor = lambda array: torch.from_numpy(array).permute(2, 0, 1).float() / 255  # noqa: E731
    # No top-k cut anywhere (each crop's and the merge's are the same number): every detection is compared.
    plain = SSDDetector(network, score_thresh=0.5, detections_per_img=10_000).eval()
    tiled = SSDDetector(network, score_thresh=0.5, detections_per_img=10_000, tile_size=128, tile_overlap=0,
                        tile_batch_size=4).eval()
    with torch.no_grad():
        per_image = plain([to_tensor(image) for image in images])
        merged = tiled([to_tensor(grid)])[0]
    offsets = [(0, 0), (128, 0), (0, 128), (128, 128)]
    boxes = torch.cat([d["boxes"] + torch.tensor([dx, dy, dx, dy]) for d, (dx, dy) in zip(per_image, offsets)])
    scores = torch.cat([d["scores"] for d in per_image])
    labels = torch.cat([d["labels"] for d in per_image])
    assert len(boxes) > 4 and len(merged["boxes"]) == len(boxes)
    order, merged_order = scores.argsort(descending=True), merged["scores"].argsort(descending=True)
    torch.testing.assert_close(merged["scores"][merged_order], scores[order])
    torch.testing.assert_close(merged["boxes"][merged_order], boxes[order], atol=1e-3, rtol=0)
    assert torch.equal(merged["labels"][merged_order], labels[order])


def test_an_image_smaller_than_the_tile_is_detected_whole():
    torch.manual_seed(0)
    network = build_ssd(4).eval()
    image = torch.rand(3, 90, 70, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = SSDDetector(network, score_thresh=0.3).eval()([image])[0]
        tiled = SSDDetector(network, score_thresh=0.3, tile_size=300).eval()([image])[0]
    torch.testing.assert_close(tiled["boxes"], plain["boxes"])
    assert torch.equal(tiled["labels"], plain["labels"])


def bright_box_detector(images):
    """A deterministic stand-in for detect.py's detect_fn: one "square" per image, the box of its white pixels."""
    results = []
    for image in images:
        ys, xs = np.nonzero(np.asarray(image)[:, :, 0] == 255)
        results.append([] if not len(xs) else
                       [{"label": "square", "score": 0.9, "box": [float(xs.min()), float(ys.min()),
                                                                  float(xs.max() + 1), float(ys.max() + 1)]}])
    return results


@pytest.mark.parametrize("overlap", [0, 0.25])
def test_tiled_detect_fn_puts_each_crops_boxes_in_the_image_pixels(overlap):
    canvas = np.zeros((700, 1000, 3), dtype=np.uint8)
    squares = [(40, 30, 80, 70), (610, 520, 650, 560), (900, 100, 960, 150)]  # x1, y1, x2, y2
    for x1, y1, x2, y2 in squares:
        canvas[y1:y2, x1:x2] = 255
    tiled = tiled_detect_fn(bright_box_detector, 300, overlap, batch_size=3)
    found = tiled([Image.fromarray(canvas)])[0]
    # Every square is whole inside some crop, so some crop reports it exactly; crops that cut a square report
    # parts of it, merged away by the NMS only when they overlap the whole box by more than 0.5.
    boxes = [tuple(d["box"]) for d in found]
    for square in squares:
        assert tuple(float(v) for v in square) in boxes
    assert all(0 <= b[0] < b[2] <= 1000 and 0 <= b[1] < b[3] <= 700 for b in boxes)


@pytest.mark.parametrize("full_image", [False, True])
def test_crops_are_cut_one_batch_at_a_time_just_before_the_detector_sees_them(monkeypatch, full_image):
    cut = []  # every crop Pillow cut, in order
    original_crop = Image.Image.crop
    monkeypatch.setattr(Image.Image, "crop", lambda image, box=None: cut.append(box) or original_crop(image, box))
    calls = []  # (crops cut when the detector was called, crops it was given)

    def recording_detector(crops):
        calls.append((len(cut), len(crops)))
        return [[] for _ in crops]

    image = Image.new("RGB", (400, 336))  # 13 x 11 = 143 crops of 32 pixels
    n_tiles = len(tile_boxes(400, 336, MIN_TILE_SIZE, 0))
    assert n_tiles == 143
    assert tiled_detect_fn(recording_detector, MIN_TILE_SIZE, 0, full_image=full_image, batch_size=8)([image]) == [[]]
    sizes = [size for _, size in calls]
    assert sum(sizes) == n_tiles + full_image and max(sizes) == 8 and len(calls) == -(-(n_tiles + full_image) // 8)
    seen = 0
    for cut_before_call, size in calls:  # the crops of this batch cut, and none of the next one's
        seen += size
        assert cut_before_call == min(seen, n_tiles)  # the whole-image pass is the image itself, not a crop
    assert len(cut) == n_tiles


def test_crop_batches_is_a_generator_that_cuts_nothing_ahead():
    images = [torch.arange(3 * 100 * 70.).reshape(3, 100, 70), torch.zeros(3, 40, 40)]
    cut = []
    batches = crop_batches(images, [(70, 100), (40, 40)], lambda image, box: cut.append(box) or crop_tensor(image, box),
                           MIN_TILE_SIZE, 0, batch_size=5)
    assert cut == []  # nothing before the first batch is asked for
    crops, owners = next(batches)
    assert len(crops) == 5 and len(cut) == 5
    rest = list(batches)
    all_owners = owners + [owner for _, batch_owners in rest for owner in batch_owners]
    # 3 x 4 crops of the first image, 2 x 2 of the second, in batches of 5, each a view at its owner's offset.
    assert [len(batch) for batch, _ in rest] == [5, 5, 1] and len(all_owners) == 16 and len(cut) == 16
    assert all_owners[:3] == [(0, 0, 0), (0, 32, 0), (0, 38, 0)] and all_owners[-1] == (1, 8, 8)
    index, dx, dy = owners[4]
    assert torch.equal(crops[4], images[index][:, dy:dy + 32, dx:dx + 32])


def test_an_image_of_too_many_tiles_is_refused_in_one_line_before_any_crop():
    side = 32 * 64  # 64 x 64 crops of 32 pixels without overlap: the bound exactly
    assert MAX_TILES_PER_IMAGE == 4096 and check_tile_count(side, side, 32, 0) == MAX_TILES_PER_IMAGE
    with pytest.raises(ValueError) as error:
        check_tile_count(side + 1, side, 32, 0, name="big.png")
    assert str(error.value).startswith(f"big.png: a {side + 1}x{side} image") and "4,160 tiles" in str(error.value)

    calls = []
    tiled = tiled_detect_fn(lambda crops: calls.append(crops) or [[] for _ in crops], 32, 0.9)
    with pytest.raises(ValueError) as error:  # the trial's 1300 x 1000 photo at a tiny stride (3 pixels)
        tiled([Image.new("RGB", (64, 64)), Image.new("RGB", (1300, 1000))])
    message = str(error.value)
    assert "\n" not in message and calls == []  # not even the first image's crops ran
    assert "1300x1000 image" in message and "32-pixel tiles with overlap 0.9" in message
    assert f"{check_tile_count(1300, 1, 32, 0.9) * check_tile_count(1, 1000, 32, 0.9):,} tiles" in message
    assert "MAX_TILES_PER_IMAGE" in message


def test_ssd_detector_refuses_a_small_tile_and_an_image_of_too_many_tiles():
    network = build_ssd(4).eval()
    with pytest.raises(ValueError, match="at least 32 pixels"):
        SSDDetector(network, tile_size=MIN_TILE_SIZE - 1)
    detector = SSDDetector(network, tile_size=MIN_TILE_SIZE, tile_overlap=0.5).eval()
    with pytest.raises(ValueError, match=r"^images\[1\]: a 2100x2100 image .* 17,161 tiles"), torch.no_grad():
        detector([torch.rand(3, 40, 40), torch.zeros(3, 2100, 2100)])
