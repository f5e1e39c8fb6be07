"""The one image loader of the project: every tool reads image files through :func:`load_image`.

create_data_lists.py (sizes, through :func:`image_size`), training and evaluation (datasets.py), detect.py and
the README's Python examples all see the same pixels: upright as viewers show them (the EXIF orientation
applied), 8-bit RGB (16-bit, 32-bit and float images scaled by their range), and every failure one
``UnreadableImageError`` whose message is one line naming the file. Pillow only at import, no torch, so that
``detect.py --onnx`` runs where torch is not installed (:func:`load_image_array`, the data loader's form of
:func:`load_image`, imports torchvision's JPEG decoder when called).
"""

import os
import stat
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ssd_support.limits import MAX_IMAGE_PIXELS


# The image files taken from a folder (detect.py) or found next to an annotation (create_data_lists.py); compared
# with the lower-cased name, so IMG_0001.JPG counts.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")

# Pillow modes of more than 8 bits per pixel: 16-bit integers (I;16 and its byte orders), 32-bit integers (I)
# and 32-bit floats (F). Pillow's own convert("RGB") clips them at 255, which makes a 16-bit image all white.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I", "F")

# EXIF orientations 5 to 8 turn the image by 90 degrees: the upright width is the stored height.
EXIF_ORIENTATION_TAG = 0x0112
QUARTER_TURN_ORIENTATIONS = (5, 6, 7, 8)

# What Pillow raises on a file it cannot read. DecompressionBombError (an image whose header claims more than
# twice Image.MAX_IMAGE_PIXELS, e.g. a 69-byte PNG saying 20000x20000) is not an OSError; SyntaxError,
# struct.error, EOFError and IndexError come out of some truncated or corrupt files.
PILLOW_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                      Image.DecompressionBombError)


class UnreadableImageError(ValueError):
    """An image file that is missing or cannot be decoded; the message is one line that starts with its path."""


def check_regular_file(path):
    """Refuse a path that is not a regular file before it is opened: opening a FIFO named like an image waits for a
    writer forever, and a device never ends. A symbolic link to a regular file is a regular file.

    :param path: a path (str or os.PathLike); file objects are not checked
    :raises UnreadableImageError: "PATH: not a regular file (a FIFO, socket or device); not read" (a missing path
        is left to the opener, which names it)
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UnreadableImageError(f"{os.fspath(path)}: not a regular file (a FIFO, socket or device); not read")


def _open(path):
    """``Image.open`` (the header only), without Pillow's DecompressionBombWarning: :func:`check_pixel_count` refuses
    such an image in one line right after, at the same threshold (MAX_IMAGE_PIXELS is Pillow's default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def check_pixel_count(path, width, height):
    """Refuse an image of more than MAX_IMAGE_PIXELS pixels (ssd_support/limits.py) from its header, before its
    pixels are decoded: a PNG of 100 KB can decode to 179 megapixels (537 MB in RGB), and detect.py holds a whole
    batch of them.

    :param path: the image file, named in the message
    :param width: its width in pixels
    :param height: its height in pixels
    :raises UnreadableImageError: "PATH: WxH pixels (N), more than the limit of M ..." in one line
    """
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableImageError(
            f"{os.fspath(path)}: {width}x{height} pixels ({width * height:,}), more than the limit of "
            f"{MAX_IMAGE_PIXELS:,} per image (ssd_support.limits.MAX_IMAGE_PIXELS); downscale it first")


def _unreadable(path, error):
    """The UnreadableImageError of ``path`` for a Pillow / OS error: one line, naming the file first."""
    if isinstance(error, FileNotFoundError):
        reason = "no such file"
    elif isinstance(error, IsADirectoryError):
        reason = "is a directory"
    elif isinstance(error, UnidentifiedImageError):
        reason = "not an image (Pillow cannot identify it)"
    else:
        reason = "unreadable image (" + " ".join(str(error).split()) + ")"
    return UnreadableImageError(f"{path}: {reason}")


def to_8bit_rgb(image):
    """Convert a PIL image of any mode to 8-bit RGB, scaling images of more than 8 bits by their range.

    16-bit, 32-bit integer and float images (medical, thermal and depth cameras, scientific TIFFs) are mapped
    linearly from their own minimum..maximum to 0..255 (a flat image becomes 0), so a 16-bit PNG with a
    background of 12000 and an object of 40000 becomes 0 and 255, not all 255 as ``convert("RGB")`` makes it.
    Every other mode (L, P, RGBA, CMYK, ...) goes through Pillow's ``convert("RGB")``.

    :param image: a PIL image, already decoded or not
    :return: a PIL image in RGB mode, of the same size
    """
    if image.mode not in WIDE_MODES:
        return image if image.mode == "RGB" else image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    gray = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0).clip(0, 255).round().astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def load_image(path):
    """Read an image file as viewers show it: upright, in 8-bit RGB. The one loader of the project.

    The EXIF orientation is applied (``ImageOps.exif_transpose``: phone photos are often stored sideways, and
    annotation tools show and label them upright), and images of more than 8 bits are scaled by their range
    (:func:`to_8bit_rgb`). A file that is missing or cannot be decoded, including Pillow's decompression-bomb
    check, raises one error type with a one-line message.

    :param path: an image file (str or os.PathLike)
    :return: a decoded PIL image in RGB mode, size (upright width, upright height)
    :raises UnreadableImageError: (a ValueError) "PATH: no such file" / "PATH: not an image (...)" /
        "PATH: unreadable image (...)" / "PATH: not a regular file ..." (a FIFO: opening it would wait forever) /
        "PATH: WxH pixels (...), more than the limit ..." (:func:`check_pixel_count`, from the header)
    """
    check_regular_file(path)
    try:
        with _open(path) as image:
            check_pixel_count(path, *image.size)
            image = ImageOps.exif_transpose(image)  # decodes the pixels, so a broken file fails here
            return to_8bit_rgb(image)
    except UnreadableImageError:
        raise  # already one line naming the file (check_pixel_count)
    except PILLOW_READ_ERRORS as error:
        raise _unreadable(path, error) from None


