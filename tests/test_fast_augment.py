"""The paper's augmentations (utils.py section 3): properties over many seeds on tiny images, each step alone, and
the fast TRAIN path (ssd_support/fast_augment.py) against them: the same draws and boxes, pixels within stated bounds."""

import functools
import random

import numpy as np
import pytest
import torch
from PIL import Image

import utils
from ssd_support import fast_augment
from utils import (IMAGENET_MEAN, IMAGENET_STD, MEAN_FILL_UINT8, find_jaccard_overlap, horizontal_flip,
                   photometric_distort, preprocess, random_crop, transform, zoom_out)

N_SEEDS = 300

# Distinct pure colours for up to 6 objects; the background is black.
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run single-threaded, as a DataLoader worker does: on a busy 2-core machine, intra-op threads only add
    overhead to these tiny images."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def seed_all(seed):
    """Seed both generators the augmentation draws from."""
    random.seed(seed)
    torch.manual_seed(seed)


def random_scene(rng, overlapping=True):
    """A tiny image (40-96 px a side) with 0-4 boxes, labels 1..n (distinct) and difficulties label % 2.

    :param rng: a random.Random
    :param overlapping: allow boxes to overlap (else they are laid out in separate columns)
    :return: PIL image, boxes (n, 4) float pixel x1y1x2y2, labels (n), difficulties (n)
    """
    width, height = rng.randint(40, 96), rng.randint(40, 96)
    n = rng.randint(0, 4)
    boxes = []
    for k in range(n):
        if overlapping:
            x1, y1 = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
            x2, y2 = rng.uniform(x1 + 1, width), rng.uniform(y1 + 1, height)
        else:  # column k of n, at least 8 px wide
            column = width / n
            x1 = k * column + rng.uniform(0, column / 4)
            x2 = (k + 1) * column - rng.uniform(0, column / 4)
            y1 = rng.uniform(0, height / 3)
            y2 = rng.uniform(2 * height / 3, height)
        boxes.append([x1, y1, x2, y2])
    image = Image.new("RGB", (width, height))
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        image.paste(PALETTE[k], (round(x1), round(y1), round(x2), round(y2)))
    labels = torch.arange(1, n + 1)
    return image, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), labels, (labels % 2).to(torch.uint8)


def unnormalize(image):
    """(3, H, W) normalized float -> (3, H, W) float in 0-255."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image * std + mean) * 255


def coordinate_image(width, height):
    """A uint8 (3, H, W) image whose pixels say where they are: channel 0 = x, channel 1 = y (both < 256)."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)]).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------
# The whole TRAIN chain, over many seeds
# ---------------------------------------------------------------------------------------------------------


def test_train_transform_properties_over_many_seeds():
    """Boxes stay inside the image and non-degenerate, stay aligned with labels / difficulties, and a crop
    never drops every object; over the seeds the crop and zoom-out really change the boxes."""
    rng = random.Random(0)
    n_changed = 0
    for seed in range(N_SEEDS):
        image, boxes, labels, difficulties = random_scene(rng)
        seed_all(seed)
        new_image, new_boxes, new_labels, new_difficulties = transform(image, boxes, labels, difficulties, "TRAIN")

        assert new_image.shape == (3, 300, 300) and new_image.dtype == torch.float32
        assert new_boxes.shape == (new_labels.numel(), 4) and new_difficulties.shape == new_labels.shape
        assert new_labels.dtype == torch.int64
        assert ((new_boxes >= 0) & (new_boxes <= 1)).all(), (seed, new_boxes)
        assert (new_boxes[:, 2:] > new_boxes[:, :2]).all(), (seed, new_boxes)
        if len(boxes):
            assert len(new_boxes) >= 1, f"seed {seed}: the crop dropped every object"
        # Labels are distinct per object and difficulty = label % 2: any misalignment would show.
        assert len(set(new_labels.tolist())) == len(new_labels)
        assert set(new_labels.tolist()) <= set(labels.tolist())
        assert torch.equal(new_difficulties, (new_labels % 2).to(torch.uint8))

        if len(boxes):
            width, height = image.size
            plain = boxes / torch.tensor([width, height, width, height])
            n_changed += not torch.allclose(new_boxes[0], plain[new_labels[0] - 1], atol=1e-4)
    # Most images are zoomed out, cropped or flipped (only about 1/2 * 1/7 * 1/2 of them are not).
    assert n_changed > 0.7 * N_SEEDS * 0.9


