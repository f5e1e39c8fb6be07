"""Smaller and faster ONNX models of an exported SSD: static INT8 for CPUs, FP16 for GPU runtimes.

``export.py --int8 --calibration DATA_FOLDER`` and ``export.py --half`` are its command line; both start from
the float32 model ``onnx_export.export_checkpoint`` writes (with or without ``--with-postprocess``) and keep
its inputs, outputs and metadata, so ``detect.py --onnx`` / ``onnx_detector.OnnxDetector`` (with-postprocess
model) and ``onnx_export.OnnxRuntimeSSD`` (network-only model) run them unchanged.

INT8: onnxruntime's own tools: ``quant_pre_process`` (shape inference and onnxruntime's basic graph
optimizations, which fold the Identity nodes the exporter puts on shared biases), then ``quantize_static``,
QDQ format, int8 weights (per output channel) and uint8 activations (the u8 x s8 product is the fast integer
kernel of x86 CPUs), calibrated by min/max on images of the data folder's TRAIN list. The calibration images
are preprocessed exactly as ``OnnxDetector`` feeds the model (``onnx_detector.preprocess_numpy`` with the
file's metadata "preprocess"). Only the convolutions and the ReLU / max pooling between them are quantized:
the L2 norm of conv4_3, the box decoding, the softmax and the NMS stay float32. With the ReLU and the pooling
quantized too, onnxruntime fuses every DequantizeLinear -> Conv (-> Relu) -> QuantizeLinear of the SSD into
one integer convolution (QLinearConv) on the CPU; with the convolutions alone, those followed by a float ReLU
+ pooling, or feeding a float op, stay float convolutions of dequantized weights (no faster than float32).

FP16: the network exported in float16 by torch itself (``export_checkpoint(..., half=True)``): its weights and
arithmetic are float16; the ``images`` input and every output stay float32 (Cast nodes inside the graph: the
callers build float32 batches and read float32 boxes), and so does the post-processing of a --with-postprocess
model (a box corner needs float32: float16 has 0.3-pixel steps near 1.0 at 300 pixels). (onnxconverter-common's
float16 conversion was tried: it mistypes the post-processing's Cast nodes and onnxruntime refuses the model.) For GPU runtimes (onnxruntime's CUDA provider, TensorRT): onnxruntime's CPU provider has no float16
convolution on x86, so such a model is no use on a CPU.
"""

import os
import tempfile

import numpy as np

from ssd_support.data_lists import check_list_set
from ssd_support.files import images_list_path, refuse_inputs_as_outputs, write_atomically

DEFAULT_CALIBRATION_IMAGES = 100
# The ops quantized: the convolutions, and the ops between two of them that pass int8 values through unchanged
# in value (ReLU, max pooling), so that onnxruntime keeps the activations int8 from one convolution to the next.
INT8_OP_TYPES = ("Conv", "Relu", "MaxPool")


def calibration_image_paths(data_folder, n_images=DEFAULT_CALIBRATION_IMAGES):
    """``n_images`` image paths of a data folder's TRAIN list, spread evenly over it (a list made of several
    sources, VOC2007 then VOC2012 say, gives images of each).

    :param data_folder: the lists' folder (``create_data_lists.py``'s output, holding TRAIN_images.json)
    :param n_images: how many (all of them when the list is shorter)
    :return: list of paths, resolved as the data loader does
    :raises ValueError: one line naming the list, when it is missing, not JSON, empty or lists a missing image, or
        naming the list or its manifest when it is not of one complete set of create_data_lists.py (as the data
        loader refuses it: a set whose writing was interrupted, a list edited by hand)
    """
    from datasets import read_image_list  # the lesson's own reader: paths relative to the lists' folder

    list_path = images_list_path(data_folder, "TRAIN")
    if n_images < 1:
        raise ValueError(f"--calibration-images must be at least 1, got {n_images}")
    # The data loader (datasets.py) refuses an incomplete or edited set of lists: calibrating on it would be the
    # one place that takes it silently.
    check_list_set(data_folder, [list_path])
    try:
        paths = read_image_list(data_folder, "TRAIN")
    except FileNotFoundError:
        raise ValueError(f"{list_path}: not found (the calibration needs create_data_lists.py's lists)") from None
    if not paths:
        raise ValueError(f"{list_path}: lists no image to calibrate on")
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(n_images, len(paths))).round().astype(int)]
    missing = [path for path in chosen if not os.path.isfile(path)]
    if missing:
        raise ValueError(f"{list_path}: listed image {missing[0]} not found (moved? run create_data_lists.py again)")
    return chosen


def model_preprocessing(path):
    """The input side and the preprocessing an exported model's metadata names, as ``OnnxDetector`` reads them.

    :param path: an ONNX file written by ``onnx_export.export_checkpoint``
    :return: (image_size, {"mean", "std", "antialias"} for ``onnx_detector.preprocess_numpy``)
    :raises ValueError: when the metadata has no image_size
    """
    import json

    import onnx

    metadata = {prop.key: prop.value for prop in onnx.load(path, load_external_data=False).metadata_props}
    if "image_size" not in metadata:
        raise ValueError(f"{path}: no image_size in its metadata (export it with export.py)")
    return int(metadata["image_size"]), json.loads(metadata.get("preprocess", "null")) or {}


