"""The JSON lists every reader of create_data_lists.py writes, and the checks they share.

The readers (ssd_support/voc_format.py for VOC XML, coco_format.py for COCO json, yolo_format.py for YOLO) each
turn their annotations into ``{split: (image paths, objects)}`` and their problems into :class:`AnnotationProblem`
(one line "PATH: what is wrong"); :func:`report_and_write` then leaves out images listed twice or in two splits,
reports the problems (failing without --skip-bad), writes TRAIN/[VAL/]TEST_images.json, *_objects.json and
label_map.json, and prints the per-class counts. Also here: the seeded TRAIN/TEST draw (:func:`split_ids`) and the
VAL split drawn from TRAIN afterwards (--val-fraction, :func:`split_validation`).
"""

import hashlib
import json
import os
import sys
from collections import Counter

from ssd_support.files import images_list_path, label_map_path, objects_list_path, write_atomically
from ssd_support.files import MANIFEST_FILE, write_json_atomically
from ssd_support.images import multi_frame_note
from ssd_support.limits import MAX_OBJECTS_PER_IMAGE

SPLITS = ("TRAIN", "TEST")
MAX_PRINTED_PROBLEMS = 50  # problem lines printed; the rest are only counted


def canonical_class_name(name):
    """Normalize a class name as annotation tools write it: lower case, surrounding and repeated spaces removed.

    Every reader (VOC XML, COCO json, YOLO names) compares names through it, so "Potted  Plant" is one class.

    :param name: a class name, e.g. " Potted  Plant"
    :return: the canonical name, e.g. "potted plant"
    """
    return " ".join(name.lower().split())


class DataListError(ValueError):
    """The annotations have problems and --skip-bad was not given (or nothing usable was found)."""


class AnnotationProblem(Exception):
    """One problem with one file, reported as a single line "PATH: what is wrong"."""

    def __init__(self, kind, path, message, unit="image", image=None):
        """:param kind: a short category ("unknown class", ...); path: the file; message: what is wrong
        :param unit: what --skip-bad leaves out: "image" (the image, in every split: a bad box makes its image bad),
            "object" (this object alone: a class outside the label map) or "file" (a file that is no image's)
        :param image: for unit "image", a key naming the image, so that its problems count it once (default: path)
        """
        super().__init__(f"{path}: {message}")
        self.kind = kind  # a short category, used to count what --skip-bad left out
        self.unit = unit
        self.image = path if image is None else image


def check_objects_list(objects, objects_path, label_map=None):
    """Check a *_objects.json list as the data loader reads it, which may have been written elsewhere: each entry
    has "boxes" of 4 numbers, "labels" and "difficulties" of the same length, at most MAX_OBJECTS_PER_IMAGE
    objects (ssd_support/limits.py: each object costs ~65 KB per training step), and labels of the label map.

    :param objects: the parsed list
    :param objects_path: its path, named in the error
    :param label_map: {name: label} with "background": 0, or None to leave the labels unchecked
    :raises ValueError: one line naming the file, the entry (1-based) and the problem
    """
    if not isinstance(objects, list):
        raise ValueError(f"{objects_path}: expected a list of {{'boxes', 'labels', 'difficulties'}}, one per image")
    known = None if label_map is None else {label for name, label in label_map.items() if name != "background"}
    for index, entry in enumerate(objects, 1):
        try:
            boxes, labels, difficulties = entry["boxes"], entry["labels"], entry["difficulties"]
            sizes = {len(boxes), len(labels), len(difficulties)}
        except (KeyError, TypeError):
            raise ValueError(f"{objects_path}: entry {index} has no 'boxes', 'labels' or 'difficulties' list") from None
        if len(boxes) > MAX_OBJECTS_PER_IMAGE:
            raise ValueError(f"{objects_path}: entry {index} has {len(boxes)} objects, more than the limit of "
                             f"{MAX_OBJECTS_PER_IMAGE} per image (ssd_support.limits.MAX_OBJECTS_PER_IMAGE)")
        if len(sizes) != 1 or any(not isinstance(box, list) or len(box) != 4 for box in boxes):
            raise ValueError(f"{objects_path}: entry {index} has {len(boxes)} boxes, {len(labels)} labels and "
                             f"{len(difficulties)} difficulties, or a box that is not 4 numbers")
        if known is not None:
            unknown = [label for label in labels if label not in known]
            if unknown:
                raise ValueError(f"{objects_path}: entry {index} has label {unknown[0]!r}, which is not a class of "
                                 f"the label map (labels {min(known, default=0)}..{max(known, default=0)}); lists "
                                 f"and label_map.json of different runs?")


