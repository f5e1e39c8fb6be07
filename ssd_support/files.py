"""Files: the one atomic writer, the names of the list files, JSON without NaN, the one reader of JSON files,
the one bounded reader of text files from elsewhere (read_bounded_text, text_lines: byte-order marks, line ends),
the rule every writer follows (RunOutputs) and the extension of a single output file (output_file_argument).

A leaf of ``ssd_support`` (no project imports), so that every lesson module and every product layer can use it.
"""

import argparse
import codecs
import io
import json
import math
import os
import stat
import tempfile

SPLITS = ("TRAIN", "VAL", "TEST")  # VAL: create_data_lists.py --val-fraction
LABEL_MAP_FILE = "label_map.json"
MANIFEST_FILE = "lists_manifest.json"  # written last by create_data_lists.py: the set's files and their sha256
STATISTICS_JSON, STATISTICS_PNG = "statistics.json", "statistics.png"  # create_data_lists.py's statistics


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


def read_bounded_text(path, max_bytes):
    """The text of a regular file of at most ``max_bytes`` bytes, decoded as tools write text: by its byte-order
    mark (Windows Notepad writes them), else UTF-8.

    :raises ValueError: one line (without the path) when it is not a regular file (a device, a FIFO: reading
        /dev/zero never ends), is larger, or is not text (undecodable, or holding a NUL character)
    """
    status = os.stat(path)  # before open(): opening a FIFO waits for a writer
    if not stat.S_ISREG(status.st_mode):
        raise ValueError("not a regular file")
    if status.st_size > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes, the most read of such a file")
    with open(path, "rb") as file:
        # read(n) allocates n bytes at once: the file's size, not the bound (8 MB for each label file)
        data = file.read(status.st_size + 1)
        if len(data) > status.st_size:  # it grew since
            data += file.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes, the most read of such a file")
    encoding = bom_encoding(data)
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not {'UTF-8' if encoding in (None, 'utf-8-sig') else encoding.upper()} text "
                         f"({error.reason} at byte {error.start})") from None
    if "\0" in text:  # valid UTF-8, but no text tool writes it: UTF-16 without its byte-order mark, a binary file
        raise ValueError(f"not text (a NUL character at character {text.index(chr(0))}; UTF-16 without a "
                         f"byte-order mark?)")
    return text


def text_lines(text):
    """The non-empty lines of a text, one at a time, as (line number, stripped line): memory for one line, not a
    list of them all (a file of short garbage lines would hold ~50 bytes per line). CRLF and CR line ends are
    read as LF."""
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.strip()
        if line:
            yield number, line


class OutputRefused(ValueError):
    """An output a writer may not write: one of the run's inputs, a file that exists and was not written by this
    run (without --overwrite), or a name that would leave the folder it was given. One line naming the file."""


