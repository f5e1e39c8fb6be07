"""Trained detectors from day one: turn published COCO-trained SSD300s into checkpoints of this repository.

    python convert_weights.py --from torchvision_coco --output checkpoints/ssd300_vgg16_coco.pt
    python convert_weights.py --from nvidia_coco --output checkpoints/ssd300_resnet50_coco.pt --allow-pickle

The command line of ``ssd_support/weights.py``, whose docstring says what each conversion does beyond renaming
layers (labels, priors, preprocessing, head layout). The output is an ordinary checkpoint ({"model", "config"},
``torch.load(weights_only=True)``-loadable): detect.py, eval.py, export.py, torch.hub, ``ssd300_vgg16(checkpoint=...)``
and ``train.py --init-from`` all take it. ``--file PATH`` reads a local copy instead of downloading (no network).
"""

import argparse
import os
import sys

import torch

from ssd_support.files import OutputRefused, output_file_argument, refuse_inputs_as_outputs, write_atomically
from ssd_support.weights import NVIDIA_COCO_FILE, SOURCES, TORCHVISION_COCO_FILE, WeightsError, converted_checkpoint


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Convert a published COCO-trained SSD300 into a checkpoint of this "
                                                 "repository (downloaded on first use, or read with --file).")
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES,
                        help="torchvision_coco: torchvision's ssd300_vgg16 COCO_V1 (VGG16); nvidia_coco: NVIDIA's "
                             "SSD300 v1.1 (ResNet-50)")
    parser.add_argument("--output", required=True, type=output_file_argument((".pt", ".pth"), "a checkpoint"),
                        help="the checkpoint to write (.pt)")
    parser.add_argument("--file", default=None,
                        help=f"a local copy of the published file ({TORCHVISION_COCO_FILE} or {NVIDIA_COCO_FILE}) "
                             "instead of downloading it")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="if the file holds more than weights, unpickle it whole (runs code named in the file: "
                             "only for files from a source you trust)")
    return parser.parse_args(argv)


def main(argv=None):
    """Convert and write the checkpoint; print what was written.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status: 0 on success, 1 with a one-line error otherwise
    """
    args = parse_args(argv)
    try:
        refuse_inputs_as_outputs([args.file], {"--output": args.output})  # before any work: the file stays
        checkpoint = converted_checkpoint(args.source, args.file, args.allow_pickle)
        if os.path.dirname(args.output):
            os.makedirs(os.path.dirname(args.output), exist_ok=True)
        write_atomically(args.output, lambda file: torch.save(checkpoint, file), binary=True)
    except (WeightsError, OutputRefused, OSError) as error:
        print(f"convert_weights.py: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    config = checkpoint["config"]
    print(f"{args.output}: SSD{config['image_size']} {config['base']}, {config['n_classes'] - 1} COCO classes "
          f"(labels 1..{config['n_classes'] - 1})" + (", with its own priors and preprocessing"
                                                      if "preprocess" in config else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