# ---------------------------------------------------------------------------------------------------------
# The lists as one set: a manifest written last
# ---------------------------------------------------------------------------------------------------------


def manifest_path(folder):
    """``<folder>/lists_manifest.json``: the files of the last complete set of lists, and their sha256."""
    return os.path.join(folder, MANIFEST_FILE)


def _sha256(path):
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_list_set(output_folder, write_files, names):
    """Write a set of list files so that readers never take files of two runs for one set.

    Each file is written atomically, but a kill or a full disk between two of them would leave TRAIN of one run
    beside TEST or the label map of another. So the manifest is first marked incomplete (before any list is
    touched), then the files are written, then the manifest names them with their sha256 (:func:`check_list_set`
    refuses an incomplete set, and any file that is not the one the manifest names). Nothing else of the folder
    (the user's plots, checkpoints) is touched.

    :param output_folder: the lists' folder (created if needed)
    :param write_files: a function writing the files, called between the two manifest writes
    :param names: the file names (in ``output_folder``) that make the set once written
    """
    os.makedirs(output_folder, exist_ok=True)
    write_json_atomically(manifest_path(output_folder), {"complete": False, "files": {}})
    write_files()
    write_json_atomically(manifest_path(output_folder), {
        "complete": True, "files": {name: _sha256(os.path.join(output_folder, name)) for name in sorted(names)}})


