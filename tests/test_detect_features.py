"""detect.py around the model: class filter, per-class thresholds, class-agnostic NMS, videos and --webcam on the
command line, the backends' detections, and exported ONNX models run without torch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import detect
from ssd_support import score_thresholds, video
from model import SSD300
from video_files import FakeCapture, box_detector
from utils import make_label_map

LABEL_MAP = make_label_map(["cat", "dog", "person"])
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return SSD300(n_classes=len(LABEL_MAP)).eval()


@pytest.fixture(scope="module")
def random_checkpoint(network, tmp_path_factory, save_checkpoint):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "ssd300_iter_000000.pt", network, LABEL_MAP)


@pytest.fixture(scope="module")
def noise_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "noise.png"
    Image.fromarray((np.random.RandomState(0).rand(90, 120, 3) * 255).astype(np.uint8)).save(path)
    return str(path)


# ---------------------------------------------------------------------------------------------------------
# --classes, --thresholds, --agnostic-nms
# ---------------------------------------------------------------------------------------------------------


def test_class_floors_from_classes_and_thresholds(tmp_path):
    inf = float("inf")
    assert score_thresholds.class_min_scores(LABEL_MAP) is None
    assert score_thresholds.class_min_scores(LABEL_MAP, classes=["dog"]) == [inf, 0.0, inf]
    assert score_thresholds.class_min_scores(LABEL_MAP, thresholds={"cat": 0.5, "person": 0.3}) == [0.5, 0.0, 0.3]
    assert score_thresholds.class_min_scores(LABEL_MAP, ["cat", "dog"], {"cat": 0.5, "person": 0.3}) == [0.5, 0.0, inf]
    with pytest.raises(ValueError, match="--classes: unknown class.*horse.*the model knows cat, dog, person"):
        score_thresholds.class_min_scores(LABEL_MAP, classes=["dog", "horse"])

    # eval.py's file and a plain mapping read the same; a bad file is one line naming it.
    (tmp_path / "eval.json").write_text(json.dumps({"thresholds": {"cat": 0.7}, "per_class": {}}))
    (tmp_path / "plain.json").write_text(json.dumps({"cat": 0.7}))
    (tmp_path / "bad.json").write_text(json.dumps(["cat", 0.7]))
    assert score_thresholds.load_thresholds(tmp_path / "eval.json") == score_thresholds.load_thresholds(tmp_path / "plain.json") == {
        "cat": 0.7}
    # Names in any letter case; a null threshold (eval.py: no detection of the class was ever right) drops it.
    assert score_thresholds.class_min_scores(LABEL_MAP, classes=["Dog"], thresholds={"CAT": 0.5}) == [inf, 0.0, inf]
    (tmp_path / "null.json").write_text(json.dumps({"thresholds": {"cat": None, "dog": 0.4}}))
    assert score_thresholds.class_min_scores(LABEL_MAP, thresholds=score_thresholds.load_thresholds(tmp_path / "null.json")) == [
        inf, 0.4, 0.0]
    for name, reason in (("bad.json", "expected {class: score"), ("missing.json", "no such file")):
        with pytest.raises(ValueError, match=reason) as error:
            score_thresholds.load_thresholds(str(tmp_path / name))
        assert name in str(error.value) and "\n" not in str(error.value)


def crafted_predictions(network):
    """Zero offsets (each box is its prior) and a background that wins everywhere except two priors: prior A
    scores cat 0.62 and dog 0.38 (two classes, one object), prior B, far from A, scores dog."""
    n_priors = network.priors_cxcy.shape[0]
    locs = torch.zeros(1, n_priors, 4)
    scores = torch.zeros(1, n_priors, 4)
    scores[0, :, 0] = 10.0
    a, b = 100, n_priors - 100  # a conv4_3 prior near the top-left, a small-map prior near the bottom right
    scores[0, a] = torch.tensor([-10.0, 10.0, 9.5, -10.0])
    scores[0, b] = torch.tensor([-10.0, -10.0, 10.0, -10.0])
    return locs, scores, network.priors_cxcy[[a, b]]


def test_agnostic_nms_and_class_floors_in_detect_objects(network):
    locs, scores, _ = crafted_predictions(network)
    settings = dict(min_score=0.2, max_overlap=0.45, top_k=200)

    def labels(**options):
        return sorted(network.detect_objects(locs, scores, **settings, **options)[1][0].tolist())

    assert labels() == [1, 2, 2]  # per-class NMS: prior A gives a cat and a dog box
    assert labels(class_agnostic=True) == [1, 2]  # one box per object: A's dog box is suppressed by its cat box
    floors = torch.tensor([float("inf"), 0.0, 0.0])  # --classes dog,person
    assert labels(class_min_scores=floors) == [2, 2]
    # The class left out is gone before NMS: it does not suppress A's dog box.
    assert labels(class_min_scores=floors, class_agnostic=True) == [2, 2]
    assert labels(class_min_scores=torch.tensor([0.0, 0.5, 0.0])) == [1, 2]  # A's dog (0.38) is below 0.5


def test_command_line_classes_and_thresholds(random_checkpoint, noise_image, tmp_path):
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"thresholds": {"cat": 0.85}}))
    runs = {}
    for name, extra in (("all", []), ("filtered", ["--classes", "dog,cat", "--thresholds", str(thresholds)]),
                        ("agnostic", ["--agnostic-nms"])):
        out = tmp_path / name
        # --top-k high enough that no detection is cut: the runs can be compared detection by detection.
        assert detect.main([noise_image, "--checkpoint", random_checkpoint, "--output", str(out), "--device", "cpu",
                            "--backend", "torch", "--min-score", "0.3", "--top-k", "100000", *extra]) == 0
        runs[name] = json.loads((out / "noise_detections.json").read_text())["detections"]
    everything, filtered = runs["all"], runs["filtered"]
    assert {d["label"] for d in everything} >= {"cat", "dog"}
    # Per-class NMS: leaving classes out changes nothing for the others.
    expected = [d for d in everything if d["label"] == "dog" or (d["label"] == "cat" and d["score"] >= 0.85)]
    assert filtered == expected and {d["label"] for d in filtered} == {"cat", "dog"}
    # Agnostic: no two boxes overlap by more than --max-overlap (0.5) whatever their classes, where per-class
    # NMS leaves boxes of different classes on top of each other. (Boxes are rounded to 0.1 pixel in the JSON.)
    from torchvision.ops import box_iou

    def max_iou(detections):
        boxes = torch.tensor([d["box"] for d in detections])
        return float(box_iou(boxes, boxes).fill_diagonal_(0).max())

    assert max_iou(everything) > 0.9 and max_iou(runs["agnostic"]) <= 0.5 + 0.02
    assert len(runs["agnostic"]) < len(everything)


# ---------------------------------------------------------------------------------------------------------
# Videos and --webcam on the command line (the frame loop itself: tests/test_video.py)
# ---------------------------------------------------------------------------------------------------------


def test_video_on_the_command_line_and_a_bad_video(tmp_path, random_checkpoint, capsys):
    cv2 = pytest.importorskip("cv2")
    clip = str(tmp_path / "walk.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (80, 60))
    for i in range(3):
        writer.write(np.full((60, 80, 3), 60 + 50 * i, dtype=np.uint8))
    writer.release()
    (tmp_path / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    status = detect.main([clip, str(tmp_path / "broken.mp4"), "--checkpoint", random_checkpoint, "--output",
                          str(out), "--device", "cpu", "--backend", "torch", "--min-score", "0.5", "--batch-size", "2",
                          "--video-codec", "vp9"])
    assert status == 1
    printed = capsys.readouterr()
    assert "broken.mp4: cannot open the video" in printed.err
    assert f"walk.avi: 3 frames -> {out / 'walk_detections.webm'} (VP9 WebM (OpenCV))" in printed.out
    assert sorted(os.listdir(out)) == ["walk_detections.json", "walk_detections.webm"]
    assert len(json.loads((out / "walk_detections.json").read_text())["frames"]) == 3


def test_webcam_on_the_command_line(random_checkpoint, monkeypatch, capsys):
    capture = FakeCapture(2)
    monkeypatch.setattr(detect, "open_camera", lambda source: capture if source == "0" else None)
    monkeypatch.setattr(video, "show_in_window", lambda frame: True)
    assert detect.main(["--webcam", "0", "--checkpoint", random_checkpoint, "--device", "cpu",
                        "--backend", "torch"]) == 0
    assert "--webcam 0: 2 frames shown" in capsys.readouterr().out and capture.released
    with pytest.raises(SystemExit):
        detect.parse_args([])  # neither inputs nor --webcam


# ---------------------------------------------------------------------------------------------------------
# --onnx
# ---------------------------------------------------------------------------------------------------------


def test_numpy_nms_equals_torchvision():
    from torchvision.ops import nms

    rng = np.random.RandomState(3)
    corners = rng.rand(60, 2) * 0.8
    boxes = np.concatenate([corners, corners + 0.05 + rng.rand(60, 2) * 0.3], axis=1)
    scores = rng.rand(60)
    from ssd_support.onnx_detector import nms_numpy
    expected = nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.3).numpy()
    assert nms_numpy(boxes, scores, 0.3).tolist() == expected.tolist()


@pytest.fixture(scope="module")
def onnx_model(random_checkpoint, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import export

    path = str(tmp_path_factory.mktemp("onnx") / "ssd300_nms.onnx")
    # Every prior a candidate and detect.py's NMS threshold, so that it selects as detect_objects does.
    assert export.main(["--checkpoint", random_checkpoint, "--output", path, "--with-postprocess",
                        "--max-candidates", "8732", "--max-overlap", "0.5"]) == 0
    return path


def test_onnx_path_gives_the_checkpoints_detections(onnx_model, random_checkpoint, noise_image, tmp_path):
    results = {}
    for name, model_option in (("torch", ["--checkpoint", random_checkpoint, "--device", "cpu", "--backend", "torch"]),
                               ("onnx", ["--onnx", onnx_model])):
        out = tmp_path / name
        assert detect.main([noise_image, *model_option, "--output", str(out), "--min-score", "0.5"]) == 0
        results[name] = json.loads((out / "noise_detections.json").read_text())["detections"]
    ours, theirs = results["onnx"], results["torch"]
    assert ours and len(ours) == len(theirs)
    # An untrained network has near-ties, which the two runtimes may order differently: compare the scores in
    # order, the labels as counts, and the best detection whole.
    assert [d["score"] for d in ours] == pytest.approx([d["score"] for d in theirs], abs=2e-4)
    assert sorted(d["label"] for d in ours) == sorted(d["label"] for d in theirs)
    assert ours[0]["label"] == theirs[0]["label"] and ours[0]["box"] == pytest.approx(theirs[0]["box"], abs=0.2)

    # --classes applies to the ONNX model's detections too.
    out = tmp_path / "classes"
    assert detect.main([noise_image, "--onnx", onnx_model, "--output", str(out), "--min-score", "0.5",
                        "--classes", "dog"]) == 0
    dogs = json.loads((out / "noise_detections.json").read_text())["detections"]
    assert dogs == [d for d in ours if d["label"] == "dog"]


def test_onnx_path_prepares_images_as_the_exported_checkpoint_says(tmp_path, save_checkpoint):
    """A checkpoint converted from torchvision's SSD wants 0-255 input minus a mean and no antialiasing; its
    export records that, and --onnx must prepare images so (ImageNet's mean/std gave other detections, silently).
    A photo larger than the input, so that antialiasing would matter."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import export
    from ssd_support.onnx_detector import preprocess_numpy
    from utils import preprocess

    torch.manual_seed(1)
    converted = SSD300(n_classes=len(LABEL_MAP)).eval()
    converted.preprocess_config = {"mean": [0.48235, 0.45882, 0.40784], "std": [1 / 255] * 3, "antialias": False}
    checkpoint = save_checkpoint(tmp_path / "converted.pt", converted, LABEL_MAP)
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.RandomState(1).rand(480, 640, 3) * 255).astype(np.uint8)).save(photo)
    for antialias in (True, False):  # the NumPy preprocessing equals utils.preprocess, to a grey level
        settings = dict(converted.preprocess_config, antialias=antialias)
        expected = preprocess(Image.open(photo), 300, **settings).numpy()
        assert np.abs(preprocess_numpy(Image.open(photo), 300, **settings) - expected).max() <= 1.01

    onnx_file = str(tmp_path / "converted_nms.onnx")
    assert export.main(["--checkpoint", checkpoint, "--output", onnx_file, "--with-postprocess",
                        "--max-candidates", "8732", "--max-overlap", "0.5"]) == 0
    results = {}
    for name, model_option in (("torch", ["--checkpoint", checkpoint, "--device", "cpu", "--backend", "torch"]),
                               ("onnx", ["--onnx", onnx_file])):
        out = tmp_path / name
        assert detect.main([str(photo), *model_option, "--output", str(out), "--min-score", "0.3"]) == 0
        results[name] = json.loads((out / "photo_detections.json").read_text())["detections"]
    ours, theirs = results["onnx"], results["torch"]
    assert ours and len(ours) == len(theirs)
    assert [d["score"] for d in ours] == pytest.approx([d["score"] for d in theirs], abs=2e-3)
    assert ours[0]["label"] == theirs[0]["label"] and ours[0]["box"] == pytest.approx(theirs[0]["box"], abs=1.0)


