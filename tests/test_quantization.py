"""export.py --int8 / --half (ssd_support/quantization.py): the models keep their inputs and outputs, and the INT8
one, run by OnnxDetector (detect.py --onnx) and OnnxRuntimeSSD, gives boxes close to float32's."""

import os

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import export  # noqa: E402
from model import build_ssd  # noqa: E402
from ssd_support.images import load_image  # noqa: E402
from ssd_support.onnx_detector import OnnxDetector, preprocess_numpy  # noqa: E402
from ssd_support.onnx_export import NETWORK_OUTPUTS, OnnxRuntimeSSD  # noqa: E402
from ssd_support.quantization import calibration_image_paths  # noqa: E402

LABEL_MAP = {"background": 0, "circle": 1, "square": 2, "triangle": 3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, save_checkpoint, toy_data_folder):
    """An untrained SSD300's checkpoint and its float32 and INT8 with-postprocess exports (2 calibration images)."""
    folder = tmp_path_factory.mktemp("quantization")
    torch.manual_seed(0)
    network = build_ssd(4)
    checkpoint = save_checkpoint(folder / "ssd300.pt", network, LABEL_MAP)
    paths = {"float32": str(folder / "float32.onnx"), "int8": str(folder / "int8.onnx")}
    assert export.main(["--checkpoint", checkpoint, "--output", paths["float32"], "--with-postprocess"]) == 0
    assert export.main(["--checkpoint", checkpoint, "--output", paths["int8"], "--with-postprocess", "--int8",
                        "--calibration", toy_data_folder, "--calibration-images", "2"]) == 0
    return checkpoint, paths, network.eval()


def test_int8_model_keeps_the_outputs_and_metadata_and_is_a_quarter_of_the_size(exported):
    _, paths, _ = exported
    float_session, int8_session = (ort.InferenceSession(paths[k], providers=["CPUExecutionProvider"])
                                   for k in ("float32", "int8"))
    for get in ("get_inputs", "get_outputs"):
        assert ([(x.name, x.type) for x in getattr(float_session, get)()]
                == [(x.name, x.type) for x in getattr(int8_session, get)()])
    metadata = int8_session.get_modelmeta().custom_metadata_map
    assert metadata["label_map"] == float_session.get_modelmeta().custom_metadata_map["label_map"]
    assert "int8" in metadata["quantization"]
    model = onnx.load(paths["int8"])
    assert sum(node.op_type == "DequantizeLinear" for node in model.graph.node) >= 35  # every convolution's weights
    import os
    assert os.path.getsize(paths["int8"]) < 0.3 * os.path.getsize(paths["float32"])


def test_int8_boxes_and_scores_are_close_to_float32(exported, toy_data_folder):
    """"Close": over every prior of two TEST images, the decoded boxes differ by less than 1 pixel on average
    (of 300; measured 0.35) and 8 pixels at most, the class probabilities by less than 0.03 on average (measured
    0.01). Bounded on the per-prior outputs the NMS selects from: an untrained network scores many overlapping
    priors nearly alike, so which of them survives the NMS can change with any rounding. OnnxDetector
    (detect.py --onnx) runs the INT8 file unchanged, its detections inside the images."""
    from datasets import read_image_list

    _, paths, _ = exported
    images = [load_image(path) for path in read_image_list(toy_data_folder, "TEST")[:2]]
    batch = np.stack([preprocess_numpy(image, 300) for image in images])
    outputs = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"images": batch})
               for k, p in paths.items()}
    box_error = np.abs(outputs["float32"][0] - outputs["int8"][0]) * 300
    assert box_error.mean() < 1.0 and box_error.max() < 8.0
    assert np.abs(outputs["float32"][1] - outputs["int8"][1]).mean() < 0.03
    found = {k: OnnxDetector(p, providers=["CPUExecutionProvider"])(images, min_score=0.2) for k, p in paths.items()}
    for image, expected, actual in zip(images, found["float32"], found["int8"]):
        assert actual and len(actual) == len(expected)  # the same candidates pass 0.2: top_k (200) of each
        assert all(0 <= d["box"][0] < d["box"][2] <= image.width and 0 <= d["box"][1] < d["box"][3] <= image.height
                   for d in actual)


