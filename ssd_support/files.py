"""Files: the one atomic writer, the names of the list files, JSON without NaN, and the one reader of JSON files.

A leaf of ``ssd_support`` (no project imports), so that every lesson module and every product layer can use it.
"""

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


class JSONFileError(ValueError):
    """A JSON file (or text) that cannot be parsed; the message is one line naming it."""


def parse_json(text, where):
    """``json.loads`` with every way the text can fail to parse as one line naming ``where``.

    ``json`` raises JSONDecodeError for broken syntax, but RecursionError for deep nesting (``[[[[...`` some
    thousand times: a few KB of text) and plain ValueError for other text it refuses; all of them become this.

    :param text: str or UTF-8 bytes
    :param where: the file (or "FILE metadata KEY") the text comes from, for the message
    :return: the parsed value
    :raises JSONFileError: "WHERE: not valid JSON (...)"
    """
    try:
        return json.loads(text)
    except RecursionError:
        reason = "nested too deeply"
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 text: byte {error.start}"
    except ValueError as error:  # JSONDecodeError is one
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    raise JSONFileError(f"{where}: not valid JSON ({reason})")


def read_json(path):
    """Read a JSON file a user gives (a label map, data lists, a thresholds file): the project's one JSON reader.

    :param path: the file
    :return: the parsed value
    :raises JSONFileError: one line naming the file, for any text that is not JSON (parse_json)
    :raises OSError: when the file cannot be opened (FileNotFoundError...), for the caller to name the fix
    """
    with open(path, "rb") as file:
        return parse_json(file.read(), path)