def test_train_transform_keeps_boxes_on_their_objects(monkeypatch):
    """Each output box still frames its own object: the pixel at its centre has that object's colour."""
    monkeypatch.setattr(utils, "PHOTOMETRIC_PROBABILITY", 0.0)  # keep the colours exact
    rng = random.Random(1)
    for seed in range(N_SEEDS // 2):
        image, boxes, labels, difficulties = random_scene(rng, overlapping=False)
        seed_all(seed)
        new_image, new_boxes, new_labels, _ = transform(image, boxes, labels, difficulties, "TRAIN")
        pixels = unnormalize(new_image)
        for box, label in zip(new_boxes, new_labels):
            cx, cy = int((box[0] + box[2]) / 2 * 300), int((box[1] + box[3]) / 2 * 300)
            colour = pixels[:, min(cy, 299), min(cx, 299)]
            distances = [float((colour - torch.tensor(c, dtype=torch.float32)).abs().sum()) for c in PALETTE]
            assert distances.index(min(distances)) == label - 1, (seed, box, label, colour)


def test_train_transform_without_objects():
    """An image with no objects goes through every step and comes back with empty (0, 4) boxes."""
    for seed in range(50):
        seed_all(seed)
        image = Image.new("RGB", (37 + seed, 61), (200, 30, 30))
        out = transform(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0), "TRAIN")
        assert out[0].shape == (3, 300, 300)
        assert out[1].shape == (0, 4) and out[2].shape == (0,) and out[3].shape == (0,)


@pytest.mark.parametrize("fast", [False, True], ids=["utils.transform", "fast_augment"])
def test_train_transform_is_reproducible_by_seed(fast):
    """Seeding Python's and torch's generators makes the augmentation repeat exactly (train.py relies on it), in
    the paper's chain and in the fast path alike."""
    image, boxes, labels, difficulties = random_scene(random.Random(2))
    chain = fast_augment.augment_train if fast else functools.partial(transform, split="TRAIN")
    outputs = []
    for _ in range(2):
        seed_all(123)
        outputs.append(chain(image, boxes, labels, difficulties))
    for a, b in zip(*outputs):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------------
# TEST path
# ---------------------------------------------------------------------------------------------------------


def test_test_transform_only_resizes_and_normalizes():
    """TEST: boxes become fractions of the image, nothing random, same as preprocess(); a white image
    normalizes to (1 - mean) / std."""
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    boxes = torch.tensor([[20.0, 10.0, 120.0, 60.0]])
    labels, difficulties = torch.tensor([3]), torch.tensor([1], dtype=torch.uint8)
    seed_all(0)
    first = transform(image, boxes, labels, difficulties, "test")
    seed_all(1)
    second = transform(image, boxes, labels, difficulties, "TEST")
    assert torch.allclose(first[1], torch.tensor([[0.1, 0.1, 0.6, 0.6]]))
    assert torch.equal(first[2], labels) and torch.equal(first[3], difficulties)
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[0], preprocess(image))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(first[0][:, 150, 150], expected, atol=1e-5)
    # SSD512's input: the same boxes, a 512x512 image.
    image_512, boxes_512, _, _ = transform(image, boxes, labels, difficulties, "TEST", size=512)
    assert image_512.shape == (3, 512, 512) and torch.equal(boxes_512, first[1])
    assert torch.equal(image_512, preprocess(image, 512))


def test_transform_rejects_unknown_split():
    """Only TRAIN and TEST exist."""
    with pytest.raises(ValueError, match="split"):
        transform(Image.new("RGB", (10, 10)), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), "VAL")


# ---------------------------------------------------------------------------------------------------------
# The steps one by one
# ---------------------------------------------------------------------------------------------------------


