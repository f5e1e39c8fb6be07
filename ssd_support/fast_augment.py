"""The fast TRAIN path: ``augment_train``, the paper's augmentation chain of ``utils.transform`` in one resample.

What it is: the same random draws as ``utils.transform(..., "TRAIN")`` (it calls utils' own ``_draw_photometric``,
``_draw_zoom_out`` and ``_draw_crop``, in the same order, with the same constants), the same boxes, labels and
difficulties bit for bit, and pixels within the bounds tests/test_fast_augment.py states (equal up to float rounding
without the photometric distortions; with them, below one grey level on average and three on any image).

Why it exists: speed. A data loader worker runs it several times faster than the chain written step by step on
whole images, decoding included (bench/bench_transforms.py prints the ratio), so that the loader keeps up with
the network. ``datasets.PascalVOCDataset`` uses it for TRAIN unless ``reference_augment=True``.
"""

import random

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from utils import (AUGMENTATION_STEPS, FLIP_PROBABILITY, IMAGENET_MEAN, IMAGENET_STD, MEAN_FILL_UINT8, SSD_INPUT_SIZE,
                   ZOOM_OUT_PROBABILITY, _as_uint8_tensor, _draw_crop, _draw_photometric, _draw_zoom_out,
                   _flip_boxes)

# ---- The fast TRAIN path ----
#
# utils' chain, written step by step on whole images, is the reference (``utils.transform``, TRAIN). A data
# loader worker runs the same chain several times faster, decoding included (bench/bench_transforms.py), by
# changing only where the pixel work is done, not what is drawn:
# 1. every random parameter is drawn first, in the reference's order, from the image *size* alone;
# 2. zoom-out and crop compose into one window in the original image's coordinates (it may reach outside the
#    image, where the canvas is the mean colour); only the final size x size image is resampled, with the same
#    antialiased bilinear kernel, never the up-to-4x canvas: the rows and columns outside the image are a fill;
# 3. the photometric distortions run on the size x size result, in uint8, only on the pixels the image covers,
#    with OpenCV's kernels on (H, W, 3) memory; contrast blends towards the grey mean of the *whole* image, as in
#    the reference (measured on a reduced copy);
# 4. the flip mirrors the size x size result.
# Brightness, contrast, saturation and hue act on each pixel alone, so they commute with the resampling up to
# uint8 rounding (and clipping at 0 / 255); tests/test_fast_augment.py measures the difference against the reference.
# Brightness and contrast are exactly Pillow's bytes (a lookup table of its arithmetic), saturation within one
# level of them, and hue goes through 8-bit HSV as Pillow's does, with OpenCV's rounding instead of Pillow's.


def _blend_table(grey, factor):
    """Pillow's ``Image.blend(constant grey image, image, factor)`` as a table of its 256 results.

    Pillow computes grey + factor * (value - grey) in float32, clips to [0, 255] and truncates; ImageEnhance's
    brightness is this blend with grey 0, its contrast the blend with the image's mean grey level. A value map,
    so one table lookup per byte (``cv2.LUT``) gives Pillow's bytes exactly.

    :param grey: the constant grey level, 0-255
    :param factor: the blend factor (1: the image unchanged)
    :return: numpy uint8 (256,), the output for each input byte
    """
    values, grey = np.arange(256, dtype=np.float32), np.float32(grey)
    return np.clip(grey + np.float32(factor) * (values - grey), 0, 255).astype(np.uint8)


def _mean_grey(pixels):
    """The image's mean grey level (ITU-R 601-2 luma) rounded to an integer, as ImageEnhance.Contrast takes it.

    :param pixels: uint8 RGB array (H, W, 3), or a view of one
    :return: an int 0-255
    """
    return int(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).mean() + 0.5)


def _saturate(pixels, factor):
    """ImageEnhance.Color: blend each pixel with its own grey level, in place; within one level of Pillow's bytes.

    :param pixels: uint8 RGB array (H, W, 3), or a view of one; overwritten
    :param factor: 0 makes the image grey, 1 leaves it, above 1 saturates
    """
    grey = cv2.cvtColor(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    # OpenCV rounds where Pillow truncates: -0.499 turns the rounding into truncation (but for values within
    # 0.001 below an integer, about 1 byte in 2000).
    cv2.addWeighted(pixels, factor, grey, 1 - factor, -0.499, dst=pixels)


def _rotate_hue(pixels, hue_factor):
    """torchvision's adjust_hue, in place: to 8-bit HSV, hue shifted by ``int(hue_factor * 255)``, back to RGB.

    Hue is in 256ths of a turn and wraps around, as in Pillow's HSV; OpenCV's conversions round differently from
    Pillow's (mean difference about one level; each round trip alone moves pixels by about half a level).

    :param pixels: uint8 RGB array (H, W, 3), or a view of one; overwritten
    :param hue_factor: the hue shift in turns, in [-0.5, 0.5]
    """
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] += np.uint8(int(hue_factor * 255) % 256)  # uint8 arithmetic wraps: the hue circle
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL, dst=pixels)


