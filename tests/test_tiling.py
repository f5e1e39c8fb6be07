"""ssd_support/tiling.py: crop geometry, and tiled detection equal to per-image detection on a grid of images."""

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_ssd
from ssd_support.detector import SSDDetector
from ssd_support.tiling import tile_boxes, tile_starts, tiled_detect_fn


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


@pytest.mark.parametrize("tile, overlap", [(0, 0), (300, 1.0), (300, -0.1)])
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
