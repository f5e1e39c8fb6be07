"""Turn Pascal VOC-format folders, or COCO-format annotation files, into the JSON lists that
datasets.PascalVOCDataset reads.

    python create_data_lists.py --voc07 PATH/VOC2007 --voc12 PATH/VOC2012 --output data/voc
    python create_data_lists.py --voc07 PATH/MyData --classes cat,dog --output data/mine
    python create_data_lists.py --annotations PATH/labels --images PATH/photos --test-fraction 0.2 --output data/mine
    python create_data_lists.py --coco-json PATH/annotations/instances_train2017.json --coco-images PATH/train2017 \
        --coco-test-json PATH/annotations/instances_val2017.json --coco-test-images PATH/val2017 --output data/coco
    python create_data_lists.py --yolo PATH/export --output data/mine    # Ultralytics / Roboflow (data.yaml)
    python create_data_lists.py --toy data/toy        # a small synthetic data set (ssd_support/toy_data.py), and its lists
    python create_data_lists.py --toy-coco data/toy_coco   # the same kind of images, in the COCO format

As in the paper, TRAIN = VOC2007 trainval + VOC2012 trainval and TEST = VOC2007 test (the image IDs come
from ImageSets/Main/{trainval,test}.txt; VOC2012's test set is not public, so only its trainval is read).
A custom VOC-format folder is passed the same way, as --voc07 (train and test) or --voc12 (train only).
Folders of XML files and images without ImageSets (labelImg, Roboflow's VOC export) are passed as --annotations
and --images: every XML file is read, and a seeded, deterministic draw of --test-fraction of them is the TEST
split (or --test-annotations / --test-images give one).

The image of annotation ID is ID.<ext> (jpg, jpeg, png, bmp, tif, webp, ... in any letter case) in JPEGImages/
(or --images), as the VOC devkit reads it; <filename> is only the fallback. Its upright size (EXIF orientation
applied, as images.load_image reads it) must be the annotation's <size> (COCO: width / height).

YOLO (Ultralytics, Roboflow): --yolo gives the folder of data.yaml (or the yaml); its train / val / test become
TRAIN / VAL / TEST (no test: val is TEST, no VAL; --test-fraction draws TEST from train instead), read by
ssd_support/yolo_format.py. Boxes "class cx cy w h" are fractions of the image's upright size; difficulties are 0.

COCO: --coco-json / --coco-images give the TRAIN split (an instances_*.json file and the folder its file_names
are in), --coco-test-json / --coco-test-images the TEST split; either pair alone is enough. COCO's category
ids (1..90 with gaps) become labels 1..K in increasing id order, named from the file; boxes [x, y, w, h] become
[x1, y1, x2, y2]; crowd regions (iscrowd 1) become difficult objects, which the evaluation ignores; images
without annotations are kept, with no objects.

Written to the output folder: TRAIN_images.json and TEST_images.json (lists of image paths, relative to the
output folder, so that the project can move), TRAIN_objects.json and TEST_objects.json (per image, {"boxes":
[[x1, y1, x2, y2], ...] in pixels, "labels": [...], "difficulties": [...]}), and label_map.json ({"background": 0,
class: label, ...}), the label map that training and evaluation use. lists_manifest.json, written last, names the
files of the set with their sha256: the data loader refuses a set whose writing was stopped (a kill, a full disk),
a VAL split left from an earlier run and a file of another run, in one line (ssd_support.data_lists.write_list_set).

--val-fraction F also moves a seeded random share F of the TRAIN images into VAL_images.json /
VAL_objects.json (train.py --eval-every evaluates on VAL, so that choosing a checkpoint does not tune on TEST):

    python create_data_lists.py --toy data/toy --val-fraction 0.2

Beside the lists go statistics.json and statistics.png (ssd_support/data_statistics.py): the counts per split and
class, the box shapes, and the share of each class's objects that some prior of the network you will train fits at
IoU 0.5 or more: the VGG16 SSD300 by default, --base resnet50, --image-size 512, or --priors-from CHECKPOINT (the
checkpoint you will fine-tune from, e.g. convert_weights.py's: its priors). The classes under 90% are named in the
printed summary, with what would fit them, measured: another network's priors, or tiles.

Coordinates: VOC annotations number pixels from 1 and include the last pixel, so a box covering pixels
xmin..xmax (1-based) spans [xmin - 1, xmax] in the continuous, 0-based coordinates written here.

Problems (a class outside the label map or named "background", a degenerate box, a missing or unreadable image,
an image of another size than annotated, a malformed or missing XML file, an XML file declaring a DTD or entities
(refused by defusedxml), more than ssd_support.limits.MAX_OBJECTS_PER_IMAGE (1000) objects on one image, an image
above MAX_IMAGE_PIXELS; in a COCO file, an annotation of an unknown image or category) are reported one line each, naming the file; the run then fails unless --skip-bad is
given, in which case the bad images are left out, in every split, and counted: a bad box makes its whole image
bad (kept without it, the object would be taught as background and its detections scored as false positives);
only an object of a class outside the label map leaves its image in, without it. A COCO file that is missing, not
JSON or without its images / annotations / categories lists stops the run at once. Paths that annotations write
with the other system's separator (images\\b.jpg on Linux) are found (ssd_support.images.resolve_written_path).
Only regular files are images (a FIFO named like one is never opened), and an ImageSets list that resolves outside
its VOC folder (a symbolic link) is refused without reading it.
"""