def _distort(pixels, operations, grey_mean=None):
    """Apply the drawn photometric distortions, in their order, to a uint8 RGB array in place.

    Brightness and contrast are value maps, so consecutive ones compose into one table: one pass over the
    pixels for both, with the same bytes as two (not when contrast measures its own grey mean, ``grey_mean``
    None: the pixels must be brightened first).

    :param pixels: uint8 RGB array (H, W, 3), or a view of one (a rectangle of a larger image); overwritten
    :param operations: the (name, factor) list of _draw_photometric
    :param grey_mean: the grey level contrast blends towards; None: this image's own (Pillow's rule)
    :return: ``pixels``
    """
    table = None  # the value map of the brightness / contrast steps not yet applied
    for name, factor in operations:
        if name == "contrast" and grey_mean is None and table is not None:
            cv2.LUT(pixels, table, dst=pixels)  # its own mean: of the pixels as they are now
            table = None
        if name in ("brightness", "contrast"):
            grey = 0 if name == "brightness" else (_mean_grey(pixels) if grey_mean is None else grey_mean)
            step = _blend_table(grey, factor)
            table = step if table is None else step[table]
            continue
        if table is not None:
            cv2.LUT(pixels, table, dst=pixels)
            table = None
        if name == "saturation":
            _saturate(pixels, factor)
        else:
            _rotate_hue(pixels, factor)
    if table is not None:
        cv2.LUT(pixels, table, dst=pixels)
    return pixels