def _key(path):
    """A path's identity for comparisons: absolute, symbolic links resolved, case folded where the system does."""
    return os.path.normcase(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_file(first, second):
    """True when two paths name one file: the same path, or (both existing) the same inode (a hard link)."""
    if _key(first) == _key(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


class RunOutputs:
    """The files one run writes, checked before each is written: the one rule of every writer of the project.

    - an output that is one of the run's inputs (the same path, or a hard link to it) is refused, always;
    - a file that exists and was not written earlier in this run is refused unless ``overwrite`` (the user's
      --overwrite): it may be a user's ground truth, or an earlier run's results;
    - a name taken from an image (or any data) must stay inside the folder it is joined to (:meth:`inside`).

    :param inputs: the files the run reads (images, checkpoints, ...); None entries are ignored
    :param overwrite: allow replacing files that exist and that this run did not write (never an input)
    :param hint: the end of the refusal message for an existing file, e.g. "give --overwrite to replace it"
    """

    def __init__(self, inputs=(), overwrite=False, hint="give --overwrite to replace it, or write elsewhere"):
        self.inputs = [os.fspath(path) for path in inputs if path is not None]
        self._input_keys = {_key(path): path for path in self.inputs}
        self._input_files = {}  # (device, inode) of each existing input: a hard link to one is that input too
        for path in self.inputs:
            try:
                status = os.stat(path)
            except OSError:
                continue
            self._input_files.setdefault((status.st_dev, status.st_ino), path)
        self.overwrite, self.hint = overwrite, hint
        self.written = set()

    def input_of(self, path):
        """The input that ``path`` names (the same path or the same file), or None."""
        if _key(path) in self._input_keys:
            return self._input_keys[_key(path)]
        try:
            status = os.stat(path)
        except OSError:
            return None
        return self._input_files.get((status.st_dev, status.st_ino))

    def refuse_input(self, path, what="output"):
        """Refuse ``path`` as an output when it is one of the run's inputs (whether or not --overwrite).

        :raises OutputRefused: one line naming the file and the input
        """
        source = self.input_of(path)
        if source is not None:
            named = "" if _key(source) == _key(path) else f" (the same file as {source})"
            raise OutputRefused(f"{path}: is an input of this run{named} ({what} would replace it); write it "
                                f"elsewhere")

    def check(self, path, what="output"):
        """Refuse ``path`` as an output (see the class), without claiming it.

        :param what: what the output is, for the message (e.g. "--save-voc")
        :raises OutputRefused: one line naming the file
        """
        self.refuse_input(path, what)
        if os.path.lexists(path) and _key(path) not in self.written and not self.overwrite:
            raise OutputRefused(f"{path}: exists and was not written by this run ({what} would replace it); "
                                f"{self.hint}")

    def claim(self, path, what="output"):
        """:meth:`check` ``path``, then remember it as written by this run (writing it again is allowed).

        :return: ``path``
        :raises OutputRefused: as :meth:`check`
        """
        self.check(path, what)
        self.written.add(_key(path))
        return path

    @staticmethod
    def inside(folder, name, what="output"):
        """``folder`` joined with a relative ``name`` that comes from data (an image's file name): refused when it
        is absolute or climbs out of ``folder`` ("../x", "a/../../x").

        :raises OutputRefused: one line naming the name and the folder
        """
        name = os.fspath(name)
        relative = os.path.relpath(os.path.abspath(os.path.join(folder, name)), os.path.abspath(folder))
        if os.path.isabs(name) or os.path.splitdrive(name)[0] or relative == os.pardir or \
                relative.startswith(os.pardir + os.sep):
            raise OutputRefused(f"{name!r}: {what} would be written outside {folder}; refused")
        return os.path.join(folder, name)


def output_file_argument(extensions, kind):
    """An argparse ``type=`` for an output file of one format: its name must end in one of ``extensions``.

    Why: a writer given ``--save-coco photo.jpg`` (a slip of the shell's completion) would replace a photo with
    JSON, and with --overwrite nothing else stops it; a file of the format's extension is one this kind of run
    writes.

    :param extensions: e.g. ".json", or a tuple of them (".pt", ".pth"); compared ignoring case
    :param kind: what the file holds, for the message, e.g. "a COCO json"
    :return: a function str -> str raising argparse.ArgumentTypeError (argparse prints "argument --x: ...")
    """
    extensions = (extensions,) if isinstance(extensions, str) else tuple(extensions)
    names = " or ".join(extensions)

    def output_file(text):
        name = os.path.basename(text).lower()
        if not any(name.endswith(extension) and len(name) > len(extension) for extension in extensions):
            raise argparse.ArgumentTypeError(f"{text}: the name must end in {names} (the file written is {kind}; a "
                                             f"file of another kind is never replaced)")
        if os.path.isdir(text):  # refused now, not by the rename after all the work
            raise argparse.ArgumentTypeError(f"{text}: is a folder; give the name of the file to write ({kind})")
        return text

    return output_file


def output_folder_argument(text):
    """An argparse ``type=`` for a folder a run writes into (created if missing): refused before any work when
    something other than a folder has that name (a photo given by a slip of the shell's completion).

    :return: ``text``
    :raises argparse.ArgumentTypeError: "argument --x: PATH: exists and is not a folder"
    """
    if os.path.lexists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder (the run writes its files into a "
                                         f"folder of that name)")
    return text


def refuse_inputs_as_outputs(inputs, outputs):
    """Refuse, before any work, a run whose output is one of its inputs (``eval.py --output ckpt.pt``): the
    input would be replaced by the output, exit 0. Paths that do not exist are inputs too (compared by name).

    :param inputs: the files the run reads; None entries ignored
    :param outputs: {option: the file it names}, e.g. {"--output": "ckpt.pt"}; None values ignored
    :raises OutputRefused: one line naming the file, the option and the input
    """
    run = RunOutputs(inputs)
    for option, path in outputs.items():
        if path is not None:
            run.refuse_input(path, option)


def data_folder_files(data_folder):
    """The files create_data_lists.py writes in a data folder: every split's images and objects lists,
    label_map.json, the lists' manifest and the statistics (an output written over the manifest would make every
    later run refuse the folder)."""
    lists = [path for split in SPLITS
             for path in (images_list_path(data_folder, split), objects_list_path(data_folder, split))]
    return lists + [os.path.join(data_folder, name)
                    for name in (LABEL_MAP_FILE, MANIFEST_FILE, STATISTICS_JSON, STATISTICS_PNG)]


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
