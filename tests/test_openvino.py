"""OpenVINO on the CPU runs the ``export.py --with-postprocess`` model and gives onnxruntime's outputs.

Skipped unless openvino, onnxruntime and onnx are installed (``requirements-extra.txt``).
"""

import numpy as np
import pytest
import torch

openvino = pytest.importorskip("openvino")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import export  # noqa: E402  (after the skips: export needs onnx)
from model import build_ssd  # noqa: E402
from ssd_support.onnx_export import POSTPROCESS_OUTPUTS  # noqa: E402

N_CLASSES = 4
LABEL_MAP = {"background": 0, "circle": 1, "square": 2, "triangle": 3}
# Absolute, on fractions of the image (boxes) and on probabilities (scores). Measured with openvino 2026.4.1
# and onnxruntime 1.32 on a 2-core Xeon: at most 2.4e-7 on the boxes and 2.9e-6 on the scores.
TOLERANCE = 2e-5
# OpenVINO's CPU plugin computes in bfloat16 by default on CPUs that have it (AMX / AVX512_BF16, as the
# machine the numbers above come from): there the scores differed from onnxruntime's by 1e-2, enough to
# reorder the detections (this test then fails). f32 gives onnxruntime's float32 results.
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, save_checkpoint):
    """An untrained SSD300 checkpoint exported as ``export.py --with-postprocess`` does (default settings).

    :return: path of the .onnx file
    """
    folder = tmp_path_factory.mktemp("openvino")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(folder / "ssd300.pt", build_ssd(N_CLASSES), LABEL_MAP)
    output = folder / "ssd300_nms.onnx"
    assert export.main(["--checkpoint", checkpoint, "--output", str(output), "--with-postprocess"]) == 0
    return output


@pytest.fixture(scope="module")
def images_and_expected(exported):
    """One image (the file was traced with two) and onnxruntime's outputs for it, {output name: array}."""
    images = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(1)).numpy()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    return images, dict(zip(POSTPROCESS_OUTPUTS, session.run(None, {"images": images})))


def run_openvino(path, images):
    """Run an ONNX file in OpenVINO on the CPU, in float32.

    :param path: the .onnx file
    :param images: (N, 3, S, S) float32 array
    :return: {output name: array}, the names as OpenVINO reads them from the file
    """
    compiled = openvino.Core().compile_model(str(path), "CPU", OPENVINO_CONFIG)
    result = compiled({"images": images})
    return {output.get_any_name(): result[output] for output in compiled.outputs}


def matched_rows(boxes, scores, labels, ref_boxes, ref_scores, ref_labels):
    """For each detection, the index of the reference detection with its label, box and score (to TOLERANCE).

    :param boxes, ref_boxes: (k, 4) fractional x1y1x2y2; scores, ref_scores: (k,); labels, ref_labels: (k,)
    :return: (k,) int array; -1 where no reference row matches or more than one does
    """
    same = ((labels[:, None] == ref_labels[None, :])
            & (np.abs(boxes[:, None, :] - ref_boxes[None, :, :]).max(axis=2) <= TOLERANCE)
            & (np.abs(scores[:, None] - ref_scores[None, :]) <= TOLERANCE))
    return np.where(same.sum(axis=1) == 1, same.argmax(axis=1), -1)


def test_openvino_gives_onnxruntime_outputs(exported, images_and_expected):
    """Every output to TOLERANCE, the detections row for row."""
    images, expected = images_and_expected
    outputs = run_openvino(exported, images)

    assert list(outputs) == list(POSTPROCESS_OUTPUTS)  # the same names, in the same order
    for name in POSTPROCESS_OUTPUTS:
        assert outputs[name].shape == expected[name].shape, name
        assert outputs[name].dtype == expected[name].dtype, name  # int64 labels and counts stay int64
    np.testing.assert_allclose(outputs["decoded_boxes"], expected["decoded_boxes"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(outputs["class_scores"], expected["class_scores"], rtol=0, atol=TOLERANCE)

    count = int(expected["num_detections"][0])
    assert outputs["num_detections"].tolist() == [count] and count == 200  # untrained: capped at top_k
    boxes, scores, labels = (outputs[name][0] for name in ("detection_boxes", "detection_scores", "detection_labels"))
    ref_boxes, ref_scores, ref_labels = (expected[name][0]
                                         for name in ("detection_boxes", "detection_scores", "detection_labels"))
    # Two detections whose scores differ by less than the two runtimes do may be ranked either way, so the
    # rows are matched by label, box and score rather than compared in place; every row must match one
    # reference row, and a row may only have moved past rows of (nearly) its own score.
    match = matched_rows(boxes, scores, labels, ref_boxes, ref_scores, ref_labels)
    assert (match >= 0).all() and sorted(match.tolist()) == list(range(count))
    assert (np.abs(ref_scores[match] - ref_scores) <= 2 * TOLERANCE).all()
    assert (np.diff(scores) <= 0).all()  # best first


def test_a_changed_input_is_seen_by_the_comparison(exported, images_and_expected):
    """The comparison above can fail: a 1% change of the input moves the outputs far beyond TOLERANCE
    (as a wrongly scaled input to either runtime would)."""
    images, expected = images_and_expected
    outputs = run_openvino(exported, images * 1.01)
    # Measured: 9.0e-4 on the scores, 1.4e-4 on the boxes (an untrained network's outputs vary little).
    assert np.abs(outputs["class_scores"] - expected["class_scores"]).max() > 5 * TOLERANCE
    assert np.abs(outputs["decoded_boxes"] - expected["decoded_boxes"]).max() > 5 * TOLERANCE


def test_matched_rows_refuses_a_moved_box_and_a_changed_label(images_and_expected):
    """The detections' comparison can fail: rows off by 1.5 TOLERANCE in one coordinate, or with another
    label, match nothing; the others match themselves."""
    _, expected = images_and_expected
    boxes, scores, labels = (expected[name][0].copy()
                             for name in ("detection_boxes", "detection_scores", "detection_labels"))
    boxes[3, 2] += 1.5 * TOLERANCE
    labels[7] = labels[7] % (N_CLASSES - 1) + 1  # another object class
    scores[11] -= 1.5 * TOLERANCE
    match = matched_rows(boxes, scores, labels, *(expected[name][0] for name in
                                                  ("detection_boxes", "detection_scores", "detection_labels")))
    expected_match = np.arange(len(boxes))
    expected_match[[3, 7, 11]] = -1
    assert match.tolist() == expected_match.tolist()