def _plain_jpeg(path):
    """Is ``path`` a colour JPEG stored upright (no EXIF rotation), whose pixels libjpeg gives as load_image does?

    Only the header is read. Greyscale, CMYK and rotated JPEGs, and every other format, answer False.
    :raises UnreadableImageError: as :func:`load_image` (a missing file, a header Pillow cannot identify)
    """
    check_regular_file(path)
    try:
        with _open(path) as image:
            check_pixel_count(path, *image.size)
            return (image.format == "JPEG" and image.mode == "RGB"
                    and image.getexif().get(EXIF_ORIENTATION_TAG, 1) == 1)
    except UnreadableImageError:
        raise  # already one line naming the file (check_pixel_count)
    except PILLOW_READ_ERRORS as error:
        raise _unreadable(path, error) from None


def _decode_jpeg(data):
    """Decode JPEG bytes with libjpeg-turbo through ``torchvision.io.decode_jpeg``, straight into an array.

    torchvision's decoder is strict where Pillow is: corrupt data that Pillow refuses raises here too (OpenCV's
    ``imdecode``, for one, returns such images with a warning on stderr and garbage pixels, so it is not used).
    torchvision 0.29 deprecated its image decoders in favour of TorchCodec; where they are gone, or the data is
    broken, this returns None and the caller reads the file with Pillow.

    :param data: the file's bytes, numpy uint8 (n,)
    :return: uint8 (H, W, 3) RGB array, or None
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg  # here: images.py imports no torch at the top
    except ImportError:
        return None
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            decoded = decode_jpeg(torch.from_numpy(data), mode=ImageReadMode.RGB)  # (3, H, W) view of (H, W, 3)
        except RuntimeError:
            return None
    return decoded.permute(1, 2, 0).numpy()


def load_image_array(path):
    """:func:`load_image` as a uint8 (H, W, 3) RGB numpy array: what the data loader feeds the augmentations.

    A plain colour JPEG (nearly every photo of VOC and COCO) is decoded by libjpeg-turbo straight into an array
    (:func:`_decode_jpeg`): the same pixels as Pillow's (tests/test_images.py checks it, byte for byte), without
    Pillow's copying of the decoded image into an array, which costs a third of the decoding time. Every other
    file, and a JPEG that does not end with its end-of-image marker (truncated, or with bytes after it) or that
    the decoder refuses, goes through :func:`load_image`, which names the problem of a broken one.

    :param path: an image file
    :return: uint8 numpy array (upright height, upright width, 3), RGB, writable
    :raises UnreadableImageError: as :func:`load_image`
    """
    if _plain_jpeg(path):
        data = np.fromfile(path, dtype=np.uint8)
        if data[-2:].tobytes() == b"\xff\xd9":
            pixels = _decode_jpeg(data)
            if pixels is not None:
                return pixels
    return np.array(load_image(path))


def image_size(path):
    """The upright (EXIF-applied) size of an image, from its header: no pixels are decoded for JPEGs.

    :param path: an image file
    :return: (width, height) in pixels, as :func:`load_image` returns the image
    :raises UnreadableImageError: as :func:`load_image`
    """
    width, height, _ = image_size_and_frames(path)
    return width, height


def _frame_count(image):
    """The frames of an open PIL image that :func:`load_image` would leave unread, plus one.

    An animated GIF, WebP or PNG counts its frames, a TIFF its pages. An MPO counts 1: phone and camera JPEGs
    are often MPO files whose second picture is a preview or the stereo pair's other eye, so their first
    picture is the whole photo and a note on every such photo would say nothing.
    """
    if image.format == "MPO" or not getattr(image, "is_animated", False):
        return 1  # is_animated looks at most one frame ahead; n_frames may walk the whole file
    return int(getattr(image, "n_frames", 1))


def image_size_and_frames(path):
    """:func:`image_size` and :func:`frame_count` from one reading of the header.

    :param path: an image file
    :return: (upright width, upright height, frames), pixels and a count (1 for a still image)
    :raises UnreadableImageError: as :func:`load_image` (a FIFO and an image above MAX_IMAGE_PIXELS too, so that
        create_data_lists.py refuses them when it makes the lists)
    """
    check_regular_file(path)
    try:
        with _open(path) as image:
            width, height = image.size
            check_pixel_count(path, width, height)
            if image.getexif().get(EXIF_ORIENTATION_TAG) in QUARTER_TURN_ORIENTATIONS:
                width, height = height, width
            return width, height, _frame_count(image)
    except UnreadableImageError:
        raise  # already one line naming the file (check_pixel_count)
    except PILLOW_READ_ERRORS as error:
        raise _unreadable(path, error) from None


def frame_count(path):
    """How many frames (animated GIF / WebP / PNG) or pages (TIFF) an image file holds; :func:`load_image`
    reads only the first. MPO files (camera JPEGs with a preview) count 1.

    :param path: an image file
    :return: the number of frames, 1 for a still image
    :raises UnreadableImageError: as :func:`load_image`
    """
    return image_size_and_frames(path)[2]


def multi_frame_note(path, n_frames=None):
    """The one-line note that an image file has more frames than the first, which alone is read; None when it
    has one. detect.py and create_data_lists.py print it once per file.

    :param path: an image file
    :param n_frames: its frame count when already known (:func:`image_size_and_frames`), else read from the header
    :return: "Note: PATH has N frames (an animated or multi-page file); only the first is read" or None
    :raises UnreadableImageError: as :func:`load_image`, when ``n_frames`` is None and the file cannot be read
    """
    n_frames = frame_count(path) if n_frames is None else n_frames
    if n_frames <= 1:
        return None
    return f"Note: {path} has {n_frames} frames (an animated or multi-page file); only the first is read"


def resolve_written_path(written, folder=""):
    """The file that a path written in an annotation means, whichever operating system wrote it.

    Annotation tools write paths with their own system's separator: a COCO file made on Windows names
    ``images\\b.jpg``, which on Linux is one file name with a backslash in it, not ``b.jpg`` in ``images/``
    (Windows itself accepts both separators). Tried in order: the path as written, then with every ``\\`` and
    ``/`` as this system's separator. A relative path is relative to ``folder``. Every reader of
    create_data_lists.py (COCO ``file_name``, VOC ``<filename>`` / ``<path>``, ImageSets lines, YOLO ``data.yaml``
    entries and list files) finds its files through this one function.

    :param written: the path as the annotation gives it (not stripped)
    :param folder: the folder a relative path is relative to ("" for the current folder)
    :return: (path, tried): ``path`` the existing file or folder, or None; ``tried`` the path in this system's
        form (the separators replaced), for the message when nothing exists
    """
    as_written = os.path.join(folder, written)
    other_separator = "\\" if os.sep == "/" else "/"
    tried = os.path.join(folder, written.replace(other_separator, os.sep))
    for candidate in (as_written, tried):
        if os.path.exists(candidate):
            return candidate, candidate
    return None, tried