def test_random_crop_honours_the_minimum_iou_and_the_centre_rule(monkeypatch):
    """With each minimum IoU forced, every crop (read back from a coordinate-coded image) overlaps some
    object by at least that IoU, keeps exactly the objects whose centre is inside, clipped and shifted."""
    width, height = 120, 90
    image = coordinate_image(width, height)
    rng = random.Random(3)
    for min_iou in (0.1, 0.3, 0.5, 0.7, 0.9):
        monkeypatch.setattr(utils, "CROP_MIN_IOU_CHOICES", (min_iou,))
        n_cropped = 0
        for seed in range(60):
            boxes = []
            for _ in range(rng.randint(1, 3)):  # large objects, so that high IoUs are reachable
                x1, y1 = rng.uniform(0, width / 3), rng.uniform(0, height / 3)
                boxes.append([x1, y1, rng.uniform(x1 + width / 2, width), rng.uniform(y1 + height / 2, height)])
            boxes = torch.tensor(boxes)
            labels = torch.arange(1, len(boxes) + 1)
            seed_all(seed)
            crop, kept, kept_labels, _ = random_crop(image, boxes, labels, labels.to(torch.uint8))
            if crop.shape[1:] == (height, width):
                continue  # no window qualified in 50 trials: the image is returned whole
            n_cropped += 1
            left, top = int(crop[0, 0, 0]), int(crop[1, 0, 0])
            window = torch.tensor([[left, top, left + crop.shape[2], top + crop.shape[1]]], dtype=torch.float32)
            assert find_jaccard_overlap(window, boxes).max() >= min_iou
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            inside = ((centres >= window[0, :2]) & (centres <= window[0, 2:])).all(dim=1)
            assert torch.equal(kept_labels, labels[inside])
            expected = torch.cat([boxes[inside, :2].max(window[0, :2]), boxes[inside, 2:].min(window[0, 2:])], 1)
            assert torch.allclose(kept, expected - window[0, :2].repeat(2))
        # High minimum IoUs are met less often (0.9 needs a window nearly equal to an object).
        assert n_cropped >= (1 if min_iou == 0.9 else 30), f"min IoU {min_iou}: only {n_cropped} crops in 60"


def test_random_crop_falls_back_to_the_whole_image_when_no_window_qualifies(monkeypatch):
    """A 2x2 object can never reach IoU 0.9 with a window of at least 30% of the image: no crop at all."""
    monkeypatch.setattr(utils, "CROP_MIN_IOU_CHOICES", (0.9,))
    image = coordinate_image(100, 80)
    boxes = torch.tensor([[50.0, 40.0, 52.0, 42.0]])
    for seed in range(20):
        seed_all(seed)
        crop, kept, labels, _ = random_crop(image, boxes, torch.tensor([1]), torch.tensor([0]))
        assert crop.shape == image.shape and torch.equal(kept, boxes) and labels.tolist() == [1]


def test_random_crop_windows_follow_the_paper_ranges():
    """Sampled windows lie in the image, with side scales 0.3-1 (up to rounding) and aspect 0.5-2."""
    seed_all(0)
    width, height = 200, 100
    windows = utils._sample_crop_windows(width, height, 2000)
    assert (windows[:, :2] >= 0).all() and (windows[:, 2] <= width).all() and (windows[:, 3] <= height).all()
    assert torch.equal(windows, windows.round())
    w_frac = (windows[:, 2] - windows[:, 0]) / width
    h_frac = (windows[:, 3] - windows[:, 1]) / height
    # Area fraction = scale^2 is in [0.09, 1]; aspect (of the fractions) in [0.5, 2].
    area = w_frac * h_frac
    assert area.min() >= 0.09 - 0.02 and area.max() <= 1
    aspect = w_frac / h_frac
    assert aspect.min() >= 0.5 - 0.03 and aspect.max() <= 2 + 0.05
    assert area.min() < 0.15 and area.max() > 0.9  # the whole range is used


def test_zoom_out_places_the_image_on_a_mean_filled_canvas():
    """The original pixels sit where the shifted boxes say, the rest is the mean colour, at most 4x larger."""
    image = coordinate_image(50, 40)
    boxes = torch.tensor([[0.0, 0.0, 50.0, 40.0], [10.0, 5.0, 20.0, 15.0]])
    for seed in range(30):
        seed_all(seed)
        canvas, moved = zoom_out(image, boxes)
        _, canvas_height, canvas_width = canvas.shape
        assert 40 <= canvas_height <= 160 and 50 <= canvas_width <= 200
        left, top = int(moved[0, 0]), int(moved[0, 1])
        assert torch.equal(moved - boxes, torch.tensor([[left, top, left, top]] * 2, dtype=torch.float32))
        assert torch.equal(canvas[:, top:top + 40, left:left + 50], image)
        fill = torch.tensor(MEAN_FILL_UINT8, dtype=torch.uint8)
        outside = torch.ones(canvas_height, canvas_width, dtype=torch.bool)
        outside[top:top + 40, left:left + 50] = False
        assert (canvas.permute(1, 2, 0)[outside] == fill).all()


