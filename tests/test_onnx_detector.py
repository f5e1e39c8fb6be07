"""OnnxDetector: an ONNX file's metadata is checked against its graph before any image is prepared for it.

The files here are a few hundred bytes: a graph with the detection outputs of export.py --with-postprocess as
constants (one detection), so that the metadata, not the network, is what each test varies.
"""

import json

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from ssd_support.onnx_detector import OnnxDetector, OnnxModelError  # noqa: E402

LABEL_MAP = {"background": 0, "circle": 1}


def write_model(path, size=300, **metadata):
    """An ONNX file taking images (N, 3, size, size) and answering one circle at (0.1, 0.2, 0.5, 0.6) with
    score 0.9, with export.py's metadata (``metadata`` overrides it; a None value leaves the key out)."""
    outputs = {"detection_boxes": (TensorProto.FLOAT, [1, 1, 4], [0.1, 0.2, 0.5, 0.6]),
               "detection_scores": (TensorProto.FLOAT, [1, 1], [0.9]),
               "detection_labels": (TensorProto.INT64, [1, 1], [1]),
               "num_detections": (TensorProto.INT64, [1], [1])}
    nodes = [helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_value", kind, shape, values))
             for name, (kind, shape, values) in outputs.items()]
    graph = helper.make_graph(
        nodes, "fake_ssd", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(name, kind, shape) for name, (kind, shape, _) in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    written = {"label_map": json.dumps(LABEL_MAP), "image_size": str(size),
               "preprocess": json.dumps({"mean": [0.5] * 3, "std": [0.25] * 3, "antialias": True}), **metadata}
    for key, value in written.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return str(path)


def refusal(path):
    with pytest.raises(OnnxModelError) as caught:
        OnnxDetector(path, providers=["CPUExecutionProvider"])
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    return message


def test_metadata_that_fits_its_graph_is_used(tmp_path):
    detector = OnnxDetector(write_model(tmp_path / "ok.onnx"), providers=["CPUExecutionProvider"])
    assert (detector.image_size, detector.label_map) == (300, LABEL_MAP)
    [found] = detector([Image.new("RGB", (200, 100))], min_score=0.5)
    assert found == [{"label": "circle", "score": 0.9, "box": [20.0, 20.0, 100.0, 60.0]}]


def test_an_image_size_beyond_the_bound_is_refused_before_any_image_is_resized(tmp_path):
    """image_size 20000 resized each image to 20000x20000 float32 (14 GB) before the graph refused it (issue
    32, 8): now the file is refused when it is opened."""
    message = refusal(write_model(tmp_path / "huge.onnx", image_size="20000"))
    assert "image_size 20000" in message and "300, 512" in message


def test_an_image_size_the_graph_does_not_take_is_refused_naming_both(tmp_path):
    message = refusal(write_model(tmp_path / "other.onnx", image_size="512"))
    assert "image_size 512" in message and "images ['N', 3, 300, 300]" in message


@pytest.mark.parametrize("metadata, named", [
    ({"label_map": "[" * 100_000}, "nested too deeply"),  # a RecursionError traceback before
    ({"label_map": '["circle"]'}, "label_map"),
    ({"image_size": "three hundred"}, "image_size"),
    ({"image_size": None}, "image_size"),
    ({"preprocess": '{"mean": [0.5, 0.5]}'}, "preprocess mean"),
    ({"preprocess": '{"std": [1, 1, 0]}'}, "preprocess std"),
    ({"preprocess": '{"gamma": 2}'}, "preprocess"),
])
def test_unusable_metadata_is_one_line(tmp_path, metadata, named):
    assert named in refusal(write_model(tmp_path / "bad.onnx", **metadata))


def test_files_without_preprocess_metadata_use_imagenets(tmp_path):
    detector = OnnxDetector(write_model(tmp_path / "old.onnx", preprocess=None), providers=["CPUExecutionProvider"])
    assert detector.preprocess == {}
    assert np.isfinite(detector([Image.new("RGB", (30, 30))])[0][0]["score"])