def _grey_mean_before_contrast(image, operations):
    """The grey level contrast blends towards: the mean of the whole image after the distortions before it.

    Pillow rounds this mean to an integer; measuring it on a copy reduced to 64-127 pixels a side changes it by
    about one grey level at most. The reduction is the antialiased resampler of the TRAIN path: a copy that
    skips pixels (nearest or plain bilinear sampling) would alias, and on stripes or a fence whose period divides
    the reduction factor it measures a mean that is far off.

    :param image: the whole image, uint8 RGB tensor (3, H, W)
    :param operations: the (name, factor) list of _draw_photometric
    :return: an int 0-255
    """
    _, height, width = image.shape
    factor = max(1, min(height, width) // 64)
    if factor > 1:
        image = _resize_uint8(image, height // factor, width // factor)
    small = np.array(image.permute(1, 2, 0).numpy(), order="C")  # a copy: _distort works in place
    before = operations[:[name for name, _ in operations].index("contrast")]
    return _mean_grey(_distort(small, before))


def _covered_outputs(first, last, in_size, out_size, antialias=True):
    """The output pixels whose antialiased bilinear footprint touches input pixels [first, last).

    The footprint of output pixel j is that of torch's (and Pillow's) resampler: centre (j + 0.5) * scale,
    half-width max(scale, 1) input pixels, scale = in_size / out_size.

    :return: (start, stop), the output range touched (start == stop: none)
    """
    scale = in_size / out_size
    support = max(scale, 1.0) if antialias else 1.0  # without antialiasing, plain bilinear: 1 pixel each side
    centres = (np.arange(out_size) + 0.5) * scale
    lows = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    highs = np.minimum((centres + support + 0.5).astype(np.int64), in_size)
    touched = np.nonzero((lows < last) & (highs > first))[0]
    return (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, 0)


def _fill_buffer(height, width):
    """A uint8 (3, height, width) image of the mean colour, stored pixel by pixel (channels last, as PIL's and
    as torch's uint8 resampler wants it)."""
    # bytearray repetition is a memcpy; a broadcast tensor copy of a 3-vector is 20x slower here.
    data = bytearray(bytes(MEAN_FILL_UINT8)) * (height * width)
    return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)


def _pad_with_fill(pixels, top, bottom, left, right):
    """Surround an image with rows and columns of the mean colour, in (H, W, 3) memory.

    One pass of OpenCV's ``copyMakeBorder`` (the fill and the copy at once; a strided window of a larger image is
    read in place).

    :param pixels: uint8 tensor (3, H, W)
    :param top: rows added above; bottom, left, right likewise
    :return: uint8 tensor (3, top + H + bottom, left + W + right), a view of dense (H', W', 3) memory
    """
    padded = cv2.copyMakeBorder(_hwc_array(pixels), top, bottom, left, right, cv2.BORDER_CONSTANT,
                                value=MEAN_FILL_UINT8)
    return torch.from_numpy(padded).permute(2, 0, 1)


def _hwc_array(pixels):
    """The (H, W, 3) numpy view of a uint8 (3, H, W) tensor, copied only where OpenCV cannot read it in place
    (channels not adjacent in memory, as in a tensor stored channel by channel)."""
    array = pixels.permute(1, 2, 0).numpy()
    return array if array.strides[2] == 1 and array.strides[1] == 3 else np.ascontiguousarray(array)


def _normalize_fast(pixels, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``normalize`` in two passes instead of four: (x - 255 mean) / (255 std), into a contiguous float tensor.

    Equal to ``normalize`` up to float32 rounding (about 1e-6).

    :param pixels: uint8 tensor (3, H, W), any strides
    :param mean: per-channel mean of [0, 1] images (ImageNet's unless a checkpoint names another)
    :param std: per-channel standard deviation
    :return: float32 tensor (3, H, W), contiguous
    """
    mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
    inverse_std = 1 / (torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255)
    out = torch.empty(pixels.shape, dtype=torch.float32)
    return torch.sub(pixels, mean, out=out).mul_(inverse_std)


def _dense_channels_last(pixels):
    """A (3, H, W) view of dense (H, W, 3) memory holding ``pixels``: a copy unless it already is one.

    torch's uint8 antialiased resampler runs its vectorized kernel on dense channels-last memory only; a window
    cut out of an image is not dense (its rows are strided), and would be resampled at about half the speed
    through two layout conversions, which is more than this copy costs.
    """
    return pixels.permute(1, 2, 0).contiguous().permute(2, 0, 1)


def _resize_uint8(pixels, height, width, antialias=True):
    """``TF.resize(pixels, [height, width], antialias=antialias)`` for one uint8 image: the same torch kernel and
    bytes, without torchvision's per-call dispatch (0.03-0.05 ms a call, about two calls an image on the TRAIN path).

    :param pixels: uint8 tensor (3, H, W), any strides (fastest: a view of dense (H, W, 3) memory)
    :return: uint8 tensor (3, height, width) in the layout of ``pixels``; ``pixels`` itself when the size is its own
    """
    channels, in_height, in_width = pixels.shape
    if (in_height, in_width) == (height, width):
        return pixels
    batch = pixels.reshape(1, channels, in_height, in_width)
    if batch.is_contiguous(memory_format=torch.channels_last) and batch.stride(0) != batch.numel():
        # As TF.resize does: a batch stride equal to the image's size makes torch allocate the output channels last
        # like the input, instead of repacking it channel by channel.
        batch = batch.as_strided(batch.shape, (batch.numel(),) + batch.stride()[1:])
    return F.interpolate(batch, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)[0]


def resample_window(pixels, window, size=SSD_INPUT_SIZE, antialias=True):
    """Resample a window of an image, which may reach outside it, to size x size; outside is the mean colour.

    The same pixels as cutting the window out of a mean-filled canvas and resizing it with antialiased
    bilinear interpolation (``TF.resize(..., antialias=True)``), without building the canvas: the resize is
    separable, so the horizontal pass runs on the image rows only (padded with the fill where the window
    reaches left or right of the image), and the vertical pass adds fill rows above and below.

    :param pixels: uint8 image tensor (3, H, W)
    :param window: (left, top, right, bottom) ints in the image's pixel coordinates, right > left, bottom > top
    :param size: side of the output
    :param antialias: low-pass filter when shrinking (True, as this repository trains; a checkpoint converted
        from torchvision's SSD names False)
    :return: uint8 tensor (3, size, size), and (x0, y0, x1, y1): the output rectangle whose pixels depend
        on the image (outside it they are exactly the fill), or None when the window misses the image
    """
    _, height, width = pixels.shape
    left, top, right, bottom = window
    window_width, window_height = right - left, bottom - top
    x0, x1, y0, y1 = max(left, 0), min(right, width), max(top, 0), min(bottom, height)
    if x0 >= x1 or y0 >= y1:  # an "any crop" window of an image without objects can lie on the fill alone
        return _fill_buffer(size, size), None
    if (x0, y0, x1, y1) == (left, top, right, bottom):  # inside the image: one plain resize
        inside = _dense_channels_last(pixels[:, top:bottom, left:right])
        return _resize_uint8(inside, size, size, antialias), (0, 0, size, size)

    rows = pixels[:, y0:y1, x0:x1]
    if x0 > left or x1 < right:
        rows = _pad_with_fill(rows, 0, 0, x0 - left, right - x1)
    else:
        rows = _dense_channels_last(rows)
    if window_width != size:
        rows = _resize_uint8(rows, y1 - y0, size, antialias)
    if y0 > top or y1 < bottom:
        rows = _pad_with_fill(rows, y0 - top, bottom - y1, 0, 0)
    if window_height != size:
        rows = _resize_uint8(rows, size, size, antialias)
    first_x, last_x = _covered_outputs(x0 - left, x1 - left, window_width, size, antialias)
    first_y, last_y = _covered_outputs(y0 - top, y1 - top, window_height, size, antialias)
    return rows, (first_x, first_y, last_x, last_y)


def augment_train(image, boxes, labels, difficulties, size=SSD_INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  antialias=True, normalized=True, steps=AUGMENTATION_STEPS):
    """The TRAIN chain of ``utils.transform``, fast: the same random draws, one resample of the final window.

    Draws, in the order of the reference chain (``utils.transform``): the photometric distortions, the
    zoom-out (p=0.5, up to 4x), the IoU crop, the flip (p=0.5). The boxes go through exactly the reference's
    arithmetic. The pixels: the zoom-out canvas and the crop make one window in the image's coordinates,
    resampled once to size x size (``resample_window``); the distortions then act on the covered pixels; the
    flip mirrors the result. See the comment above ``_blend_table`` for what differs (rounding only).

    :param image: a uint8 RGB tensor (3, H, W) (fastest in (H, W, 3) memory, as ``PascalVOCDataset.load_image``
        gives it), or a PIL image
    :param boxes: float tensor (n_objects, 4), pixel boundary coordinates
    :param labels: int64 tensor (n_objects)
    :param difficulties: uint8 tensor (n_objects)
    :param size: the output side
    :param mean: normalization mean (as ``utils.transform``)
    :param std: normalization standard deviation
    :param antialias: low-pass filter when shrinking the window
    :param normalized: return the normalized float image (True), or its uint8 pixels (False: normalized later,
        on the GPU, as train.py does)
    :param steps: the chain's parts applied, a subset of utils.AUGMENTATION_STEPS (as ``utils.transform``'s)
    :return: image (3, size, size) normalized float (uint8 if not ``normalized``), boxes (n_kept, 4) fractional,
        labels (n_kept), difficulties (n_kept)
    """
    image = _as_uint8_tensor(image)
    operations = _draw_photometric() if "photometric" in steps else []
    _, height, width = image.shape
    # The boxes go through numpy float32: the reference's torch arithmetic, bit for bit, at a tenth of the cost
    # per operation on a handful of numbers.
    boxes_np = boxes.to(torch.float32).numpy()
    canvas_width, canvas_height, left, top = width, height, 0, 0
    if "zoom_out" in steps and random.random() < ZOOM_OUT_PROBABILITY:
        canvas_width, canvas_height, left, top = _draw_zoom_out(width, height)
        boxes_np = boxes_np + np.array([left, top, left, top], dtype=np.float32)
    window, keep = None, None
    if "crop" in steps:
        window, keep, boxes_np = _draw_crop(canvas_width, canvas_height, boxes_np)
    if window is None:
        window = (0, 0, canvas_width, canvas_height)
    else:
        keep = torch.from_numpy(keep)
        labels, difficulties = labels[keep], difficulties[keep]
    window_width, window_height = window[2] - window[0], window[3] - window[1]
    flip = "flip" in steps and random.random() < FLIP_PROBABILITY
    if flip:
        boxes_np = _flip_boxes(boxes_np, window_width)
    boxes = torch.from_numpy(boxes_np / np.array([window_width, window_height] * 2, dtype=np.float32))

    # The window in the image's own coordinates (the image sits at (left, top) of the canvas).
    window_in_image = (window[0] - left, window[1] - top, window[2] - left, window[3] - top)
    resampled, covered = resample_window(image, window_in_image, size, antialias)
    # (size, size, 3): the resampler's output memory as it is (channels last), which OpenCV works in. A copy only
    # where the resampler handed back (a window of) the caller's image itself: a size x size window needs no resize.
    pixels = resampled.permute(1, 2, 0).numpy()
    if resampled.untyped_storage().data_ptr() == image.untyped_storage().data_ptr() or not pixels.flags.c_contiguous:
        pixels = np.array(pixels, order="C")
    if operations and covered is not None:
        x0, y0, x1, y1 = covered
        grey_mean = None
        if any(name == "contrast" for name, _ in operations):
            grey_mean = _grey_mean_before_contrast(image, operations)
        _distort(pixels[y0:y1, x0:x1], operations, grey_mean)
    if flip:
        pixels = cv2.flip(pixels, 1)
    pixels = torch.from_numpy(pixels).permute(2, 0, 1)
    return (_normalize_fast(pixels, mean, std) if normalized else pixels), boxes, labels, difficulties
