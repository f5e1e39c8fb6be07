"""eval.py --onnx FILE: the mAP of an exported model (``export.py --with-postprocess``), on the same lists and
with the same metrics as a checkpoint's, so that what an export costs (another opset, half precision, int8) is
measured, not guessed.

The model is loaded and checked by ``ssd_support.onnx_detector.OnnxDetector`` (one-line errors naming the file:
not ONNX, no detection outputs, no label map). It is fed the images eval.py feeds a checkpoint: the data set's own
tensors (``PascalVOCDataset`` at the model's input size, prepared with the mean / std / antialiasing its metadata
names), so only the network and the post-processing run in onnxruntime.

The post-processing settings are constants of the exported graph, not inputs: export.py's --min-score,
--max-overlap, --top-k and --max-candidates, recorded in the model's metadata. Its detections are those of the
evaluation settings (eval.py's --min-score 0.01, --max-overlap 0.45, --top-k 200, 400 candidates per class, the
paper's and export.py's defaults) when

- the graph's max_overlap and max_candidates are the evaluation's, and
- its min_score is at most the evaluation's and its top_k at least the evaluation's: the graph's detections
  scoring above the evaluation's min_score, the best top_k of them, are then exactly those of a graph exported
  with the evaluation's settings (greedy NMS decides a box by the better boxes only, and the candidate cap
  keeps the best-scoring priors, so lower-scoring extra candidates change nothing above them).

Any other difference is refused, naming the file and the settings (:func:`check_postprocess_settings`).
"""

import math
import os

import numpy as np
import torch
from tqdm import tqdm

from ssd_support.onnx_detector import OnnxDetector, OnnxModelError

# The metadata's names of the graph's settings (export_checkpoint writes them).
SETTING_KEYS = ("min_score", "max_overlap", "top_k", "max_candidates")


def graph_settings(detector, path):
    """The post-processing settings baked into an exported graph.

    :param detector: an ``OnnxDetector``
    :param path: its file, for the error message
    :return: {"min_score": float, "max_overlap": float, "top_k": int, "max_candidates": int or None}
    :raises OnnxModelError: one line naming the file, when its metadata does not record them
    """
    missing = [key for key in SETTING_KEYS if key not in detector.settings]
    if missing:
        raise OnnxModelError(f"{path}: its metadata does not record the post-processing settings "
                             f"({', '.join(missing)}); export it again with export.py --with-postprocess")
    values = detector.settings
    try:
        return {"min_score": float(values["min_score"]), "max_overlap": float(values["max_overlap"]),
                "top_k": int(values["top_k"]),
                "max_candidates": None if values["max_candidates"] == "None" else int(values["max_candidates"])}
    except ValueError:
        raise OnnxModelError(f"{path}: unreadable post-processing settings in its metadata ({values})") from None


def check_postprocess_settings(graph, path, min_score, max_overlap, top_k, max_candidates_per_class,
                               n_priors=None):
    """Refuse a graph whose detections cannot be those of the evaluation settings (see the module docstring).

    :param graph: :func:`graph_settings`' dict
    :param path: the ONNX file, for the error message
    :param min_score: the evaluation's minimum score (eval.py --min-score)
    :param max_overlap: its NMS IoU threshold
    :param top_k: its detections per image
    :param max_candidates_per_class: its candidates per image and class (None: all)
    :param n_priors: the graph's number of priors when known: a cap of at least that many is no cap
    :raises OnnxModelError: one line naming the file and every setting that differs
    """
    def cap(value):
        """A candidate cap as it acts: None when it keeps every prior."""
        return None if value is None or (n_priors is not None and value >= n_priors) else value

    problems = []
    if graph["min_score"] > min_score:
        problems.append(f"min_score {graph['min_score']} (evaluating at {min_score} needs at most that)")
    if not math.isclose(graph["max_overlap"], max_overlap, rel_tol=1e-9, abs_tol=1e-12):
        problems.append(f"max_overlap {graph['max_overlap']} (evaluating at {max_overlap})")
    if graph["top_k"] < top_k:
        problems.append(f"top_k {graph['top_k']} (evaluating at {top_k} needs at least that)")
    if cap(graph["max_candidates"]) != cap(max_candidates_per_class):
        problems.append(f"max_candidates {graph['max_candidates']} (evaluating at "
                        f"{'no cap' if max_candidates_per_class is None else max_candidates_per_class})")
    if problems:
        raise OnnxModelError(f"{path}: exported with post-processing settings that differ from the evaluation's: "
                             f"{'; '.join(problems)}; export it again with export.py --with-postprocess and these "
                             f"settings, or evaluate with them")