def test_onnx_path_runs_without_torch(onnx_model, noise_image, tmp_path):
    """torch made unimportable: the --onnx path still runs (and so builds no torch model), the other tools' formats
    too; the second run into the same YOLO folder reads the data.yaml the first wrote (and keeps it)."""
    yolo = tmp_path / "yolo"
    for run in range(2):
        arguments = [noise_image, "--onnx", onnx_model, "--output", str(tmp_path), "--save-yolo", str(yolo),
                     "--save-voc", str(tmp_path / "voc"), "--save-coco", str(tmp_path / "detections.json"),
                     "--overwrite"]
        code = f"import sys; sys.modules['torch'] = None; import detect; sys.exit(detect.main({arguments!r}))"
        completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                                   timeout=120)
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert "noise.png:" in completed.stdout and (tmp_path / "noise_detections.json").exists()
        if run == 0:
            first_yaml = (yolo / "data.yaml").read_bytes()
    assert (yolo / "data.yaml").read_bytes() == first_yaml and (tmp_path / "detections.json").exists()
    # --tile merges with torchvision's NMS: refused in one line, before any image.
    code = (f"import sys; sys.modules['torch'] = None; import detect; sys.exit(detect.main({arguments[:5]!r} + "
            f"['--tile', '200']))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 1 and completed.stderr.strip().splitlines() == [
        "detect.py: error: --tile merges the crops' detections with torchvision's NMS, which needs torch and "
        "torchvision (pip install -r requirements.txt); without them, run without --tile"]


