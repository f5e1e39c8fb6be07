"""ssd_support.onnx_eval and eval.py --onnx: an export.py --with-postprocess model scores the mAP its checkpoint
scores on the same lists, and what cannot be evaluated is refused in one line naming the file."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import eval as eval_script  # noqa: E402  (after the skips: export needs onnx)
import export  # noqa: E402
from datasets import PascalVOCDataset, collate_fn, load_label_map  # noqa: E402
from model import build_ssd  # noqa: E402
from ssd_support import onnx_eval  # noqa: E402
from ssd_support.onnx_detector import DETECTION_OUTPUTS, OnnxModelError  # noqa: E402

# export.py's defaults, which are eval.py's: what a graph exported without options records.
DEFAULT_GRAPH = {"min_score": 0.01, "max_overlap": 0.45, "top_k": 200, "max_candidates": 400}


@pytest.fixture(scope="module")
def model_and_lists(toy_data_folder, tmp_path_factory, save_checkpoint):
    """An untrained SSD300's checkpoint, its float32 with-postprocess export, and TEST lists it does well on.

    An untrained network scores ~0 mAP on real objects, which a broken export would score too. So the lists'
    objects are made from the network's own detections (PyTorch's): in each of 2 toy images, the best detection
    of each class. The APs are then high but not all 1 (one image's best detection of a class can score below
    another image's second best, a false positive ranked above a hit), and depend on the export giving the same
    boxes, labels and score order.

    :return: (data folder, checkpoint path, onnx path), strs
    """
    folder = tmp_path_factory.mktemp("onnx_eval")
    with open(os.path.join(toy_data_folder, "TEST_images.json")) as file:
        images = [os.path.join(toy_data_folder, path) for path in json.load(file)[:2]]
    (folder / "TEST_images.json").write_text(json.dumps(images))
    (folder / "TEST_objects.json").write_text(json.dumps([{"boxes": [], "labels": [], "difficulties": []}] * 2))
    label_map = load_label_map(toy_data_folder)
    (folder / "label_map.json").write_text(json.dumps(label_map))

    torch.manual_seed(0)
    network = build_ssd(len(label_map)).eval()
    loader = torch.utils.data.DataLoader(PascalVOCDataset(str(folder), "TEST", keep_difficult=True), batch_size=2,
                                         collate_fn=collate_fn)
    collected = eval_script.collect_detections(network, loader, "cpu", progress=False)
    objects = []
    for path, boxes, labels in zip(images, collected["det_boxes"], collected["det_labels"]):
        with Image.open(path) as image:
            scale = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
        best = [int(torch.nonzero(labels == label)[0]) for label in sorted(set(labels.tolist()))]  # best first
        objects.append({"boxes": (boxes[best] * scale).tolist(), "labels": labels[best].tolist(),
                        "difficulties": [0] * len(best)})
    (folder / "TEST_objects.json").write_text(json.dumps(objects))

    checkpoint = save_checkpoint(folder / "ssd300.pt", network, label_map)
    onnx_path = str(folder / "ssd300_nms.onnx")
    assert export.main(["--checkpoint", checkpoint, "--output", onnx_path, "--with-postprocess"]) == 0
    return str(folder), checkpoint, onnx_path


def _evaluate(folder, model_option, model_path, output, *options):
    """eval.py's main on the lists with --model_option model_path; the results file it wrote."""
    assert eval_script.main(["--data-folder", folder, model_option, model_path, "--workers", "0", "--device", "cpu",
                             "--no-progress", "--output", str(output), *options]) == 0
    return json.loads(output.read_text())


def test_onnx_export_scores_the_checkpoints_map(model_and_lists, tmp_path, capsys):
    folder, checkpoint, onnx_path = model_and_lists
    metric = ["--metric", "all"]
    from_checkpoint = _evaluate(folder, "--checkpoint", checkpoint, tmp_path / "checkpoint.json", *metric)
    from_onnx = _evaluate(folder, "--onnx", onnx_path, tmp_path / "onnx.json", *metric)
    print(f"mAP 11-point / area: checkpoint {from_checkpoint['map_11pt']:.6f} / {from_checkpoint['map_area']:.6f}, "
          f"onnx {from_onnx['map_11pt']:.6f} / {from_onnx['map_area']:.6f}; COCO AP checkpoint "
          f"{from_checkpoint['coco']['AP']:.6f}, onnx {from_onnx['coco']['AP']:.6f}")
    assert 0.2 < from_checkpoint["map_11pt"] < 1.0  # a number that a wrong box, label or order would change
    for key in ("map_11pt", "map_area"):
        assert from_onnx[key] == pytest.approx(from_checkpoint[key], abs=1e-3), key
    for key in ("ap_11pt", "ap_area"):
        assert from_onnx[key].keys() == from_checkpoint[key].keys()
        for name, ap in from_checkpoint[key].items():
            assert from_onnx[key][name] == pytest.approx(ap, abs=1e-3), (key, name)
    for key in ("AP", "AP50", "AP75"):
        assert from_onnx["coco"][key] == pytest.approx(from_checkpoint["coco"][key], abs=1e-3), key
    assert from_onnx["onnx"] == onnx_path and from_onnx["checkpoint"] is None
    assert from_onnx["settings"] == from_checkpoint["settings"]
    assert f"{onnx_path} (onnxruntime) on {folder} TEST: 2 images" in capsys.readouterr().out


def test_what_cannot_be_evaluated_is_one_line_naming_the_file(model_and_lists, tmp_path, capsys):
    folder, checkpoint, onnx_path = model_and_lists
    with pytest.raises(SystemExit) as exit_:  # one model or the other: argparse's usage error
        eval_script.parse_args(["--data-folder", folder, "--checkpoint", checkpoint, "--onnx", onnx_path])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err

    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"not an ONNX model")
    other_folder = tmp_path / "lists"
    other_folder.mkdir()
    for name in ("TEST_images.json", "TEST_objects.json"):
        with open(os.path.join(folder, name)) as file:
            (other_folder / name).write_text(file.read())
    (other_folder / "label_map.json").write_text(json.dumps({"background": 0, "cat": 1, "dog": 2, "bird": 3}))
    cases = [(folder, ["--onnx", str(tmp_path / "missing.onnx")], [str(tmp_path / "missing.onnx"), "not found"]),
             (folder, ["--onnx", str(not_onnx)], [str(not_onnx), "cannot load"]),
             (folder, ["--onnx", onnx_path, "--max-overlap", "0.5"], [onnx_path, "max_overlap 0.45"]),
             (folder, ["--onnx", onnx_path, "--no-candidate-cap"], [onnx_path, "max_candidates 400"]),
             (str(other_folder), ["--onnx", onnx_path], [onnx_path, str(other_folder / "label_map.json")])]
    for data_folder, options, named in cases:
        assert eval_script.main(["--data-folder", data_folder, "--workers", "0", "--no-progress", *options]) == 1
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and error.startswith("eval.py: error: "), error
        assert all(text in error for text in named), (options, error)