def test_int8_network_runs_in_onnxruntime_ssd(exported, toy_data_folder, tmp_path):
    checkpoint, _, network = exported
    path = str(tmp_path / "network_int8.onnx")
    assert export.main(["--checkpoint", checkpoint, "--output", path, "--int8", "--calibration", toy_data_folder,
                        "--calibration-images", "1"]) == 0
    model = OnnxRuntimeSSD(network, onnx_path=path).eval()
    images = torch.from_numpy(preprocess_numpy(load_image(calibration_image_paths(toy_data_folder, 1)[0]), 300))[None]
    with torch.no_grad():
        expected, actual = network(images), model(images)
    assert [tuple(t.shape) for t in actual] == [tuple(t.shape) for t in expected] and len(actual) == len(NETWORK_OUTPUTS)
    # Offsets are encoded (centre / (0.1 x prior side), log(side / prior side) / 0.2): a mean error of 0.15 is a
    # 1.5% error of the prior's side on the centre, 3% on the side (measured 0.084, for offsets of mean size 0.54).
    assert (actual[0] - expected[0]).abs().mean() < 0.15


def test_half_export_has_float16_weights_and_float32_io(exported, tmp_path):
    checkpoint, paths, _ = exported
    path = str(tmp_path / "fp16.onnx")
    assert export.main(["--checkpoint", checkpoint, "--output", path, "--with-postprocess", "--half"]) == 0
    model = onnx.load(path)
    float32 = onnx.TensorProto.FLOAT
    assert all(x.type.tensor_type.elem_type == float32 for x in model.graph.input if x.name == "images")
    reference = onnx.load(paths["float32"])
    assert ([(x.name, x.type.tensor_type.elem_type) for x in model.graph.output]
            == [(x.name, x.type.tensor_type.elem_type) for x in reference.graph.output])
    weights = [t for t in model.graph.initializer if t.name.endswith(".weight")]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)


def test_bad_calibration_settings_fail_in_one_line_naming_the_list(exported, tmp_path, capsys):
    checkpoint, _, _ = exported
    output = tmp_path / "int8.onnx"
    with pytest.raises(SystemExit):
        export.parse_args(["--checkpoint", checkpoint, "--int8"])
    assert "--int8 needs --calibration" in capsys.readouterr().err
    assert export.main(["--checkpoint", checkpoint, "--output", str(output), "--int8", "--calibration",
                        str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "TRAIN_images.json" in error
    assert not output.exists()


def test_calibration_refuses_lists_the_data_loader_refuses(toy_data_folder, tmp_path):
    """An incomplete set of lists, or a TRAIN list edited by hand, is refused as datasets.py refuses it (one line
    naming the file), not calibrated on."""
    import json
    import shutil

    folder = str(tmp_path / "lists")
    shutil.copytree(toy_data_folder, folder)
    train_list = os.path.join(folder, "TRAIN_images.json")
    with open(train_list) as file:
        paths = json.load(file)
    with open(train_list, "w") as file:
        json.dump(paths[:2], file)  # edited by hand: no longer the list written with the others
    with pytest.raises(ValueError) as error:
        calibration_image_paths(folder, 2)
    assert str(error.value).startswith(f"{train_list}: not the file written with the other lists")
    assert len(str(error.value).splitlines()) == 1
    manifest = os.path.join(folder, "lists_manifest.json")
    with open(manifest, "w") as file:
        json.dump({"complete": False, "files": {}}, file)  # create_data_lists.py killed mid-way
    with pytest.raises(ValueError, match="lists_manifest.json: the lists were being written"):
        calibration_image_paths(folder, 2)
    os.remove(manifest)  # lists from elsewhere, no manifest: taken as they are
    assert len(calibration_image_paths(folder, 2)) == 2