def test_mean_fill_normalizes_to_zero():
    """The zoom-out fill is the ImageNet mean, so after normalization the canvas is (nearly) zero."""
    assert torch.allclose(utils.normalize(torch.tensor(MEAN_FILL_UINT8, dtype=torch.uint8).view(3, 1, 1)),
                          torch.zeros(3, 1, 1), atol=0.01)


def test_horizontal_flip_moves_boxes_with_the_pixels():
    """The flipped box covers the flipped pixels, and flipping twice restores both."""
    image = coordinate_image(60, 30)
    boxes = torch.tensor([[5.0, 2.0, 15.0, 12.0]])
    flipped, flipped_boxes = horizontal_flip(image, boxes)
    assert torch.equal(flipped_boxes, torch.tensor([[45.0, 2.0, 55.0, 12.0]]))
    assert int(flipped[0, 0, 45]) == 14 and int(flipped[0, 0, 54]) == 5  # x of the original pixels
    twice, twice_boxes = horizontal_flip(flipped, flipped_boxes)
    assert torch.equal(twice, image) and torch.equal(twice_boxes, boxes)


def test_photometric_distort_changes_colours_only():
    """Same size and mode; some seeds change the pixels; a grey image stays grey (hue and saturation
    leave grey alone, brightness and contrast keep it grey)."""
    colourful = Image.new("RGB", (24, 16), (200, 60, 30))
    grey = Image.new("RGB", (24, 16), (120, 120, 120))
    n_changed = 0
    for seed in range(40):
        seed_all(seed)
        out = photometric_distort(colourful)
        assert out.size == colourful.size and out.mode == "RGB"
        n_changed += out.tobytes() != colourful.tobytes()
        seed_all(seed)
        r, g, b = photometric_distort(grey).split()
        assert r.tobytes() == g.tobytes() == b.tobytes()
    # Each of 4 distortions has probability 0.5, so all 4 are skipped for about 1 seed in 16.
    assert 25 <= n_changed < 40


# ---------------------------------------------------------------------------------------------------------
# The fast TRAIN path (fast_augment.augment_train, what the data loader runs) against utils.transform's chain
# ---------------------------------------------------------------------------------------------------------