def check_list_set(data_folder, paths):
    """Check that list files are of one complete set (:func:`write_list_set`); folders without a manifest (lists of
    older versions, or written by other tools) are taken as they are.

    :param data_folder: the lists' folder
    :param paths: the files about to be read (absent ones are left to the reader)
    :raises ValueError: one line naming the manifest or the file: a set whose writing was interrupted, a file that
        is not in the set (a VAL split of an earlier run) or not the one written with it (another run's, or edited)
    """
    manifest = manifest_path(data_folder)
    if not os.path.isfile(manifest):
        return
    try:
        with open(manifest) as file:
            written = json.load(file)
        complete, files = bool(written["complete"]), dict(written["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{manifest}: not a manifest of create_data_lists.py; run it again") from None
    if not complete:
        raise ValueError(f"{manifest}: the lists were being written when create_data_lists.py stopped (killed, or "
                         f"the disk full), so they may mix two runs; run create_data_lists.py again")
    for path in paths:
        name = os.path.basename(path)
        if not os.path.isfile(path):
            continue
        if name not in files:
            raise ValueError(f"{path}: not part of the set of lists that {manifest} names (left from an earlier run?);"
                             f" run create_data_lists.py again")
        if _sha256(path) != files[name]:
            raise ValueError(f"{path}: not the file written with the other lists ({manifest} names another sha256: "
                             f"another run's, or edited); run create_data_lists.py again, or delete {manifest} to "
                             f"use the files as they are")


def split_ids(ids, test_fraction, seed=0, key=None):
    """Split image IDs into TRAIN and TEST by a seeded, deterministic draw.

    Each ID is ranked by a hash of (seed, ID) and the first round(test_fraction * n) go to TEST: the same IDs and
    seed always give the same split, whatever order the files were listed in, and adding images to a data set
    moves few of the old ones from one split to the other.

    :param ids: image IDs
    :param test_fraction: the fraction of them that go to TEST, 0 to 1
    :param seed: an integer; another seed, another split
    :param key: what of an ID is hashed (default: the ID itself)
    :return: (TRAIN IDs, TEST IDs), each sorted
    """
    key = key or str
    ranked = sorted(ids, key=lambda image_id: hashlib.sha256(f"{seed}:{key(image_id)}".encode()).hexdigest())
    n_test = round(test_fraction * len(ranked))
    return sorted(ranked[n_test:]), sorted(ranked[:n_test])


def split_statistics(objects, label_map):
    """Count images and objects (difficult ones too), overall and per class.

    :param objects: per-image objects, as in *_objects.json
    :param label_map: {name: label}
    :return: {"images", "objects", "difficult", "empty_images", "per_class": {name: {"images", "objects",
        "difficult"}}}
    """
    names = {label: name for name, label in label_map.items()}
    per_class = {name: {"images": 0, "objects": 0, "difficult": 0} for name in label_map if name != "background"}
    for obj in objects:
        for label in set(obj["labels"]):
            per_class[names[label]]["images"] += 1
        for label, difficult in zip(obj["labels"], obj["difficulties"]):
            per_class[names[label]]["objects"] += 1
            per_class[names[label]]["difficult"] += difficult
    return {
        "images": len(objects),
        "objects": sum(len(obj["labels"]) for obj in objects),
        "difficult": sum(sum(obj["difficulties"]) for obj in objects),
        "empty_images": sum(not obj["labels"] for obj in objects),
        "per_class": per_class,
    }


def print_statistics(statistics, label_map, out=None):
    """Print a per-class table of images and objects (difficult) in each split (to ``out``, default stdout)."""
    out = out or sys.stdout
    header = f"{'class':>16s} | {'TRAIN images':>12s} {'objects (difficult)':>20s} | " \
             f"{'TEST images':>11s} {'objects (difficult)':>20s}"
    print(header, file=out)
    print("-" * len(header), file=out)

    def row(name, train, test):
        """One line: the name, then images and objects (difficult) of TRAIN and of TEST."""
        train_objects = f"{train['objects']} ({train['difficult']})"
        test_objects = f"{test['objects']} ({test['difficult']})"
        print(f"{name:>16s} | {train['images']:>12d} {train_objects:>20s} | {test['images']:>11d} {test_objects:>20s}",
              file=out)

    for name in label_map:
        if name != "background":
            row(name, statistics["TRAIN"]["per_class"][name], statistics["TEST"]["per_class"][name])
    print("-" * len(header), file=out)
    row("total", statistics["TRAIN"], statistics["TEST"])


def _write_json(path, data):
    """Write JSON atomically (utils.write_atomically), so a crash leaves no half-written list."""
    write_atomically(path, lambda file: json.dump(data, file))


def _image_file_key(path):
    """What makes two listed paths one image: the file's identity, (st_dev, st_ino) of ``os.stat``, which follows
    symbolic links and is shared by hard links (a TEST image that is a link to a TRAIN image is that image); the
    resolved path when the file cannot be stat'ed (a missing image, reported elsewhere).

    :param path: an image path
    :return: a hashable key, equal for two paths of one file
    """
    try:
        status = os.stat(path)
    except OSError:
        return os.path.normcase(os.path.realpath(path))
    return status.st_dev, status.st_ino


def _leave_out_duplicate_images(lists, problems):
    """Find every image listed more than once: twice in one split (two annotation files, or two ImageSets lines,
    name it: which boxes are right?) or in two splits (the test set would score an image the network trained on).
    Each extra listing is a "duplicate image" problem naming the image; it is left out of the lists (TEST is read
    first, then VAL, so a shared image stays in TEST and leaves TRAIN), which --skip-bad then accepts. An image is
    one file (:func:`_image_file_key`): a symbolic or hard link of a TRAIN image in TEST is the TRAIN image; a
    byte-for-byte copy is another file and is not found.

    :param lists: {split: (image paths, objects)}, "VAL" optional, changed in place
    :param problems: the list of AnnotationProblem, appended to
    """
    first_split = {}
    for split in [s for s in ("TEST", "VAL", "TRAIN") if s in lists]:
        images, objects = lists[split]
        kept = []
        for index, (path, image_objects) in enumerate(zip(images, objects)):
            key = _image_file_key(path)
            if key in first_split:
                first, first_path = first_split[key]
                where = (f"twice in {split}: two annotations (or ImageSets lines) name it" if first == split
                         else f"in both {first} and {split}: the {first} split would score an "
                              f"image the network trained on" if split == "TRAIN" else
                         f"in both {first} and {split}")
                # Under another name (a link), the line names both: the user must find the other one to remove it.
                if os.path.normcase(os.path.abspath(first_path)) != os.path.normcase(os.path.abspath(path)):
                    where += f"; the same file as {first_path}"
                problems.append(AnnotationProblem("duplicate image", path, f"listed {where}; left out of {split}",
                                                  image=(split, key, index)))
                continue
            first_split[key] = (split, path)
            kept.append((path, image_objects))
        lists[split] = ([path for path, _ in kept], [image_objects for _, image_objects in kept])


def skipped_counts(problems):
    """What --skip-bad leaves out, by unit and reason: each image once (under the kind of its first problem),
    each object, each file that is no image's.

    :param problems: AnnotationProblem instances
    :return: {"images": {kind: n}, "objects": {kind: n}, "files": {kind: n}}
    """
    counts, seen = {"images": Counter(), "objects": Counter(), "files": Counter()}, set()
    for problem in problems:
        if problem.unit == "object":
            counts["objects"][problem.kind] += 1
        elif problem.unit == "file":
            counts["files"][problem.kind] += 1
        elif problem.image not in seen:
            seen.add(problem.image)
            counts["images"][problem.kind] += 1
    return {unit: dict(sorted(counter.items())) for unit, counter in counts.items()}


def _counted(counts, noun):
    """ "3 images (1 degenerate box, 2 missing image)" for {kind: n}, or "" when there are none."""
    total = sum(counts.values())
    if not total:
        return ""
    return f"{total} {noun}{'s' * (total != 1)} (" + ", ".join(f"{n} {kind}" for kind, n in counts.items()) + ")"


def multi_frame_notes(frames):
    """One note per image file of more than one frame (ssd_support.images.multi_frame_note), the first
    MAX_PRINTED_PROBLEMS, then a count of the others.

    :param frames: {image path: frames}
    :return: the note lines
    """
    paths = sorted(frames)
    notes = [multi_frame_note(path, frames[path]) for path in paths[:MAX_PRINTED_PROBLEMS]]
    if len(paths) > MAX_PRINTED_PROBLEMS:
        notes.append(f"Note: ... and {len(paths) - MAX_PRINTED_PROBLEMS} more image file(s) of several frames; "
                     f"only the first frame of each is read.")
    return notes


def _report_problems(problems, skip_bad):
    """Print the problems, one line each (the first MAX_PRINTED_PROBLEMS), and fail unless skip_bad.

    :raises DataListError: when there are problems and skip_bad is False
    """
    for problem in problems[:MAX_PRINTED_PROBLEMS]:
        print(("skipped: " if skip_bad else "error: ") + str(problem), file=sys.stderr)
    if len(problems) > MAX_PRINTED_PROBLEMS:
        # A wrong image folder would otherwise print one line for each of 100,000 images.
        print(f"... and {len(problems) - MAX_PRINTED_PROBLEMS} more problem(s), counted below", file=sys.stderr)
    if problems and not skip_bad:
        counts = Counter(p.kind for p in problems)
        raise DataListError(f"{len(problems)} problem(s) in the annotations ("
                            + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                            + f"), first: {problems[0]}; fix them or pass --skip-bad to leave them out")


def list_path(path, output_folder):
    """An image path as the lists store it: relative to the lists' folder (datasets.read_image_list resolves it),
    so that a project folder moved or copied to another machine still works; absolute where no relative path
    exists (another drive on Windows)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(output_folder))
    except ValueError:
        return os.path.abspath(path)


def report_and_write(lists, label_map, label_map_source, n_clipped, problems, skip_bad, output_folder, sources,
                     out, notes=(), extra=None):
    """Report the problems, write the five JSON files and print the per-class counts (VOC and COCO alike).

    :param lists: {split: (image paths, objects in the JSON format)} for TRAIN and TEST, and VAL where the source
        has one (a YOLO data set; the same tuple as TEST when VAL is also TEST)
    :param label_map: {"background": 0, name: label, ...}
    :param label_map_source: a few words saying where the label map came from
    :param n_clipped: how many boxes were clipped to their image
    :param problems: the AnnotationProblem of every bad file or object
    :param skip_bad: leave the bad ones out instead of failing
    :param output_folder: where the JSON files go
    :param sources: the folders / files read, for the "nothing usable" message
    :param out: a file to print the report to
    :param notes: lines printed after the counts (warnings that are not problems)
    :param extra: more entries for the summary dict
    :return: the summary dict: {"label_map", "label_map_source", "TRAIN": statistics, "TEST": statistics (and
        "VAL"; :func:`split_statistics`), "clipped": int, "skipped": {kind: problems}, "skipped_images": {kind:
        images left out, each once, by its first problem}, "skipped_objects": {kind: objects left out of images
        kept}, "skipped_files": {kind: files that are no image's}, **extra}
    :raises DataListError: on problems without skip_bad, or when there is nothing to write
    """
    _leave_out_duplicate_images(lists, problems)
    _report_problems(problems, skip_bad)
    if not lists["TRAIN"][0] and not lists["TEST"][0]:
        raise DataListError("no usable images found in " + ", ".join(sources))

    written_splits = [split for split in ("TRAIN", "VAL", "TEST") if split in lists]

    def write_files():
        """The lists and the label map, one atomic write each."""
        for split in written_splits:
            images, objects = lists[split]
            _write_json(images_list_path(output_folder, split),
                        [list_path(path, output_folder) for path in images])
            _write_json(objects_list_path(output_folder, split), objects)
        _write_json(label_map_path(output_folder), label_map)

    # As one set: a kill between two files must not leave TRAIN of this run beside TEST of another.
    names = [os.path.basename(path(output_folder, split)) for split in written_splits
             for path in (images_list_path, objects_list_path)]
    write_list_set(output_folder, write_files, names + [os.path.basename(label_map_path(output_folder))])

    summary = {
        "label_map": label_map,
        "label_map_source": label_map_source,
        "clipped": n_clipped,
        "skipped": dict(Counter(p.kind for p in problems)),
        **{f"skipped_{unit}": counts for unit, counts in skipped_counts(problems).items()},
        **(extra or {}),
    }
    for split in written_splits:
        summary[split] = split_statistics(lists[split][1], label_map)

    print(f"Label map: {len(label_map) - 1} classes + background ({label_map_source}).", file=out)
    print_statistics(summary, label_map, out=out)
    print(f"Images without objects: TRAIN {summary['TRAIN']['empty_images']}, TEST {summary['TEST']['empty_images']}."
          f" Boxes clipped to their image: {summary['clipped']}.", file=out)
    if "VAL" in lists:
        val = summary["VAL"]
        print(f"VAL: {val['images']} images, {val['objects']} objects ({val['difficult']} difficult).", file=out)
    if problems:
        left_out = [_counted(summary[f"skipped_{unit}"], noun) for unit, noun in
                    (("images", "image"), ("objects", "object"), ("files", "file"))]
        print("Left out (--skip-bad): " + "; ".join(part for part in left_out if part) + ".", file=out)
    for note in notes:
        print(note, file=out)
    print(f"Wrote {'/'.join(written_splits)} lists and label_map.json to {os.path.abspath(output_folder)}", file=out)
    return summary


# ---------------------------------------------------------------------------------------------------------
# A validation split drawn from TRAIN
# ---------------------------------------------------------------------------------------------------------

VAL_FILES = ("VAL_images.json", "VAL_objects.json")


def split_validation(output_folder, fraction, seed=0, out=None):
    """Move a seeded random ``fraction`` of the TRAIN images (with their objects) into a VAL split.

    Choosing a checkpoint or a setting by its TEST score tunes on the test set; train.py --eval-every
    evaluates on VAL instead when these files exist. Runs on the lists already written (by the VOC, COCO or
    any other path), so every source gets the same split. VAL keeps at least one image and TRAIN at least one.

    :param output_folder: folder holding TRAIN_images.json and TRAIN_objects.json
    :param fraction: share of the TRAIN images to move, 0 < fraction < 1
    :param seed: seed of the draw (the same seed and lists give the same split)
    :param out: a file to print the one-line report to (default stdout)
    :return: (number of VAL images, number of TRAIN images left)
    :raises DataListError: when the fraction is out of range or TRAIN has fewer than 2 images
    """
    out = out or sys.stdout
    if not 0.0 < fraction < 1.0:
        raise DataListError(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    images_path = images_list_path(output_folder, "TRAIN")
    objects_path = objects_list_path(output_folder, "TRAIN")
    with open(images_path) as file:
        images = json.load(file)
    with open(objects_path) as file:
        objects = json.load(file)
    if len(images) < 2:
        raise DataListError(f"{images_path}: {len(images)} TRAIN image(s), too few to draw a VAL split from")
    n_val = min(max(1, round(fraction * len(images))), len(images) - 1)
    # The same seeded draw as the --annotations TRAIN/TEST split, ranked by file name: where the data folder
    # lives (the lists may hold absolute paths) must not change which images go to VAL.
    _, val_paths = split_ids(images, n_val / len(images), seed, key=os.path.basename)
    val_paths = set(val_paths)
    val = [i for i, path in enumerate(images) if path in val_paths]  # in list order, as the lists it came from
    keep = [i for i, path in enumerate(images) if path not in val_paths]

    def write_files():
        """VAL, then TRAIN without it."""
        _write_json(images_list_path(output_folder, "VAL"), [images[i] for i in val])
        _write_json(objects_list_path(output_folder, "VAL"), [objects[i] for i in val])
        # TRAIN last: if anything fails before, TRAIN is still whole.
        _write_json(objects_path, [objects[i] for i in keep])
        _write_json(images_path, [images[i] for i in keep])

    # The set: the files of the run that wrote TRAIN (all list files present, for lists without a manifest) and VAL.
    names = set(VAL_FILES)
    for split in ("TRAIN", "TEST"):
        names.update(os.path.basename(path(output_folder, split)) for path in (images_list_path, objects_list_path)
                     if os.path.isfile(path(output_folder, split)))
    if os.path.isfile(label_map_path(output_folder)):
        names.add(os.path.basename(label_map_path(output_folder)))
    write_list_set(output_folder, write_files, names)
    print(f"VAL: {n_val} images drawn from TRAIN (--val-fraction {fraction}, --val-seed {seed}); "
          f"TRAIN keeps {len(keep)}.", file=out)
    return n_val, len(keep)


def remove_stale_validation(output_folder):
    """Delete VAL lists left by an earlier run into the same folder: they would overlap the new TRAIN.

    :return: the files deleted
    """
    removed = []
    for name in VAL_FILES:
        path = os.path.join(output_folder, name)
        if os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


def apply_val_fraction(output_folder, fraction, seed):
    """After the lists are written: draw the VAL split (``fraction`` given), or else delete an older VAL split.

    :param output_folder: the folder the lists went to
    :param fraction: --val-fraction, or None
    :param seed: --val-seed
    """
    if fraction is not None:
        split_validation(output_folder, fraction, seed)
        return
    for path in remove_stale_validation(output_folder):
        print(f"Removed {path}: an earlier --val-fraction split, which the new TRAIN list may overlap.")
