"""Files: the one atomic writer, the names of the list files, JSON without NaN, and the byte-order marks
of text files.

A leaf of ``ssd_support`` (no project imports), so that every lesson module and every product layer can use it.
"""

import codecs
import json
import math
import os
import tempfile

SPLITS = ("TRAIN", "VAL", "TEST")  # VAL: create_data_lists.py --val-fraction
LABEL_MAP_FILE = "label_map.json"


def images_list_path(data_folder, split):
    """``<data_folder>/<split>_images.json``: the split's image paths (relative to the data folder)."""
    return os.path.join(data_folder, f"{split}_images.json")


def objects_list_path(data_folder, split):
    """``<data_folder>/<split>_objects.json``: per image, its boxes (pixels), labels and difficulties."""
    return os.path.join(data_folder, f"{split}_objects.json")


def label_map_path(data_folder):
    """``<data_folder>/label_map.json``: class name -> label, "background" 0."""
    return os.path.join(data_folder, LABEL_MAP_FILE)


def has_split(data_folder, split):
    """True when both list files of ``split`` are in ``data_folder``."""
    return os.path.isfile(images_list_path(data_folder, split)) and os.path.isfile(objects_list_path(data_folder, split))


def write_atomically(path, write, binary=False):
    """Write a file through a temporary file in the same folder and a rename.

    A crash or Ctrl-C in the middle of writing leaves the previous file intact, never half a file
    (``os.replace`` is atomic on POSIX and Windows when both paths are on one file system).
    Checkpoints, data lists and results are all written this way.

    :param path: the file to write; its folder is created if needed
    :param write: function that writes the content into the open file object it is given
    :param binary: open the temporary file in binary mode (for ``torch.save``)
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(handle, "wb" if binary else "w") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def finite_or_null(value):
    """``value`` with every NaN/inf float (in nested dicts and lists) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def write_json_atomically(path, data, **options):
    """json.dump ``data`` to ``path`` through write_atomically, with NaN/inf written as null (finite_or_null):
    strict JSON parsers reject a bare NaN."""
    write_atomically(path, lambda file: json.dump(finite_or_null(data), file, allow_nan=False, **options))


def bom_encoding(data):
    """The encoding a byte-order mark at the start of ``data`` announces (Windows Notepad writes them), or None."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                          (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return encoding
    return None


def text_lines(path):
    """The lines of a text file, as (line number, stripped text) for the non-empty ones; a byte-order mark and
    CRLF line ends are read as tools write them.

    :raises UnicodeDecodeError: when it is not UTF-8 (or UTF-16/32 with a byte-order mark)
    """
    with open(path, "rb") as file:
        data = file.read()
    text = data.decode(bom_encoding(data) or "utf-8")
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