def textured_scene(rng):
    """A VOC-like small photo stand-in (60-140 px a side): smooth random colours plus pixel noise, 1-3 boxes.

    :return: PIL image, boxes (n, 4), labels (n), difficulties (n)
    """
    width, height = rng.randint(60, 140), rng.randint(60, 140)
    generator = torch.Generator().manual_seed(rng.randint(0, 10 ** 6))
    coarse = torch.randint(0, 256, (3, height // 8 + 2, width // 8 + 2), generator=generator, dtype=torch.uint8)
    smooth = utils.TF.resize(coarse, [height, width], antialias=False).float()
    noisy = (smooth + 12 * torch.randn(smooth.shape, generator=generator)).clamp(0, 255).to(torch.uint8)
    image = utils.TF.to_pil_image(noisy)
    boxes = []
    for _ in range(rng.randint(1, 3)):
        x1, y1 = rng.uniform(0, width - 10), rng.uniform(0, height - 10)
        boxes.append([x1, y1, rng.uniform(x1 + 5, width), rng.uniform(y1 + 5, height)])
    labels = torch.arange(1, len(boxes) + 1)
    return image, torch.tensor(boxes), labels, (labels % 2).to(torch.uint8)


def both_paths(scene, seed, **keywords):
    """(augment_train output, utils.transform TRAIN output, the next draws of both generators after each)."""
    outputs = []
    for chain in (fast_augment.augment_train, functools.partial(utils.transform, split="TRAIN")):
        seed_all(seed)
        out = chain(*scene, **keywords)
        outputs.append((out, random.random(), float(torch.rand(1))))
    return outputs


def test_fast_path_without_photometric_equals_the_reference_exactly(monkeypatch):
    """Zoom-out, crop, flip and resize: for the same seed, the fast path's boxes, labels and difficulties equal
    the reference's exactly, its pixels equal them up to float rounding of the normalization (< 1e-4 of a
    grey level), and both consume the same random draws (the generators end in the same state)."""
    monkeypatch.setattr(utils, "PHOTOMETRIC_PROBABILITY", 0.0)
    rng = random.Random(4)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    n_zoomed_windows = 0
    for seed in range(120):
        scene = textured_scene(rng) if seed % 2 else random_scene(rng)
        (fast, *fast_next), (reference, *reference_next) = both_paths(scene, seed)
        assert fast_next == reference_next, seed
        for a, b in zip(fast[1:], reference[1:]):
            assert torch.equal(a, b), seed
        assert fast[0].shape == reference[0].shape == (3, 300, 300) and fast[0].is_contiguous()
        assert ((fast[0] - reference[0]) * std).abs().max() < 1e-4, seed
        n_zoomed_windows += bool((unnormalize(fast[0]).round() == torch.tensor(MEAN_FILL_UINT8).view(3, 1, 1))
                                 .all(dim=0).any())
    assert n_zoomed_windows > 20  # the mean-filled (zoomed-out) case was exercised


def test_fast_path_with_photometric_stays_close_to_the_reference():
    """With the distortions on 300x300 instead of the whole image: boxes still exact; pixels differ only by
    rounding and by clipping that no longer commutes with the resampling. Measured on textured scenes:
    mean |difference| over all pixels below 1 grey level (of 255), and below 3 for every image."""
    rng = random.Random(5)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    differences = []
    for seed in range(60):
        scene = textured_scene(rng)
        (fast, *fast_next), (reference, *reference_next) = both_paths(scene, seed)
        assert fast_next == reference_next, seed
        for a, b in zip(fast[1:], reference[1:]):
            assert torch.equal(a, b), seed
        difference = ((fast[0] - reference[0]) * std).abs()
        assert difference.mean() < 3, (seed, float(difference.mean()))
        differences.append(difference.mean())
    assert torch.stack(differences).mean() < 1


def test_fast_path_follows_the_reference_for_every_setting_a_checkpoint_can_name(monkeypatch):
    """size, mean, std, antialias and normalized reach both chains alike: without the photometric step, SSD512's
    side, torchvision's COCO normalization (0-255 values minus the mean) and resizing without antialiasing give
    the reference's boxes exactly and its uint8 pixels exactly (normalized=False), its floats to rounding."""
    monkeypatch.setattr(utils, "PHOTOMETRIC_PROBABILITY", 0.0)
    settings = {"size": 512, "mean": (0.48235, 0.45882, 0.40784), "std": (1 / 255, 1 / 255, 1 / 255),
                "antialias": False}
    rng = random.Random(12)
    for seed in range(30):
        scene = textured_scene(rng)
        for normalized in (False, True):
            (fast, *fast_next), (reference, *reference_next) = both_paths(scene, seed, normalized=normalized,
                                                                          **settings)
            assert fast_next == reference_next, seed
            for a, b in zip(fast[1:], reference[1:]):
                assert torch.equal(a, b), seed
            assert fast[0].shape == reference[0].shape == (3, 512, 512)
            if normalized:
                assert fast[0].dtype == torch.float32 and (fast[0] - reference[0]).abs().max() < 1e-3, seed
            else:
                assert fast[0].dtype == torch.uint8 and torch.equal(fast[0], reference[0]), seed


def test_resample_window_equals_cutting_a_mean_filled_canvas():
    """resample_window(image, window) == resize(window cut from the image on a mean-filled canvas), exactly,
    for windows inside, across and outside the image; the reported covered rectangle bounds the non-fill."""
    rng = random.Random(6)
    fill = torch.tensor(MEAN_FILL_UINT8, dtype=torch.uint8).view(3, 1, 1)
    for trial in range(40):
        width, height = rng.randint(20, 90), rng.randint(20, 90)
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(trial))
        if trial % 2:  # stored pixel by pixel, as the data loader decodes (read in place, not copied)
            image = image.permute(1, 2, 0).contiguous().permute(2, 0, 1)
        margin = 3 * max(width, height)
        left, top = rng.randint(-margin, width - 1), rng.randint(-margin, height - 1)
        window = (left, top, left + rng.randint(1, margin), top + rng.randint(1, margin))
        pad_left, pad_top = max(0, -window[0]), max(0, -window[1])
        canvas = fill.expand(3, pad_top + max(height, window[3]), pad_left + max(width, window[2])).clone()
        canvas[:, pad_top:pad_top + height, pad_left:pad_left + width] = image
        cut = canvas[:, window[1] + pad_top:window[3] + pad_top, window[0] + pad_left:window[2] + pad_left]
        expected = utils.TF.resize(cut, [50, 50], antialias=True)
        out, covered = fast_augment.resample_window(image, window, 50)
        assert torch.equal(out, expected), (trial, window)
        outside = torch.ones(50, 50, dtype=torch.bool)
        if covered is not None:
            x0, y0, x1, y1 = covered
            outside[y0:y1, x0:x1] = False
        assert (out.permute(1, 2, 0)[outside] == fill.view(3)).all(), (trial, window, covered)


def test_resize_uint8_is_torchvisions_resize_without_the_dispatch():
    """_resize_uint8 (the TRAIN path's resizes) gives TF.resize's bytes in TF.resize's memory layout: for images
    stored pixel by pixel, channel by channel and for windows cut out of either, shrinking and enlarging, with and
    without antialiasing, one-row and one-column windows and one-channel images included; an image already the
    asked size comes back as it is, as from TF.resize."""
    generator = torch.Generator().manual_seed(11)
    planar = torch.randint(0, 256, (3, 61, 83), dtype=torch.uint8, generator=generator)
    pixel_by_pixel = planar.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    windows = (planar[:, 5:40, 7:70], pixel_by_pixel[:, 3:59, 2:31],
               pixel_by_pixel[:, 4:5, 1:40], pixel_by_pixel[:, 2:50, 6:7], planar[:, 9:10, :])  # one row / column
    for image in (planar, pixel_by_pixel, *windows, pixel_by_pixel[:1], pixel_by_pixel[:1, 7:8, 3:30]):
        for height, width in ((30, 30), (20, 77), (90, 45), (image.shape[1], 17)):
            for antialias in (True, False):
                expected = utils.TF.resize(image, [height, width], antialias=antialias)
                ours = fast_augment._resize_uint8(image, height, width, antialias)
                assert torch.equal(ours, expected), (image.stride(), height, width, antialias)
                assert ours.stride() == expected.stride(), (image.stride(), height, width, antialias)
        assert fast_augment._resize_uint8(image, *image.shape[1:]) is image


def test_photometric_kernels_match_pillow():
    """The OpenCV kernels of the fast path against Pillow's (torchvision's PIL kernels, the reference's):
    brightness and contrast give Pillow's bytes exactly, saturation within one level (and the same bytes for
    more than 99% of them), hue within Pillow's own 8-bit HSV rounding, shifted the same way; greys stay grey."""
    generator = torch.Generator().manual_seed(7)
    pixels = torch.randint(0, 256, (40, 50, 3), dtype=torch.uint8, generator=generator).numpy()
    image = utils.TF.to_pil_image(torch.from_numpy(pixels).permute(2, 0, 1))
    for name, factors in (("brightness", (0.88, 1.12)), ("contrast", (0.5, 1.5)), ("saturation", (0.5, 1.5))):
        for factor in factors:
            expected = np.asarray(utils._PIL_PHOTOMETRIC[name](image, factor)).astype(int)
            ours = fast_augment._distort(pixels.copy(), [(name, factor)]).astype(int)
            if name == "saturation":
                assert np.abs(ours - expected).max() <= 1 and (ours == expected).mean() > 0.99, factor
            else:
                assert np.array_equal(ours, expected), (name, factor)
    grid = torch.stack(torch.meshgrid(*[torch.arange(0, 256, 15)] * 3, indexing="ij")).reshape(3, 1, -1)
    grid = grid.permute(1, 2, 0).to(torch.uint8).numpy()  # (1, 5832, 3): every 15th level of each channel
    grey = (grid[..., 0] == grid[..., 1]) & (grid[..., 1] == grid[..., 2])
    for factor in (-0.05, -0.02, 0.03, 0.05):
        expected = np.asarray(utils.TF.adjust_hue(Image.fromarray(grid), factor)).astype(int)
        ours = fast_augment._distort(grid.copy(), [("hue", factor)])
        # Both round through 8-bit HSV; the shift itself moves pixels far more than the two roundings differ.
        assert np.abs(ours - expected).mean() < 1.5, factor
        assert np.abs(ours - expected).mean() < 0.2 * np.abs(grid.astype(int) - expected).mean(), factor
        assert np.array_equal(ours[grey], grid[grey])


def test_consecutive_brightness_and_contrast_give_pillows_bytes():
    """Brightness then contrast (the Caffe order's first two) run as one composed table: still Pillow's bytes
    of the two steps one after the other, the contrast blending towards the grey mean it is given."""
    generator = torch.Generator().manual_seed(9)
    pixels = torch.randint(0, 256, (40, 50, 3), dtype=torch.uint8, generator=generator).numpy()
    image = utils.TF.to_pil_image(torch.from_numpy(pixels).permute(2, 0, 1))
    for brightness, contrast in ((0.88, 1.5), (1.12, 0.5), (1.1, 1.3)):
        brightened = utils._PIL_PHOTOMETRIC["brightness"](image, brightness)
        expected = np.asarray(utils._PIL_PHOTOMETRIC["contrast"](brightened, contrast))
        grey = int(np.asarray(brightened.convert("L")).mean() + 0.5)  # Pillow's own grey mean
        for grey_mean in (None, grey):
            ours = fast_augment._distort(pixels.copy(), [("brightness", brightness), ("contrast", contrast)], grey_mean)
            assert np.array_equal(ours, expected), (brightness, contrast, grey_mean)


def test_distortions_change_only_the_rectangle_they_are_given():
    """_distort works in place on a view: the fast path distorts the covered rectangle of the 300x300 result and
    nothing else (the mean-coloured fill around a zoomed-out image stays exactly the fill)."""
    generator = torch.Generator().manual_seed(8)
    pixels = torch.randint(0, 256, (60, 70, 3), dtype=torch.uint8, generator=generator).numpy()
    operations = [("brightness", 1.1), ("contrast", 0.7), ("saturation", 1.3), ("hue", 0.04)]
    out = pixels.copy()
    fast_augment._distort(out[10:40, 20:50], operations, grey_mean=100)
    expected = fast_augment._distort(np.ascontiguousarray(pixels[10:40, 20:50]), operations, grey_mean=100)
    assert np.array_equal(out[10:40, 20:50], expected)
    out[10:40, 20:50] = pixels[10:40, 20:50]
    assert np.array_equal(out, pixels)
    assert not np.array_equal(expected, pixels[10:40, 20:50])


def test_contrast_grey_mean_is_not_fooled_by_stripes():
    """The grey level contrast blends towards is measured on a reduced copy; an antialiased reduction keeps the
    mean of stripes whose period divides the reduction factor (a copy that skips pixels measured 255 here)."""
    stripes = torch.zeros(3, 512, 512, dtype=torch.uint8)
    columns = torch.arange(512) % 8
    stripes[:, :, (columns >= 3) & (columns <= 4)] = 255  # true mean grey 63.75
    assert abs(fast_augment._grey_mean_before_contrast(stripes, [("contrast", 1.5)]) - 63.75) <= 1
    brighter = fast_augment._grey_mean_before_contrast(stripes, [("brightness", 1.1), ("contrast", 1.5)])
    assert abs(brighter - 63.75 * 1.1) <= 1.5


def test_fast_path_never_writes_into_the_callers_image(monkeypatch):
    """A 300x300 window of a 300-wide image needs no resampling: the resampler hands back a view of the caller's
    image, which the photometric step must not distort in place."""
    pixels = torch.randint(0, 256, (400, 300, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    image = pixels.permute(2, 0, 1)  # (3, H, W) view of (H, W, 3) memory, as the dataset reads images
    before = image.clone()
    boxes = torch.tensor([[20.0, 80.0, 200.0, 300.0]])
    monkeypatch.setattr(fast_augment, "ZOOM_OUT_PROBABILITY", 0.0)
    monkeypatch.setattr(fast_augment, "_draw_photometric", lambda: [("brightness", 1.12)])
    monkeypatch.setattr(fast_augment, "_draw_crop", lambda width, height, boxes_np, *rest: (
        (0, 50, 300, 350), np.ones(len(boxes_np), dtype=bool), boxes_np - np.float32([0, 50, 0, 50])))
    out, *_ = fast_augment.augment_train(image, boxes, torch.tensor([1]), torch.zeros(1, dtype=torch.uint8))
    assert torch.equal(image, before)
    expected = fast_augment._blend_table(0, 1.12)[before[:, 50:350].numpy()]
    assert torch.allclose(unnormalize(out).round(), torch.from_numpy(expected).float(), atol=1e-3)


def test_image_tensors_of_any_kind_are_taken_as_before():
    """Float [0, 1], one-channel and four-channel tensors go through TF.to_pil_image, as they always did: the TEST
    path gives what the same image gives as a PIL image."""
    generator = torch.Generator().manual_seed(4)
    rgb = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=generator)
    cases = {"float": rgb.float() / 255, "grey": rgb[:1], "rgba": torch.cat([rgb, rgb[:1]])}
    for name, tensor in cases.items():
        expected = transform(utils.TF.to_pil_image(tensor), torch.zeros(0, 4), [], [], "TEST")[0]
        assert torch.equal(transform(tensor, torch.zeros(0, 4), [], [], "TEST")[0], expected), name


def test_random_crop_keeps_the_boxes_dtype():
    """float64 boxes stay float64 whether or not the crop happens."""
    image = torch.zeros(3, 100, 120, dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 10.0, 90.0, 80.0]], dtype=torch.float64)
    dtypes = set()
    for seed in range(20):
        seed_all(seed)
        dtypes.add(random_crop(image, boxes, torch.tensor([1]), torch.tensor([0]))[1].dtype)
    assert dtypes == {torch.float64}


