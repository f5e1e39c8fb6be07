"""images.load_image_array, the data loader's reader: the pixels of images.load_image, as a tensor, for every kind
of file, and the fast TRAIN path gives the same result from it as from the PIL image."""

import os
import random
import re

import numpy as np
import pytest
import torch
from PIL import Image

import utils
from datasets import PascalVOCDataset, load_image_tensor
from ssd_support import images
from ssd_support.fast_augment import augment_train
from ssd_support.images import UnreadableImageError, load_image, load_image_array
from ssd_support.toy_data import photo_like_pixels


def photo_like(height, width, seed):
    """toy_data.photo_like_pixels from a seed: uint8 (H, W, 3)."""
    return photo_like_pixels(np.random.default_rng(seed), height, width)


def write_files(folder):
    """One file of each kind the loader meets; returns {name: path}."""
    pixels = photo_like(61, 83, seed=0)  # odd sizes: partial JPEG blocks and chroma pairs at the edges
    paths = {}

    def save(name, image, **options):
        paths[name] = str(folder / name)
        image.save(paths[name], **options)

    for subsampling in (0, 1, 2):  # 4:4:4, 4:2:2, 4:2:0
        save(f"sub{subsampling}.jpg", Image.fromarray(pixels), quality=90, subsampling=subsampling)
    save("progressive.jpg", Image.fromarray(pixels), quality=90, progressive=True)
    save("grey.jpg", Image.fromarray(pixels).convert("L"), quality=90)
    save("cmyk.jpg", Image.fromarray(pixels).convert("CMYK"), quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers turn it upright
    save("rotated.jpg", Image.fromarray(pixels), quality=90, exif=exif)
    save("plain.png", Image.fromarray(pixels))
    save("sixteen.png", Image.fromarray((pixels[..., 0].astype(np.uint16) * 200)))
    return paths


def test_array_reader_gives_the_pixels_of_the_one_loader_for_every_kind_of_file(tmp_path):
    """Byte for byte what load_image gives (decoded by libjpeg-turbo through torchvision for plain colour JPEGs,
    through Pillow for the others), upright, writable (H, W, 3) arrays."""
    for name, path in write_files(tmp_path).items():
        expected = np.asarray(load_image(path))
        array = load_image_array(path)
        assert array.dtype == np.uint8 and array.shape == expected.shape and array.flags.writeable, name
        assert np.array_equal(array, expected), name
        assert array.flags.c_contiguous, name
    assert load_image_array(str(tmp_path / "rotated.jpg")).shape == (83, 61, 3)


def test_jpeg_with_bytes_after_its_end_marker_is_read_as_pillow_reads_it(tmp_path):
    """Some cameras append data after the image: the file does not end with the end-of-image marker, and goes
    through Pillow, which reads it."""
    path = tmp_path / "trailer.jpg"
    Image.fromarray(photo_like(40, 50, seed=3)).save(path, quality=90)
    path.write_bytes(path.read_bytes() + b"camera maker notes")
    assert np.array_equal(load_image_array(str(path)), np.asarray(load_image(str(path))))


def test_array_reader_refuses_a_broken_file_in_one_line_naming_it(tmp_path):
    """A truncated JPEG, a JPEG with garbage in the middle (it still ends with its end marker), a file that is not
    an image, and a missing file: UnreadableImageError naming the file, as load_image raises."""
    good = tmp_path / "good.jpg"
    Image.fromarray(photo_like(100, 120, seed=1)).save(good, quality=90)
    data = good.read_bytes()
    for fraction in (0.3, 0.9):
        truncated = tmp_path / f"cut{fraction}.jpg"
        truncated.write_bytes(data[:int(len(data) * fraction)])
        with pytest.raises(UnreadableImageError, match=f"^{truncated}: unreadable image"):
            load_image_array(str(truncated))
    rng = np.random.default_rng(0)
    n_refused = 0
    for trial in range(6):
        corrupt = tmp_path / f"corrupt{trial}.jpg"
        damaged = bytearray(data)
        middle = len(damaged) // 2
        damaged[middle:middle + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
        corrupt.write_bytes(bytes(damaged))
        try:
            load_image(str(corrupt))
        except UnreadableImageError as error:
            n_refused += 1
            with pytest.raises(UnreadableImageError) as refused:
                load_image_array(str(corrupt))
            assert str(refused.value) == str(error)
        else:  # Pillow reads some damaged files without complaint; then both give the same pixels
            assert np.array_equal(load_image_array(str(corrupt)), np.asarray(load_image(str(corrupt))))
    assert n_refused >= 2  # the refusing case was exercised
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(UnreadableImageError, match=f"^{text}: not an image"):
        load_image_array(str(text))
    gone = tmp_path / "gone.jpg"
    with pytest.raises(UnreadableImageError, match=f"^{re.escape(str(gone))}: no such file$"):
        load_image_array(str(gone))


def test_fast_train_path_gives_the_same_result_from_the_tensor_as_from_the_pil_image(tmp_path):
    """augment_train on the dataset's tensor (load_image_array's memory) equals augment_train on load_image's PIL image, for the same
    draws: pixels, boxes, labels."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo_like(150, 200, seed=2)).save(path, quality=90)
    boxes = torch.tensor([[20.0, 30.0, 120.0, 140.0], [100.0, 10.0, 190.0, 80.0]])
    labels, difficulties = torch.tensor([1, 2]), torch.zeros(2, dtype=torch.uint8)
    for seed in range(12):
        outputs = []
        for image in (load_image_tensor(str(path)), load_image(str(path))):
            random.seed(seed)
            torch.manual_seed(seed)
            outputs.append(augment_train(image, boxes, labels, difficulties))
        for a, b in zip(*outputs):
            assert torch.equal(a, b), seed


def test_dataset_items_are_unchanged_by_the_tensor_reader(tmp_path, toy_data_folder):
    """A TEST item of the dataset (read through load_image_array) is exactly transform() of load_image's image."""
    dataset = PascalVOCDataset(toy_data_folder, "TEST")
    for i in range(2):
        image, boxes, labels, difficulties = dataset[i]
        expected = utils.transform(load_image(dataset.images[i]), *dataset.load_objects(i), "TEST")
        assert torch.equal(image, expected[0]) and torch.equal(boxes, expected[1])


def test_a_fifo_named_like_an_image_is_refused_without_waiting_for_a_writer(tmp_path, time_limit):
    """Issue 32: opening a FIFO waits for a writer forever; every reader of the one loader refuses it in one line."""
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    for read in (images.load_image, images.load_image_array, images.image_size_and_frames):
        with time_limit(10), pytest.raises(images.UnreadableImageError) as error:
            read(str(fifo))
        assert str(error.value) == f"{fifo}: not a regular file (a FIFO, socket or device); not read"


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    """Issue 32: a PNG of a few KB that decodes to ~90 megapixels (270 MB in RGB; detect.py held a batch of eight)
    is refused before its pixels are decoded, in one line naming the file and the limit."""
    from ssd_support.limits import MAX_IMAGE_PIXELS

    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # 1 bit per pixel: ~11 MB while writing, ~11 KB on disk
    assert path.stat().st_size < 100_000
    for read in (images.load_image, images.load_image_array, images.image_size_and_frames):
        with pytest.raises(images.UnreadableImageError) as error:
            read(str(path))
        message = str(error.value)
        assert message.startswith(f"{path}: {side}x{side} pixels") and f"{MAX_IMAGE_PIXELS:,}" in message
        assert "\n" not in message
    just_under = tmp_path / "large.png"
    Image.new("1", (side - 1, side - 1)).save(just_under)
    assert images.image_size(str(just_under)) == (side - 1, side - 1)