import argparse
import os
import sys

from ssd_support.coco_format import create_coco_data_lists
from ssd_support.data_lists import DataListError, apply_val_fraction, split_statistics
from ssd_support.data_statistics import coverage_network, write_data_statistics
from ssd_support.files import output_folder_argument
from ssd_support.toy_data import make_toy_coco_dataset, make_toy_dataset
from ssd_support.voc_format import DEFAULT_TEST_FRACTION, build_and_write, create_folder_data_lists, read_image_ids
from ssd_support.voc_format import resolve_image_id
from ssd_support.yolo_format import create_yolo_data_lists

# Which ImageSets/Main list of each year goes into which split.
VOC07_SETS = (("trainval", "TRAIN"), ("test", "TEST"))
VOC12_SETS = (("trainval", "TRAIN"),)


# ---------------------------------------------------------------------------------------------------------
# Walking the VOC folders
# ---------------------------------------------------------------------------------------------------------


def _voc_sources(voc_folders):
    """What to read from VOC folders: the IDs of their ImageSets lists.

    :param voc_folders: list of (folder, ((image_set, split), ...))
    :return: list of (split, annotations folder, image folder, [image IDs])
    """
    sources = []
    for folder, image_sets in voc_folders:
        annotations_folder = os.path.join(folder, "Annotations")
        for image_set, split in image_sets:
            lines = read_image_ids(folder, image_set)
            ids = [resolve_image_id(annotations_folder, line) for line in lines]
            written = {image_id: line for image_id, line in zip(ids, lines) if image_id != line}
            sources.append((split, annotations_folder, os.path.join(folder, "JPEGImages"), ids, written))
    return sources


