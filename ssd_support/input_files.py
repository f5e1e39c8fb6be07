"""The command line's inputs as files: files, folders and glob patterns expanded (detect.py), and a unique output
name for each.

A file named explicitly is kept whatever its extension (an image or a video; a missing one is reported when it is
opened), unless it is no regular file (a FIFO would make the reader wait forever); a folder gives its image files (``ssd_support.images.IMAGE_EXTENSIONS``). Standard library only, and
that tuple.
"""

import glob
import os

from ssd_support.images import IMAGE_EXTENSIONS


def expand_inputs(inputs):
    """Turn the command line's files, folders and glob patterns into a list of files.

    :param inputs: list of str; a folder gives its image files (sorted, not recursive), a pattern its matches
    :return: (files, errors): the files to process, in order, and one message per input that gave nothing; only
        regular files (or links to them) are taken: opening a FIFO or a device named like an image never ends
    """
    files, errors = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, name)))
            if not found:
                errors.append(f"{item}: folder has no image files")
            files.extend(found)
        elif os.path.exists(item) and not os.path.isfile(item):
            errors.append(f"{item}: not a regular file (a FIFO, socket or device); not read")
        elif os.path.exists(item) or not any(char in item for char in "*?["):
            files.append(item)  # a missing plain path is reported when it is opened
        else:
            found = sorted(path for path in glob.glob(item) if os.path.isfile(path))
            if not found:
                errors.append(f"{item}: no file matches")
            files.extend(found)
    return files, errors


def output_stem(path, used):
    """A unique output name for an input file: its name without extension, numbered on a clash."""
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, number = stem, 2
    while candidate in used:
        candidate, number = f"{stem}_{number}", number + 1
    used.add(candidate)
    return candidate