class ImageCalibrationReader:
    """Feeds calibration batches to onnxruntime's calibrator (its ``CalibrationDataReader`` interface:
    ``get_next`` returns {input name: array} or None when done).

    :param paths: image files
    :param image_size: the model's input side S
    :param preprocess: keyword arguments of ``onnx_detector.preprocess_numpy`` (mean, std, antialias)
    :param batch_size: images per batch (the exported models take any batch size)
    :param input_name: the model's input
    """

    def __init__(self, paths, image_size, preprocess, batch_size=1, input_name="images"):
        self.paths, self.image_size, self.preprocess = list(paths), image_size, dict(preprocess)
        self.batch_size, self.input_name = batch_size, input_name
        self.position = 0

    def get_next(self):
        """:return: {input_name: float32 array (B, 3, S, S)}, the next batch preprocessed as at inference, or
            None after the last
        :raises ValueError: (``images.UnreadableImageError``) one line naming an unreadable image"""
        from ssd_support.images import load_image
        from ssd_support.onnx_detector import preprocess_numpy

        batch = self.paths[self.position:self.position + self.batch_size]
        if not batch:
            return None
        self.position += len(batch)
        arrays = [preprocess_numpy(load_image(path), self.image_size, **self.preprocess) for path in batch]
        return {self.input_name: np.stack(arrays)}

    def rewind(self):
        """Start again from the first image."""
        self.position = 0


def quantize_int8(float_path, output_path, calibration_paths, op_types=INT8_OP_TYPES, batch_size=1):
    """Write a static INT8 (QDQ) copy of an exported float32 model, calibrated on images.

    :param float_path: the float32 ONNX file (``export_checkpoint``'s, either kind)
    :param output_path: the INT8 ONNX file to write (atomically; may not be ``float_path``)
    :param calibration_paths: image files to calibrate the activations' ranges on (see
        :func:`calibration_image_paths`)
    :param op_types: op types to quantize (default: the convolutions and the ReLU / max pooling between them)
    :param batch_size: calibration images per onnxruntime run
    :return: the metadata written ({key: value}), the float model's plus "quantization"
    :raises ValueError: one line, for an unreadable calibration image or a model without metadata
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    image_size, preprocess = model_preprocessing(float_path)
    reader = ImageCalibrationReader(calibration_paths, image_size, preprocess, batch_size)
    with tempfile.TemporaryDirectory() as folder:
        prepared, quantized = os.path.join(folder, "prepared.onnx"), os.path.join(folder, "int8.onnx")
        quant_pre_process(float_path, prepared)
        quantize_static(prepared, quantized, reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        # (not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops the batches it "merges"; the
                        # calibrator keeps only each batch's per-tensor min and max, a few bytes a batch, anyway)
                        calibration_providers=["CPUExecutionProvider"])
        model = onnx.load(quantized)
    note = (f"static int8, QDQ (onnxruntime.quantization.quantize_static), {'/'.join(op_types)} quantized, "
            f"per-channel int8 weights, uint8 activations, min/max over {len(calibration_paths)} TRAIN images")
    return _write_with_metadata(model, float_path, output_path, {"quantization": note})


def _write_with_metadata(model, float_path, output_path, extra):
    """Give ``model`` the float model's metadata plus ``extra``, check it and write it atomically.

    :return: the metadata written
    """
    import onnx

    metadata = {prop.key: prop.value for prop in onnx.load(float_path, load_external_data=False).metadata_props}
    metadata.update(extra)
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    write_atomically(output_path, lambda file: file.write(model.SerializeToString()), binary=True)
    return metadata


def export_checkpoint_quantized(checkpoint, output, precision, calibration_folder=None,
                                calibration_images=DEFAULT_CALIBRATION_IMAGES, **export_options):
    """``onnx_export.export_checkpoint`` followed by the INT8 or FP16 conversion: what ``export.py --int8`` /
    ``--half`` do. The float32 model goes to a temporary file; only ``output`` is written.

    :param checkpoint: path of a train.py checkpoint
    :param output: the .onnx file to write
    :param precision: "int8" or "float16"
    :param calibration_folder: int8: the lists' folder whose TRAIN images calibrate the activations
    :param calibration_images: int8: how many of them
    :param export_options: ``export_checkpoint``'s keyword arguments (opset, with_postprocess, min_score, ...)
    :return: int8: the metadata written; float16: None
    :raises ValueError: one line, for a bad calibration folder or image (checked before the export)
    """
    from ssd_support.onnx_export import export_checkpoint

    refuse_inputs_as_outputs([checkpoint], {"--output": output})  # the float32 export below writes a temporary file
    if precision not in ("int8", "float16"):
        raise ValueError(f"precision {precision!r}: expected 'int8' or 'float16'")
    if precision == "int8":
        if calibration_folder is None:
            raise ValueError("int8 needs calibration images: give --calibration DATA_FOLDER")
        paths = calibration_image_paths(calibration_folder, calibration_images)  # before the export: fail fast
        with tempfile.TemporaryDirectory() as folder:
            float_path = os.path.join(folder, "float32.onnx")
            export_checkpoint(checkpoint, float_path, **export_options)
            return quantize_int8(float_path, output, paths)
    export_checkpoint(checkpoint, output, half=True, **export_options)
    return None
