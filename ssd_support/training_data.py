"""What train.py trains on: its data options (the split, the augmentation's parts, the levers on what the images
teach: background images, rare classes) and the training set they make.

The levers, each off by default (the paper's recipe) but the first, which changes nothing where every TRAIN image
has an object (VOC07+12 trainval):
- ``--negatives-per-empty-image K`` (default 3): hard negatives mined in TRAIN images without objects
  (utils.MultiBoxLoss's ``negatives_per_empty_image``); the paper's loss (K = 0) mines 3 per positive of the same
  image, so such images teach nothing;
- ``--no-photometric``, ``--no-zoom-out``, ``--no-crop``, ``--no-flip``: leave one part of the paper's chain out
  (utils.AUGMENTATION_STEPS), in the fast path and in --reference-augment alike;
- ``--repeat-factor-threshold T``: LVIS's repeat-factor sampling (ssd_support/repeat_factor.py).
"""

import json

from torch.utils.data import Subset

from datasets import PascalVOCDataset
from ssd_support.checkpoints import TrainingSetupError
from ssd_support.files import objects_list_path
from ssd_support.repeat_factor import repeat_factors
from utils import AUGMENTATION_STEPS

# Not the paper's 0, which lets a background image teach nothing. Measured with bench/bench_levers.py on a toy set
# whose background images hold decoys (docs/training.md#training-levers): after 200 iterations K = 3 raised the TEST
# mAP from 0.333 to 0.401 and cut the false positives per background image from 2.72 to 0.39 (score >= 0.2) and
# from 1.22 to 0 (>= 0.5). After only 80 iterations it halved the mAP of a model still learning the classes (0.210
# -> 0.100): a real run is long. 3, the paper's ratio of negatives to positives, as if each background image held
# one object; on data where every image has an object (VOC) any K trains the same as 0.
NEGATIVES_PER_EMPTY_IMAGE = 3


def add_data_options(parser):
    """train.py's "data" option group: the lists, which objects, the augmentation and its parts, the levers."""
    data = parser.add_argument_group("data")
    data.add_argument("--data-folder", required=True,
                      help="folder with TRAIN_images.json, TRAIN_objects.json, TEST_*.json and label_map.json "
                           "(made by create_data_lists.py)")
    data.add_argument("--skip-difficult", action="store_true",
                      help="drop objects marked difficult from training (the paper trains on them)")
    data.add_argument("--no-augment", action="store_true",
                      help="train without data augmentation (the TEST transform: resize + normalize). Costs "
                           "~19 mAP points on VOC; only useful to overfit a handful of images")
    for step, what in (("photometric", "the photometric distortions (brightness, contrast, saturation, hue)"),
                       ("zoom-out", "the zoom-out (expand: the image on a canvas up to 4x, worth ~3 mAP)"),
                       ("crop", "the IoU random crop"), ("flip", "the horizontal flip (for data where left and "
                                                                  "right differ: text, road signs)")):
        data.add_argument(f"--no-{step}", action="store_true",
                          help=f"leave {what} out of the paper's augmentation; all four: the same as --no-augment")
    data.add_argument("--negatives-per-empty-image", type=int, default=NEGATIVES_PER_EMPTY_IMAGE, metavar="K",
                      help="hard negatives mined in each TRAIN image without objects, so that background images "
                           "teach what is not an object (measured in docs/training.md); 0: the paper's loss, where "
                           "they contribute nothing. No effect when every TRAIN image has an object")
    data.add_argument("--repeat-factor-threshold", type=float, default=None, metavar="T",
                      help="LVIS's repeat-factor sampling: an image whose rarest class is in a fraction f < T of "
                           "the TRAIN images is shown sqrt(T / f) times per epoch (stochastic rounding); e.g. 0.1 "
                           "on a few thousand images, LVIS uses 0.001. Default: off, every image once")