def test_a_link_planted_at_an_output_name_is_replaced_not_followed(random_checkpoint, noise_image, tmp_path):
    """output/noise_detections.json and .jpg as links to a user's files: the run replaces the links (its files are
    written atomically) and the files they pointed to are untouched."""
    out = tmp_path / "out"
    out.mkdir()
    for extension in (".json", ".jpg"):
        target = tmp_path / f"precious{extension}"
        target.write_bytes(b"a user's file")
        os.symlink(target, out / f"noise_detections{extension}")
    assert detect.main([noise_image, "--checkpoint", random_checkpoint, "--output", str(out), "--device", "cpu"]) == 0
    for extension in (".json", ".jpg"):
        assert (tmp_path / f"precious{extension}").read_bytes() == b"a user's file"
        assert not os.path.islink(out / f"noise_detections{extension}")
    assert json.loads((out / "noise_detections.json").read_text())["detections"] is not None


def test_backend_auto_gives_pytorchs_detections_and_says_so_first(random_checkpoint, noise_image, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    results = {}
    for backend in ("auto", "torch"):
        out = tmp_path / backend
        assert detect.main([noise_image, "--checkpoint", random_checkpoint, "--output", str(out), "--device", "cpu",
                            "--min-score", "0.5", "--backend", backend]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        results[backend] = json.loads((out / "noise_detections.json").read_text())["detections"]
        expected = {"auto": "network in onnxruntime (--backend auto: onnxruntime on the CPU)",
                    "torch": "network in PyTorch (--backend torch)"}[backend]
        assert first == f"detect.py: {random_checkpoint} on cpu, {expected}"
    ours, theirs = results["auto"], results["torch"]
    assert ours and len(ours) == len(theirs)
    # As for --onnx above: an untrained network's near-ties may come in another order; every detection of one has
    # its twin in the other (same label, score to 2e-4, box to 0.2 pixel).
    for a, b in ((ours, theirs), (theirs, ours)):
        for x in a:
            assert any(x["label"] == y["label"] and abs(x["score"] - y["score"]) <= 2e-4
                       and max(abs(p - q) for p, q in zip(x["box"], y["box"])) <= 0.2 for y in b), x


def test_onnx_without_postprocess_is_a_one_line_error(random_checkpoint, noise_image, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import export

    plain = str(tmp_path / "plain.onnx")
    assert export.main(["--checkpoint", random_checkpoint, "--output", plain]) == 0
    capsys.readouterr()
    assert detect.main([noise_image, "--onnx", plain, "--output", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert "plain.onnx: has no detection outputs" in error and "--with-postprocess" in error
    assert len(error.splitlines()) == 1


def test_missing_optional_packages_are_one_line_errors(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name in ("cv2", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(ImportError, match="need OpenCV: pip install opencv-python-headless"):
        video.detect_video(str(tmp_path / "clip.mp4"), str(tmp_path / "out"), box_detector([]), LABEL_MAP)
    from ssd_support.onnx_detector import OnnxDetector
    with pytest.raises(ImportError, match="--onnx needs onnxruntime: pip install onnxruntime"):
        OnnxDetector(str(tmp_path / "model.onnx"))
