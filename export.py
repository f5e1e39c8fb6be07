"""Export a trained SSD to ONNX, for onnxruntime (tested) and other ONNX runtimes.

    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300.onnx
    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300_nms.onnx --with-postprocess

The command line of ``ssd_support/onnx_export.py``, whose docstring says what the ONNX model takes and returns
(the network's raw outputs, or with ``--with-postprocess`` the decoded boxes, the softmax and the detections after
NMS), what its metadata holds and which exporter writes it. Needs the ``onnx`` package (``pip install onnx``);
``onnxruntime`` to run the model.
"""

import argparse
import sys

from model import EVAL_CANDIDATES_PER_CLASS, EVAL_MIN_SCORE, EVAL_NMS_IOU, EVAL_TOP_K
from ssd_support.onnx_export import DEFAULT_OPSET, MIN_OPSET, NETWORK_OUTPUTS, POSTPROCESS_OUTPUTS, export_checkpoint


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Export a trained SSD to ONNX (dynamic batch size).")
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by train.py")
    parser.add_argument("--output", default="model.onnx", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    parser.add_argument("--with-postprocess", action="store_true",
                        help="also export box decoding, NMS and the best --top-k detections per image")
    parser.add_argument("--min-score", type=float, default=EVAL_MIN_SCORE, help="with postprocess: minimum class score")
    parser.add_argument("--max-overlap", type=float, default=EVAL_NMS_IOU, help="with postprocess: NMS IoU threshold")
    parser.add_argument("--top-k", type=int, default=EVAL_TOP_K, help="with postprocess: detections per image")
    parser.add_argument("--max-candidates", type=int, default=EVAL_CANDIDATES_PER_CLASS,
                        help="with postprocess: candidates per image and class before NMS")
    return parser.parse_args(argv)


def main(argv=None):
    """Export the checkpoint; print what was written.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status: 0 on success, 1 when the checkpoint cannot be read or exported
    """
    args = parse_args(argv)
    try:
        export_checkpoint(args.checkpoint, args.output, args.opset, args.with_postprocess, args.min_score,
                          args.max_overlap, args.top_k, args.max_candidates)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        print(f"export.py: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    outputs = POSTPROCESS_OUTPUTS if args.with_postprocess else NETWORK_OUTPUTS
    print(f"{args.output}: input images (N, 3, S, S); outputs {', '.join(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