def test_the_graphs_settings_must_give_the_evaluations_detections():
    check = onnx_eval.check_postprocess_settings
    check(DEFAULT_GRAPH, "m.onnx", 0.01, 0.45, 200, 400)  # export.py's defaults are eval.py's
    # A lower min_score and a larger top_k are narrowed to the evaluation's afterwards; a cap of every prior is none.
    check({**DEFAULT_GRAPH, "min_score": 0.001, "top_k": 400}, "m.onnx", 0.05, 0.45, 100, 400)
    check({**DEFAULT_GRAPH, "max_candidates": 8732}, "m.onnx", 0.01, 0.45, 200, None, n_priors=8732)
    for graph, evaluation, named in [
            ({**DEFAULT_GRAPH, "min_score": 0.2}, (0.01, 0.45, 200, 400), "min_score 0.2"),
            ({**DEFAULT_GRAPH, "top_k": 100}, (0.01, 0.45, 200, 400), "top_k 100"),
            ({**DEFAULT_GRAPH, "max_overlap": 0.5}, (0.01, 0.45, 200, 400), "max_overlap 0.5"),
            (DEFAULT_GRAPH, (0.01, 0.45, 200, None), "max_candidates 400")]:
        with pytest.raises(OnnxModelError, match="m.onnx: exported with") as error:
            check(graph, "m.onnx", *evaluation, n_priors=8732)
        assert named in str(error.value) and len(str(error.value).splitlines()) == 1


class FakeSession:
    """An onnxruntime session stand-in returning fixed detection outputs, recording the input it was given."""

    def __init__(self, outputs, input_type="tensor(float)"):
        self.outputs, self.input_type, self.inputs = outputs, input_type, []

    def get_inputs(self):
        """The ``images`` input's description: only its type is read."""
        return [type("Input", (), {"type": self.input_type})()]

    def run(self, names, feeds):
        """Record the images; return the four detection outputs."""
        self.inputs.append(feeds["images"])
        return self.outputs


def test_collect_keeps_the_real_rows_above_min_score_best_top_k_first():
    """Rows past num_detections are padding; the evaluation's min_score and top_k narrow the graph's rows."""
    boxes = np.tile(np.array([[0.1, 0.1, 0.5, 0.5]], dtype=np.float16), (2, 4, 1))
    scores = np.array([[0.9, 0.5, 0.05, 0.0], [0.8, 0.0, 0.0, 0.0]], dtype=np.float16)
    labels = np.array([[1, 2, 1, 0], [3, 0, 0, 0]], dtype=np.int64)
    session = FakeSession([boxes, scores, labels, np.array([3, 1], dtype=np.int64)], "tensor(float16)")
    detector = type("Detector", (), {"session": session, "output_names": list(DETECTION_OUTPUTS)})()
    truth = ([torch.zeros(1, 4), torch.zeros(0, 4)],
             [torch.ones(1, dtype=torch.long), torch.zeros(0, dtype=torch.long)],
             [torch.zeros(1, dtype=torch.uint8), torch.zeros(0, dtype=torch.uint8)])
    loader = [(torch.zeros(2, 3, 8, 8), *truth)]
    collected = onnx_eval.collect_onnx_detections(detector, loader, min_score=0.1, top_k=1, progress=False)
    assert session.inputs[0].dtype == np.float16  # a half-precision export gets half-precision images
    assert [s.tolist() for s in collected["det_scores"]] == [[pytest.approx(0.9, abs=1e-3)],
                                                             [pytest.approx(0.8, abs=1e-3)]]
    assert [lab.tolist() for lab in collected["det_labels"]] == [[1], [3]]
    assert collected["det_boxes"][0].dtype == torch.float32 and collected["det_boxes"][0].shape == (1, 4)
    wide = onnx_eval.collect_onnx_detections(detector, loader, min_score=0.01, top_k=200, progress=False)
    assert [lab.tolist() for lab in wide["det_labels"]] == [[1, 2, 1], [3]]
    assert wide["true_labels"] == truth[1]