def create_data_lists(voc07_path=None, voc12_path=None, output_folder="data", classes=None, skip_bad=False,
                      out=None):
    """Parse VOC-format folders and write the TRAIN/TEST lists and the label map.

    :param voc07_path: a VOC2007-like folder (trainval -> TRAIN, test -> TEST), or None
    :param voc12_path: a VOC2012-like folder (trainval -> TRAIN), or None
    :param output_folder: where the JSON files go (created if needed)
    :param classes: None to decide automatically (VOC's 20 classes if every annotated name is one of them,
        else the names found), "voc", or a list of class names
    :param skip_bad: leave bad objects / images out (counted) instead of failing
    :param out: a file to print the report to (default stdout; problems go to stderr)
    :return: {"label_map", "label_map_source", "TRAIN": statistics, "TEST": statistics, "clipped": int,
        "skipped": {kind: problems}, "skipped_images": {kind: images left out, each once, by its first problem},
        "skipped_objects": {kind: objects left out of images kept}, "skipped_files": {kind: files that are no
        image's}}
    :raises DataListError: on problems without skip_bad, or when there is nothing to read
    """
    out = out or sys.stdout
    voc_folders = [(os.path.abspath(p), sets) for p, sets in ((voc07_path, VOC07_SETS), (voc12_path, VOC12_SETS))
                   if p is not None]
    if not voc_folders:
        raise DataListError("give at least one of --voc07 / --voc12 (or --toy)")

    sources = _voc_sources(voc_folders)
    return build_and_write(sources, classes, skip_bad, output_folder, [folder for folder, _ in voc_folders], out)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    """Parse the command line.

    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: the argparse namespace, checked: exactly one source of data: --toy, --toy-coco, VOC folders
        (--voc07 / --voc12) or COCO files (--coco-json / --coco-test-json, each with its image folder)
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voc07", help="VOC2007-like folder: its trainval goes to TRAIN, its test to TEST")
    parser.add_argument("--voc12", help="VOC2012-like folder: its trainval goes to TRAIN")
    coco = parser.add_argument_group("COCO-format data (instead of VOC folders)")
    coco.add_argument("--coco-json", metavar="FILE",
                      help="COCO instances file of the TRAIN split, e.g. annotations/instances_train2017.json")
    coco.add_argument("--coco-images", metavar="DIR", help="the image folder of --coco-json, e.g. train2017")
    coco.add_argument("--coco-test-json", metavar="FILE",
                      help="COCO instances file of the TEST split, e.g. annotations/instances_val2017.json")
    coco.add_argument("--coco-test-images", metavar="DIR", help="the image folder of --coco-test-json, e.g. val2017")
    folders = parser.add_argument_group("folders of XML files and images, without ImageSets (labelImg, Roboflow, "
                                        "CVAT exports)")
    folders.add_argument("--annotations", metavar="DIR", help="folder of VOC XML files; each is ID.xml")
    folders.add_argument("--images", metavar="DIR",
                         help="folder of their images, ID.jpg / .png / ... (default: the --annotations folder)")
    folders.add_argument("--test-fraction", type=float, default=None,
                         help=f"fraction of --annotations (or of --yolo's train) drawn for TEST, seeded by --seed "
                              f"(default {DEFAULT_TEST_FRACTION}; 0 with --test-annotations or --yolo)")
    folders.add_argument("--test-annotations", metavar="DIR",
                         help="folder of XML files of a TEST split the data set already has (Roboflow's valid/)")
    folders.add_argument("--test-images", metavar="DIR", help="their images (default: the --test-annotations folder)")
    parser.add_argument("--yolo", metavar="DIR",
                        help="an Ultralytics / Roboflow YOLO data set: the folder of its data.yaml (or the yaml); "
                             "train / val / test become TRAIN / VAL / TEST")
    parser.add_argument("--output", default="data", type=output_folder_argument,
                        help="folder for the JSON lists (default: data)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names, or 'voc'; by default the 20 VOC classes if every "
                             "annotated name is one of them, else the names found in the annotations")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out (and count) bad objects and images instead of failing")
    parser.add_argument("--toy", metavar="DIR", type=output_folder_argument,
                        help="write a synthetic VOC-format data set to DIR/ToyVOC and its lists to DIR")
    parser.add_argument("--toy-coco", metavar="DIR",
                        help="write the synthetic data set in the COCO format to DIR/ToyCOCO and its lists to DIR")
    parser.add_argument("--toy-train", type=int, default=64, help="toy trainval images (default 64)")
    parser.add_argument("--toy-test", type=int, default=16, help="toy test images (default 16)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the toy data set, and of the --annotations TRAIN/TEST draw (default 0)")
    parser.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help="move this share of the TRAIN images (seeded, at random) into a VAL split "
                             "(VAL_images.json, VAL_objects.json), which train.py --eval-every evaluates on")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the --val-fraction draw (default 0)")
    priors = parser.add_argument_group("the network whose priors statistics.json / .png measure the objects "
                                       "against: the one you will train")
    priors.add_argument("--base", choices=("vgg16", "resnet50"), default=None,
                        help="as train.py's --base (default vgg16, or the --priors-from checkpoint's)")
    priors.add_argument("--image-size", type=int, choices=(300, 512), default=None,
                        help="SSD300's priors or SSD512's (default 300, or the --priors-from checkpoint's)")
    priors.add_argument("--priors-from", metavar="CHECKPOINT", default=None,
                        help="the checkpoint you will fine-tune from (train.py --init-from: convert_weights.py's or "
                             "train.py's): its network and priors (torchvision's COCO priors, ...)")
    args = parser.parse_args(argv)
    for json_option, folder_option in (("coco_json", "coco_images"), ("coco_test_json", "coco_test_images")):
        if (getattr(args, json_option) is None) != (getattr(args, folder_option) is None):
            parser.error(f"--{json_option.replace('_', '-')} and --{folder_option.replace('_', '-')} go together")
    sources = [name for name, given in (("--toy", args.toy), ("--toy-coco", args.toy_coco),
                                        ("--voc07 / --voc12", args.voc07 or args.voc12),
                                        ("--annotations", args.annotations), ("--yolo", args.yolo),
                                        ("--coco-json / --coco-test-json", args.coco_json or args.coco_test_json))
               if given]
    if len(sources) != 1:
        parser.error("give one source of data: --voc07 and/or --voc12, --annotations DIR, --coco-json and/or "
                     "--coco-test-json, --yolo DIR, --toy DIR or --toy-coco DIR"
                     + (f" (not {' and '.join(sources)})" if sources else ""))
    folder_options = [option for option in ("images", "test_fraction", "test_annotations", "test_images")
                      if getattr(args, option) is not None]
    if folder_options and not args.annotations and folder_options != ["test_fraction"]:
        parser.error(f"--{folder_options[0].replace('_', '-')} goes with --annotations DIR")
    if folder_options == ["test_fraction"] and not (args.annotations or args.yolo):
        parser.error("--test-fraction goes with --annotations DIR or --yolo DIR")
    if args.yolo and args.val_fraction is not None:
        parser.error("--val-fraction is for the other sources: a YOLO data set's val split is VAL")
    if args.test_images and not args.test_annotations:
        parser.error("--test-images goes with --test-annotations DIR")
    if args.classes is not None and (args.toy_coco or args.coco_json or args.coco_test_json):
        parser.error("--classes is for VOC folders; a COCO file's categories make the label map")
    if args.classes is not None and args.yolo:
        parser.error("--classes is for VOC folders; data.yaml's names make the label map")
    if args.val_fraction is not None and not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be between 0 and 1 (exclusive), got {args.val_fraction}")
    return args


def main(argv=None):
    """Command-line entry point; returns the exit status (0 on success, 1 on problems)."""
    args = parse_args(argv)
    try:  # before any list is written: a bad --priors-from checkpoint stops the run with nothing half done
        network = coverage_network(args.base, args.image_size, args.priors_from)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    voc07, output = args.voc07, args.output
    if args.toy:
        voc07, output = make_toy_dataset(args.toy, args.toy_train, args.toy_test, args.seed), args.toy
    classes = None if args.classes is None else ("voc" if args.classes.lower() == "voc" else args.classes.split(","))

    try:
        if args.toy_coco:
            output = args.toy_coco
            paths = make_toy_coco_dataset(args.toy_coco, args.toy_train, args.toy_test, args.seed)
            create_coco_data_lists(output_folder=args.toy_coco, skip_bad=args.skip_bad, **paths)
        elif args.coco_json or args.coco_test_json:
            create_coco_data_lists(args.coco_json, args.coco_images, args.coco_test_json, args.coco_test_images,
                                   output, skip_bad=args.skip_bad)
        elif args.yolo:
            create_yolo_data_lists(args.yolo, output, args.test_fraction, args.seed, skip_bad=args.skip_bad)
        elif args.annotations:
            create_folder_data_lists(args.annotations, args.images, output, args.test_fraction, args.seed,
                                     args.test_annotations, args.test_images, classes=classes,
                                     skip_bad=args.skip_bad)
        else:
            create_data_lists(voc07, args.voc12, output, classes=classes, skip_bad=args.skip_bad)
        if not args.yolo:  # a YOLO set's VAL is its data.yaml's val, neither a draw nor a stale one
            apply_val_fraction(output, args.val_fraction, args.val_seed)
        # After the VAL draw, so that the statistics count the lists as they are left (ssd_support/data_statistics.py).
        write_data_statistics(output, split_statistics, network=network)
    except DataListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
