"""export.py: the ONNX models, run in onnxruntime with another batch size than exported, give PyTorch's results."""

import json

import pytest
import torch
from torchvision.ops import box_iou

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import export  # noqa: E402  (after the skips: export needs onnx)
from ssd_support import onnx_export  # noqa: E402
from model import build_ssd  # noqa: E402
from ssd_support.checkpoints import load_model_from_checkpoint  # noqa: E402
from utils import cxcy_to_gcxgcy, cxcy_to_xy, xy_to_cxcy  # noqa: E402

N_CLASSES = 4
LABEL_MAP = {"background": 0, "circle": 1, "square": 2, "triangle": 3}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, save_checkpoint):
    """A checkpoint in train.py's format holding an untrained SSD300."""
    torch.manual_seed(0)
    network = build_ssd(N_CLASSES)
    return save_checkpoint(tmp_path_factory.mktemp("export") / "ssd300.pt", network, LABEL_MAP)


@pytest.fixture(scope="module")
def network(checkpoint):
    """The checkpoint's network, as PyTorch runs it."""
    return load_model_from_checkpoint(checkpoint)[0]


@pytest.fixture(scope="module")
def image_and_outputs(network):
    """One image (export.py traces with two) and the network's outputs for it."""
    image = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return image, network(image)


def run_onnx(path, inputs):
    """Run an ONNX file in onnxruntime on the CPU.

    :param inputs: {input name: tensor}
    :return: (list of output tensors, the session)
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})
    return [torch.from_numpy(output) for output in outputs], session


def test_network_export_equals_pytorch_with_another_batch_size(checkpoint, image_and_outputs, tmp_path):
    output = tmp_path / "ssd300.onnx"
    assert export.main(["--checkpoint", checkpoint, "--output", str(output)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ssd300.onnx"]  # no temporary file left

    image, expected = image_and_outputs
    outputs, session = run_onnx(output, {"images": image})
    assert [o.name for o in session.get_outputs()] == ["predicted_locs", "predicted_scores"]
    assert [tuple(o.shape) for o in outputs] == [(1, 8732, 4), (1, 8732, N_CLASSES)]
    for ours, theirs in zip(outputs, expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["label_map"]) == LABEL_MAP and metadata["image_size"] == "300"
    # A checkpoint without its own preprocessing: ImageNet's, antialiased, as utils.preprocess's defaults.
    assert json.loads(metadata["preprocess"]) == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                                  "antialias": True}


def test_postprocess_export_equals_pytorch(checkpoint, network, image_and_outputs, tmp_path):
    """The whole pipeline, images to detections: decoded outputs to 1e-4, detections as PyTorch selects them."""
    output = tmp_path / "ssd300_nms.onnx"
    assert export.main(["--checkpoint", checkpoint, "--output", str(output), "--with-postprocess", "--top-k", "50"]) == 0
    postprocess = onnx_export.SSDPostprocess(network.priors_cxcy, N_CLASSES, top_k=50)
    image, network_outputs = image_and_outputs
    outputs, session = run_onnx(output, {"images": image})
    assert [o.name for o in session.get_outputs()] == list(onnx_export.POSTPROCESS_OUTPUTS)
    decoded_boxes, class_scores, boxes, scores, labels, counts = outputs
    expected_boxes, expected_scores = postprocess.decode(*network_outputs)
    torch.testing.assert_close(decoded_boxes, expected_boxes, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(class_scores, expected_scores, rtol=1e-4, atol=1e-4)
    # Selection compared on the very same decoded inputs: an untrained network's scores are too close
    # together for two different convolution implementations to be sure to rank them alike.
    expected = postprocess.select(decoded_boxes, class_scores)
    assert counts.tolist() == [50]  # an untrained network: candidates everywhere, capped at top_k
    torch.testing.assert_close(boxes, expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores, expected[1], rtol=1e-5, atol=1e-5)
    assert torch.equal(labels, expected[2]) and torch.equal(counts, expected[3])


def crafted_predictions(priors, objects_per_image, generator):
    """Predictions with a known outcome: every object is predicted, jittered, by a cluster of priors.

    Each object is (box, label, second_label or None). The priors overlapping its box by IoU > 0.3 all
    predict the box (jittered by up to 0.5% of the image, so they overlap each other far above 0.45)
    with scores that differ from prior to prior; NMS must keep exactly the best of each cluster, once per
    class (a second label on the same cluster is its own NMS group). All other priors are background.

    :return: predicted_locs (N, n_priors, 4), predicted_scores (N, n_priors, N_CLASSES) logits, and per
        image the expected detections, a list of (label, box, prior index)
    """
    n_images, n_priors = len(objects_per_image), len(priors)
    predicted_locs = torch.randn(n_images, n_priors, 4, generator=generator) * 0.1
    predicted_scores = torch.zeros(n_images, n_priors, N_CLASSES)
    predicted_scores[..., 0] = 6.0  # object scores about 0.0025, below min_score
    expected = []
    for image, objects in enumerate(objects_per_image):
        expected.append([])
        claimed = torch.zeros(n_priors, dtype=torch.bool)
        for box, label, second_label in objects:
            iou = box_iou(torch.tensor([box]), cxcy_to_xy(priors))[0]
            cluster = torch.nonzero(iou > 0.3).squeeze(1)
            assert len(cluster) > 5 and not claimed[cluster].any()  # real NMS work, clusters apart
            claimed[cluster] = True
            jittered = torch.tensor(box) + (torch.rand(len(cluster), 4, generator=generator) - 0.5) * 0.01
            predicted_locs[image, cluster] = cxcy_to_gcxgcy(xy_to_cxcy(jittered), priors[cluster])
            logits = 2 + 6 * iou[cluster] + 0.01 * torch.rand(len(cluster), generator=generator)
            predicted_scores[image, cluster] = -10.0  # the other classes: far below min_score
            predicted_scores[image, cluster, 0] = 0.0
            predicted_scores[image, cluster, label] = logits
            best = int(logits.argmax())
            expected[image].append((label, jittered[best], int(cluster[best])))
            if second_label is not None:
                predicted_scores[image, cluster, second_label] = logits - 1
                expected[image].append((second_label, jittered[best], int(cluster[best])))
    return predicted_locs, predicted_scores, expected


def test_postprocess_keeps_the_known_survivors_like_detect_objects(network, tmp_path):
    """NMS with real work, in ONNX: exported with 2 images, run on 3 (one with nothing to find)."""
    priors = network.priors_cxcy
    postprocess = onnx_export.SSDPostprocess(priors, N_CLASSES, min_score=0.01, max_overlap=0.45, top_k=20,
                                        max_candidates_per_class=30).eval()
    generator = torch.Generator().manual_seed(3)
    objects_per_image = [
        [([0.05, 0.05, 0.35, 0.35], 1, None), ([0.6, 0.1, 0.9, 0.45], 2, 3), ([0.3, 0.6, 0.65, 0.95], 1, None)],
        [([0.2, 0.25, 0.7, 0.8], 3, None)],
        [],
    ]
    locs, logits, expected = crafted_predictions(priors, objects_per_image, generator)
    path = tmp_path / "postprocess.onnx"
    onnx_export.export_onnx(postprocess, (locs[:2], logits[:2]), path, ("predicted_locs", "predicted_scores"),
                            onnx_export.POSTPROCESS_OUTPUTS)
    outputs, _ = run_onnx(path, {"predicted_locs": locs, "predicted_scores": logits})
    with torch.no_grad():
        pytorch_outputs = postprocess(locs, logits)
    for ours, theirs in zip(outputs, pytorch_outputs):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)

    _, class_scores, boxes, scores, labels, counts = outputs
    assert counts.tolist() == [4, 1, 0]
    reference = network.detect_objects(locs, logits, min_score=0.01, max_overlap=0.45, top_k=20,
                                       max_candidates_per_class=30)
    for image in range(3):
        n = counts[image]
        torch.testing.assert_close(boxes[image, :n], reference[0][image], rtol=1e-5, atol=1e-5)
        assert labels[image, :n].tolist() == reference[1][image].tolist()
        torch.testing.assert_close(scores[image, :n], reference[2][image], rtol=1e-5, atol=1e-5)
        # The known survivors: the best prior of each cluster, once per class.
        found = sorted((int(label), box.tolist()) for label, box in zip(labels[image, :n], boxes[image, :n]))
        wanted = sorted((label, box.clamp(0, 1).tolist()) for label, box, _ in expected[image])
        assert [label for label, _ in found] == [label for label, _ in wanted]
        torch.testing.assert_close(torch.tensor([b for _, b in found]).reshape(-1, 4),
                                   torch.tensor([b for _, b in wanted]).reshape(-1, 4), rtol=1e-5, atol=1e-5)
        for label, _, prior in expected[image]:
            assert class_scores[image, prior, label] in scores[image, :n]
        assert (boxes[image, n:] == 0).all() and (scores[image, n:] == 0).all() and (labels[image, n:] == 0).all()


def test_bad_checkpoint_and_opset_fail_cleanly(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert export.main(["--checkpoint", str(broken), "--output", str(tmp_path / "m.onnx")]) == 1
    assert "broken.pt" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ValueError, match="opset 10"):
        onnx_export.export_onnx(torch.nn.Identity(), (torch.zeros(1),), tmp_path / "m.onnx", ("x",), ("y",), opset=10)


def test_resnet50_base_exports_with_its_batch_norms_folded_in_eval_mode(tmp_path, save_checkpoint):
    """NVIDIA's ResNet-50 SSD300 (batch norm everywhere) exports too; running statistics made non-trivial
    so that a batch norm exported in training mode, or dropped, would show."""
    torch.manual_seed(0)
    network = build_ssd(N_CLASSES, base="resnet50")
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    checkpoint = save_checkpoint(tmp_path / "resnet50.pt", network, LABEL_MAP)
    output = tmp_path / "resnet50.onnx"
    assert export.main(["--checkpoint", checkpoint, "--output", str(output)]) == 0

    images = torch.randn(3, 3, 300, 300, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = network.eval()(images)
    outputs, session = run_onnx(output, {"images": images})
    assert session.get_modelmeta().custom_metadata_map["base"] == "resnet50"
    for ours, theirs in zip(outputs, expected):
        # Relative to the outputs' size (up to ~150 for this untrained network): onnxruntime folds each batch
        # norm into its convolution, which rounds differently through ResNet-50's 50-odd layers (measured:
        # 1.1e-4 absolute, 7e-7 of the largest output).
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=2e-6 * float(theirs.abs().max()))


def test_detect_py_onnxruntime_backend_gives_the_torch_backends_detections(checkpoint, tmp_path):
    """detect.py --backend onnxruntime (the network exported on the fly) writes the same detections as the
    PyTorch backend: same labels, scores to 1e-3, boxes to 0.5 px; --onnx (an exported model with its
    own NMS) is not a backend option."""
    import detect
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    generator = torch.Generator().manual_seed(3)
    for index, size in enumerate(((120, 90), (64, 100))):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), dtype=torch.uint8, generator=generator)
        Image.fromarray(pixels.numpy()).save(photos / f"photo{index}.png")
    results = {}
    for name, extra in (("torch", ["--backend", "torch"]), ("ort", ["--backend", "onnxruntime"])):
        output = tmp_path / name
        common = ["--checkpoint", checkpoint, "--output", str(output), "--device", "cpu", "--min-score", "0.3"]
        assert detect.main([str(photos), *common, *extra]) == 0
        results[name] = {path.name: json.loads(path.read_text())["detections"]
                         for path in sorted(output.glob("*.json"))}
    assert len(results["torch"]) == 2 and sum(len(d) for d in results["torch"].values()) > 0
    for name in ("ort",):
        assert results[name].keys() == results["torch"].keys()
        for key, expected in results["torch"].items():
            actual = results[name][key]
            assert [d["label"] for d in actual] == [d["label"] for d in expected], (name, key)
            for a, e in zip(actual, expected):
                assert abs(a["score"] - e["score"]) <= 1e-3
                assert max(abs(x - y) for x, y in zip(a["box"], e["box"])) <= 0.5
    with pytest.raises(SystemExit):
        detect.parse_args([str(photos), "--backend", "onnxruntime", "--onnx", "model.onnx"])


def test_ssd_detector_runs_its_network_in_onnxruntime(checkpoint):
    """SSDDetector with its network swapped for OnnxRuntimeSSD (as the README shows, and as bench_detector.py
    times it) gives the PyTorch detector's detections: same labels, scores to 1e-4, boxes to 0.05 px; in training
    mode (put there, or taken from a detector in it) it refuses to run, naming why, instead of returning a loss
    nothing can train."""
    from ssd_support.detector import ssd300_vgg16

    torch_model = ssd300_vgg16(checkpoint=checkpoint, score_thresh=0.2).eval()
    ort_model = ssd300_vgg16(checkpoint=checkpoint, score_thresh=0.2).eval()
    ort_model.network = onnx_export.OnnxRuntimeSSD(ort_model.network)
    generator = torch.Generator().manual_seed(5)
    images = [torch.rand(3, 90, 120, generator=generator), torch.rand(3, 310, 280, generator=generator)]
    with torch.no_grad():
        expected, actual = torch_model(images), ort_model(images)
    assert sum(len(e["labels"]) for e in expected) > 0
    for e, a in zip(expected, actual):
        assert torch.equal(e["labels"], a["labels"])
        torch.testing.assert_close(a["scores"], e["scores"], rtol=0, atol=1e-4)
        torch.testing.assert_close(a["boxes"], e["boxes"], rtol=0, atol=0.05)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])}] * 2
    ort_model.train()
    with pytest.raises(RuntimeError, match="inference only"):
        ort_model(images, targets)
    # Swapped into a detector still in training mode (as the builders return it), it starts in that mode too.
    fresh = ssd300_vgg16(checkpoint=checkpoint, score_thresh=0.2)
    fresh.network = onnx_export.OnnxRuntimeSSD(fresh.network)
    with pytest.raises(RuntimeError, match="inference only"):
        fresh(images, targets)
    with torch.no_grad():
        again = fresh.eval()(images)
    assert all(torch.equal(e["labels"], a["labels"]) for e, a in zip(expected, again))