def input_dtype(session):
    """The NumPy dtype of a session's ``images`` input: float16 for a half-precision export, else float32."""
    return np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32


def collect_onnx_detections(detector, data_loader, min_score, top_k, progress=True):
    """Run an exported model over a data set and gather its detections and the ground truth, image by image, as
    ``eval.collect_detections`` does for a checkpoint.

    :param detector: an ``OnnxDetector`` whose settings passed :func:`check_postprocess_settings`
    :param data_loader: yields (images (N, 3, S, S), boxes list, labels list, difficulties list), as
        ``PascalVOCDataset(..., keep_difficult=True)`` prepared for this model gives them
    :param min_score: keep the graph's detections scoring above this (the evaluation's --min-score)
    :param top_k: and the best ``top_k`` of those per image
    :param progress: show a tqdm progress bar
    :return: dict of six lists with one CPU tensor per image: "det_boxes" (n, 4) fractional x1y1x2y2 float32,
        "det_labels" (n,) int64, "det_scores" (n,) float32, "true_boxes" (m, 4), "true_labels" (m,),
        "true_difficulties" (m,)
    """
    session, dtype = detector.session, input_dtype(detector.session)
    collected = {key: [] for key in ("det_boxes", "det_labels", "det_scores",
                                     "true_boxes", "true_labels", "true_difficulties")}
    for images, boxes, labels, difficulties in tqdm(data_loader, desc="Evaluating", unit="batch",
                                                     disable=not progress):
        outputs = session.run(detector.output_names, {"images": images.numpy().astype(dtype, copy=False)})
        det_boxes, det_scores, det_labels, counts = (torch.from_numpy(np.asarray(output)) for output in outputs)
        for i in range(images.size(0)):
            n = int(counts[i])
            scores = det_scores[i, :n].float()
            keep = torch.nonzero(scores > min_score).flatten()[:top_k]  # the graph's rows are best first
            collected["det_boxes"].append(det_boxes[i, :n].float()[keep])
            collected["det_labels"].append(det_labels[i, :n].long()[keep])
            collected["det_scores"].append(scores[keep])
        collected["true_boxes"].extend(b.cpu() for b in boxes)
        collected["true_labels"].extend(lab.cpu() for lab in labels)
        collected["true_difficulties"].extend(d.cpu() for d in difficulties)
    return collected


def load_onnx_for_evaluation(path, min_score, max_overlap, top_k, max_candidates_per_class):
    """Load an ``export.py --with-postprocess`` model and check that it can be evaluated at these settings.

    :param path: the .onnx file
    :param min_score: the evaluation's settings, as :func:`check_postprocess_settings` takes them
    :return: the ``OnnxDetector`` (``.label_map``, ``.image_size``, ``.preprocess``, ``.session``)
    :raises OnnxModelError: (a ValueError) one line naming the file: missing, not a with-postprocess export, or
        exported with settings that differ
    :raises ImportError: when onnxruntime is not installed
    """
    if not os.path.isfile(path):
        raise OnnxModelError(f"{path}: ONNX model not found")
    detector = OnnxDetector(path)
    shapes = {output.name: output.shape for output in detector.session.get_outputs()}
    n_priors = (shapes.get("decoded_boxes") or [None, None])[1]
    check_postprocess_settings(graph_settings(detector, path), path, min_score, max_overlap, top_k,
                               max_candidates_per_class, n_priors if isinstance(n_priors, int) else None)
    return detector