def check_data_options(parser, args):
    """Refuse values of add_data_options's options that cannot work (parser.error: usage and one line, exit 2)."""
    if args.negatives_per_empty_image < 0:
        parser.error(f"--negatives-per-empty-image cannot be negative, got {args.negatives_per_empty_image}")
    if args.repeat_factor_threshold is not None and not 0 < args.repeat_factor_threshold <= 1:
        parser.error(f"--repeat-factor-threshold must be in (0, 1], got {args.repeat_factor_threshold}")


def augment_steps(args):
    """The parts of the paper's chain a run applies: utils.AUGMENTATION_STEPS less its --no-* switches.

    :return: tuple of step names, in the chain's order (empty with --no-augment)
    """
    if args.no_augment:
        return ()
    return tuple(step for step in AUGMENTATION_STEPS if not getattr(args, f"no_{step}", False))


def make_train_dataset(data_folder, image_size, keep_difficult=True, augment_steps=AUGMENTATION_STEPS,
                       reference_augment=False, max_images=None, preprocess=None):
    """The training set: difficult objects kept (the paper trains on them), optionally un-augmented or truncated.

    :param augment_steps: the augmentation's parts (``augment_steps``); empty: the TEST transform
    :param reference_augment: augment with utils.py's readable chain instead of the fast equivalent
    :param max_images: keep only the first N images (None: all)
    :param preprocess: the model's ``preprocess_config`` (None: ImageNet mean/std; --init-from a converted COCO
        checkpoint may name another)
    :return: a Dataset of ``(image (3, S, S) uint8, boxes (n, 4) fractional, labels (n,), difficulties (n,))``:
        the images are normalized on the device, a batch at a time (train.next_batch)
    :raises TrainingSetupError: when the TRAIN split has no images
    """
    dataset = PascalVOCDataset(data_folder, "TRAIN", keep_difficult=keep_difficult, augment=bool(augment_steps),
                               image_size=image_size, preprocess=preprocess, normalized=False,
                               reference_augment=reference_augment, augment_steps=augment_steps)
    if max_images is not None:
        dataset = Subset(dataset, range(min(max_images, len(dataset))))
    if len(dataset) == 0:
        raise TrainingSetupError(f"{data_folder}: the TRAIN split has no images")
    return dataset


def train_objects(data_folder, n_images):
    """The first ``n_images`` entries of ``TRAIN_objects.json`` (the images a --max-images run trains on)."""
    with open(objects_list_path(data_folder, "TRAIN")) as file:
        return json.load(file)[:n_images]


def empty_images_note(objects, keep_difficult, negatives_per_empty_image):
    """The start-up line on the TRAIN images without objects (none left after --skip-difficult counts too).

    :return: one sentence, or "" when every image has an object
    """
    n_empty = sum(not any(keep_difficult or not difficult for difficult in entry["difficulties"])
                  for entry in objects)
    if n_empty == 0:
        return ""
    if negatives_per_empty_image:
        return (f"{n_empty} of {len(objects)} TRAIN images have no objects: each contributes its "
                f"{negatives_per_empty_image} hardest negatives (--negatives-per-empty-image).")
    return (f"{n_empty} of {len(objects)} TRAIN images have no objects and contribute nothing to the loss "
            f"(--negatives-per-empty-image 0, the paper's loss; the default {NEGATIVES_PER_EMPTY_IMAGE} makes each "
            f"teach its hardest negatives).")


def train_repeat_factors(objects, threshold, keep_difficult):
    """--repeat-factor-threshold: the images' repeat factors and a sentence for the start-up line.

    :return: (list of floats or None without a threshold, sentence or "")
    """
    if threshold is None:
        return None, ""
    factors = repeat_factors(objects, threshold, keep_difficult)
    repeated = sum(factor > 1 for factor in factors)
    return factors, (f"Repeat factors (T={threshold:g}): {repeated} of {len(factors)} images repeated, "
                     f"{sum(factors):.1f} images per epoch expected, largest factor {max(factors):.2f}.")