# Each part switched off (train.py --no-photometric, --no-zoom-out, --no-crop, --no-flip), then all but one.
ONE_OFF = [tuple(s for s in utils.AUGMENTATION_STEPS if s != off) for off in utils.AUGMENTATION_STEPS]
ONE_ON = [(step,) for step in utils.AUGMENTATION_STEPS]


@pytest.mark.parametrize("steps", ONE_OFF + ONE_ON, ids=lambda steps: "+".join(steps))
def test_fast_path_equals_the_reference_with_each_part_switched_off(steps):
    """The same boxes, labels and random draws as the reference chain given the same parts; the pixels equal to
    rounding without the photometric step, within test_fast_path_with_photometric_stays_close_to_the_reference's
    bounds with it. A part left out draws nothing: the chain without it draws differently from the full one."""
    rng = random.Random(21)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    differs_from_full_chain = 0
    for seed in range(8):
        scene = textured_scene(rng)
        (fast, *fast_next), (reference, *reference_next) = both_paths(scene, seed, steps=steps)
        assert fast_next == reference_next, seed
        for a, b in zip(fast[1:], reference[1:]):
            assert torch.equal(a, b), seed
        difference = ((fast[0] - reference[0]) * std).abs()
        assert difference.max() < 1e-4 if "photometric" not in steps else difference.mean() < 3, seed
        (full, *full_next), _ = both_paths(scene, seed)
        differs_from_full_chain += full_next != fast_next
    assert differs_from_full_chain > 0


def test_no_part_at_all_is_the_test_transform(toy_data_folder):
    """steps=() in the reference chain is the TEST transform exactly; PascalVOCDataset with augment_steps=() (train.py
    with all four --no-* switches) takes the TEST path itself, so its items equal --no-augment's bit for bit."""
    from datasets import PascalVOCDataset

    rng = random.Random(3)
    for seed in range(4):
        scene = textured_scene(rng)
        seed_all(seed)
        reference = utils.transform(*scene, "TRAIN", steps=())
        test = transform(*scene, "TEST")
        assert all(torch.equal(a, b) for a, b in zip(reference, test))
    none = PascalVOCDataset(toy_data_folder, "TRAIN", augment=True, augment_steps=(), normalized=False)
    unaugmented = PascalVOCDataset(toy_data_folder, "TRAIN", augment=False, normalized=False)
    for index in range(2):
        seed_all(index)
        first = none[index]
        seed_all(index + 100)
        assert all(torch.equal(a, b) for a, b in zip(first, unaugmented[index]))
