"""Export a trained SSD to ONNX, for onnxruntime (tested) and other ONNX runtimes.

    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300.onnx
    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300_nms.onnx --with-postprocess
    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300_int8.onnx --with-postprocess \
        --int8 --calibration data/voc   # static INT8 for CPUs, calibrated on 100 TRAIN images of the lists
    python export.py --checkpoint checkpoints/ssd300_iter_120000.pt --output ssd300_fp16.onnx --half  # GPU runtimes

The command line of ``ssd_support/onnx_export.py``, whose docstring says what the ONNX model takes and returns
(the network's raw outputs, or with ``--with-postprocess`` the decoded boxes, the softmax and the detections after
NMS), what its metadata holds and which exporter writes it; ``ssd_support/quantization.py``'s says how --int8 and
--half convert it (same inputs and outputs, float32). Needs the ``onnx`` package (``pip install onnx``);
``onnxruntime`` to run the model.
"""

import argparse
import sys

from model import EVAL_CANDIDATES_PER_CLASS, EVAL_MIN_SCORE, EVAL_NMS_IOU, EVAL_TOP_K
from ssd_support.files import output_file_argument
from ssd_support.quantization import DEFAULT_CALIBRATION_IMAGES
from ssd_support.onnx_export import DEFAULT_OPSET, MIN_OPSET, NETWORK_OUTPUTS, POSTPROCESS_OUTPUTS, export_checkpoint


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Export a trained SSD to ONNX (dynamic batch size).")
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by train.py")
    parser.add_argument("--output", default="model.onnx", type=output_file_argument(".onnx", "an ONNX model"),
                        help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    parser.add_argument("--with-postprocess", action="store_true",
                        help="also export box decoding, NMS and the best --top-k detections per image")
    parser.add_argument("--min-score", type=float, default=EVAL_MIN_SCORE, help="with postprocess: minimum class score")
    parser.add_argument("--max-overlap", type=float, default=EVAL_NMS_IOU, help="with postprocess: NMS IoU threshold")
    parser.add_argument("--top-k", type=int, default=EVAL_TOP_K, help="with postprocess: detections per image")
    parser.add_argument("--max-candidates", type=int, default=EVAL_CANDIDATES_PER_CLASS,
                        help="with postprocess: candidates per image and class before NMS")
    precision = parser.add_argument_group("reduced precision (ssd_support/quantization.py)")
    precision.add_argument("--int8", action="store_true",
                           help="static INT8 (onnxruntime.quantization, QDQ) for CPUs; needs --calibration")
    precision.add_argument("--calibration", default=None, metavar="DATA_FOLDER",
                           help="--int8: the lists' folder (create_data_lists.py's) whose TRAIN images calibrate it")
    precision.add_argument("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES, metavar="N",
                           help="--int8: how many TRAIN images, spread over the list")
    precision.add_argument("--half", action="store_true",
                           help="the network in float16 for GPU runtimes; float32 inputs, outputs and post-processing")
    args = parser.parse_args(argv)
    if args.int8 and args.half:
        parser.error("--int8 and --half: choose one")
    if args.int8 and args.calibration is None:
        parser.error("--int8 needs --calibration DATA_FOLDER (the lists' folder whose TRAIN images calibrate it)")
    if args.calibration is not None and not args.int8:
        parser.error("--calibration is for --int8")
    if args.calibration_images < 1:
        parser.error(f"--calibration-images must be at least 1, got {args.calibration_images}")
    return args


def main(argv=None):
    """Export the checkpoint; print what was written.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status: 0 on success, 1 when the checkpoint cannot be read or exported
    """
    args = parse_args(argv)
    try:
        if args.int8 or args.half:
            from ssd_support.quantization import export_checkpoint_quantized  # needs onnxruntime's quantizer

            if args.half:  # the exporter runs the float16 network on the CPU, which has no fast float16 kernels
                print("export.py: --half traces the network in float16 on the CPU: this takes minutes", flush=True)
            export_checkpoint_quantized(args.checkpoint, args.output, "int8" if args.int8 else "float16",
                                        args.calibration, args.calibration_images, opset=args.opset,
                                        with_postprocess=args.with_postprocess, min_score=args.min_score,
                                        max_overlap=args.max_overlap, top_k=args.top_k,
                                        max_candidates=args.max_candidates)
        else:
            export_checkpoint(args.checkpoint, args.output, args.opset, args.with_postprocess, args.min_score,
                              args.max_overlap, args.top_k, args.max_candidates)
    except (ValueError, KeyError, RuntimeError, OSError, ImportError) as error:
        print(f"export.py: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    outputs = POSTPROCESS_OUTPUTS if args.with_postprocess else NETWORK_OUTPUTS
    kind = "INT8 " if args.int8 else "FP16 (float32 inputs and outputs) " if args.half else ""
    print(f"{args.output}: {kind}input images (N, 3, S, S); outputs {', '.join(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
