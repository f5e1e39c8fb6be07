"""Exporting an SSD to ONNX, for onnxruntime (tested) and other ONNX runtimes; ``export.py`` is its command line.

The ONNX model takes ``images`` (N, 3, S, S) float32, S the model's input side (300 or 512), resized and
normalized as ``utils.preprocess`` does (ImageNet mean/std of [0, 1] RGB; a converted COCO checkpoint names its
own, and the metadata's "input" and "preprocess" say which). The batch size N is free.

Without ``--with-postprocess`` it returns the network's raw outputs, as ``model(images)``:

- ``predicted_locs`` (N, n_priors, 4): offsets from the priors (decode with ``utils.gcxgcy_to_cxcy``);
- ``predicted_scores`` (N, n_priors, n_classes): class logits, background first.

With ``--with-postprocess`` the graph also decodes the boxes and takes the softmax:

- ``decoded_boxes`` (N, n_priors, 4): each prior's box, x1y1x2y2 as fractions of the image, clipped to [0, 1];
- ``class_scores`` (N, n_priors, n_classes): softmax probabilities, background first (for your own NMS);

then keeps the ``--max-candidates`` best priors of each class above ``--min-score``, runs NMS per image and
class (ONNX's NonMaxSuppression op, which handles the batch and the classes itself) and keeps the
``--top-k`` best detections of each image: the detections of ``model.detect_objects``, padded to a fixed
size:

- ``detection_boxes`` (N, top_k, 4): x1y1x2y2 as fractions of the image (multiply by its width and height);
- ``detection_scores`` (N, top_k): best first;
- ``detection_labels`` (N, top_k) int64: labels 1..n_classes-1 (the checkpoint's label map);
- ``num_detections`` (N,) int64: how many rows of each image are detections; the rest are padding (box 0,
  score 0, label 0).

The label map, input size, normalization and settings are stored in the model's metadata
(``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``).

Needs the ``onnx`` package (``pip install onnx``), to store the metadata and check the model;
``onnxruntime`` to run it.

Which exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript exporter. It exists in every
torch this project supports (2.4 and later; since 2.9 it is called legacy and warns, but it is still there
in 2.14), needs no onnxscript, and lets a ``torch.autograd.Function`` say which ONNX op it is (its
``symbolic``): NMS is written as one NonMaxSuppression node. The newer dynamo exporter (the default since
torch 2.9) needs onnxscript, and NMS as a custom op with a translation written for it, through APIs that
did not exist yet in torch 2.4.
"""

import inspect
import io
import json
import os
import tempfile
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from model import EVAL_CANDIDATES_PER_CLASS, EVAL_MIN_SCORE, EVAL_NMS_IOU, EVAL_TOP_K
from ssd_support.files import refuse_inputs_as_outputs, write_atomically
from utils import cxcy_to_xy, gcxgcy_to_cxcy, preprocess_settings


# The lowest opset with everything the graph uses (NonMaxSuppression 10, TopK with a k input 10,
# ScatterND 11), and the default: supported by torch 2.4 and by any onnxruntime of recent years.
MIN_OPSET = 11
DEFAULT_OPSET = 17


class BatchedNonMaxSuppression(torch.autograd.Function):
    """ONNX's NonMaxSuppression op: greedy NMS for every image and every class at once.

    ``forward`` computes it in PyTorch (with ``torchvision.ops.batched_nms``, every (image, class) pair its
    own group); ``symbolic`` is what the TorchScript exporter writes instead: one NonMaxSuppression node.
    Both keep a box when its score is above ``score_threshold`` and it overlaps no better kept box of its
    image and class by an IoU above ``iou_threshold``, at most ``max_output_boxes_per_class`` per class.
    """

    @staticmethod
    def forward(ctx, boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold):
        """
        :param boxes: (N, n_boxes, 4) x1y1x2y2, shared by the classes
        :param scores: (N, n_classes, n_boxes)
        :param max_output_boxes_per_class: int64 tensor (1,)
        :param iou_threshold: float tensor (1,)
        :param score_threshold: float tensor (1,)
        :return: (n_kept, 3) int64 rows (image, class, box) of the kept boxes, in no particular order
        """
        with warnings.catch_warnings():
            # This also runs while the exporter traces the model, which warns about the Python numbers
            # taken from tensors below; harmless: the exporter writes ``symbolic`` instead of this code.
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            n_classes = scores.size(1)
            image, label, box = torch.nonzero(scores > score_threshold, as_tuple=True)
            group = image * n_classes + label
            keep = batched_nms(boxes[image, box], scores[image, label, box], group, float(iou_threshold))
            # keep is best first; a stable sort by group keeps that order within each group.
            keep = keep[torch.sort(group[keep], stable=True).indices]
            counts = torch.unique_consecutive(group[keep], return_counts=True)[1]
            group_starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            rank_in_group = torch.arange(keep.size(0), device=keep.device) - group_starts
            keep = keep[rank_in_group < int(max_output_boxes_per_class)]
            return torch.stack([image[keep], label[keep], box[keep]], dim=1)

    @staticmethod
    def symbolic(g, boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold):
        """The ONNX node (corner boxes, center_point_box=0; ONNX's [y1, x1, y2, x2] order does not matter
        to the IoU)."""
        return g.op("NonMaxSuppression", boxes, scores, max_output_boxes_per_class, iou_threshold,
                    score_threshold)


class SSDPostprocess(nn.Module):
    """``SSD.detect_objects`` for a whole batch as fixed-size tensors, in ops that export to ONNX."""

    def __init__(self, priors_cxcy, n_classes, min_score=EVAL_MIN_SCORE, max_overlap=EVAL_NMS_IOU, top_k=EVAL_TOP_K,
                 max_candidates_per_class=EVAL_CANDIDATES_PER_CLASS):
        """
        :param priors_cxcy: (n_priors, 4) the network's priors
        :param n_classes: classes, background included
        :param min_score: a class score above this makes a candidate
        :param max_overlap: NMS IoU threshold
        :param top_k: detections kept per image
        :param max_candidates_per_class: candidates kept per image and class before NMS (None: all)
        """
        super().__init__()
        self.register_buffer("priors_cxcy", priors_cxcy.detach().clone())
        self.n_priors, self.n_classes = priors_cxcy.size(0), n_classes
        self.min_score, self.max_overlap = float(min_score), float(max_overlap)
        # Python ints, known at export time: they become constants of the graph.
        self.top_k = min(top_k, (n_classes - 1) * self.n_priors)
        self.max_candidates = (self.n_priors if max_candidates_per_class is None
                               else min(max_candidates_per_class, self.n_priors))
        # NonMaxSuppression's settings are inputs of the op: buffers, so that they are graph constants.
        self.register_buffer("nms_max_output", torch.tensor([self.top_k]), persistent=False)
        self.register_buffer("nms_iou_threshold", torch.tensor([self.max_overlap]), persistent=False)
        self.register_buffer("nms_score_threshold", torch.tensor([self.min_score]), persistent=False)

    def forward(self, predicted_locs, predicted_scores):
        """
        :param predicted_locs: (N, n_priors, 4) offsets
        :param predicted_scores: (N, n_priors, n_classes) logits
        :return: the decoded predictions of ``decode`` and the four outputs of ``select``
        """
        decoded_boxes, class_scores = self.decode(predicted_locs, predicted_scores)
        return (decoded_boxes, class_scores, *self.select(decoded_boxes, class_scores))

    def decode(self, predicted_locs, predicted_scores):
        """
        :param predicted_locs: (N, n_priors, 4) offsets
        :param predicted_scores: (N, n_priors, n_classes) logits
        :return: decoded_boxes (N, n_priors, 4) fractional x1y1x2y2 clipped to [0, 1], one per prior, and
            class_scores (N, n_priors, n_classes) softmax probabilities, background first
        """
        boxes = cxcy_to_xy(gcxgcy_to_cxcy(predicted_locs.float(), self.priors_cxcy)).clamp(0, 1)
        return boxes, F.softmax(predicted_scores.float(), dim=2)

    def select(self, decoded_boxes, class_scores):
        """Candidates, per-class NMS and the ``top_k`` best detections of each image.

        :param decoded_boxes: (N, n_priors, 4) fractional x1y1x2y2
        :param class_scores: (N, n_priors, n_classes) probabilities
        :return: detection_boxes (N, top_k, 4) fractional x1y1x2y2, detection_scores (N, top_k) best first,
            detection_labels (N, top_k) int64, num_detections (N,) int64 (rows past it are zeros)
        """
        # (N, n_classes - 1, n_priors): ONNX's NMS wants the classes before the boxes; background is no class.
        probabilities = class_scores[:, :, 1:].transpose(1, 2)
        candidate_scores = probabilities
        if self.max_candidates < self.n_priors:
            best = probabilities.topk(self.max_candidates, dim=2).indices
            is_candidate = torch.zeros_like(probabilities).scatter(2, best, 1.0) > 0
            candidate_scores = probabilities.masked_fill(~is_candidate, -1.0)  # below any threshold

        # Greedy NMS never lets a worse box change what happens to a better one, so the top_k best
        # survivors of a class are the same whether NMS stops after top_k or not.
        kept = BatchedNonMaxSuppression.apply(decoded_boxes, candidate_scores, self.nms_max_output,
                                              self.nms_iou_threshold, self.nms_score_threshold)
        is_kept = torch.zeros_like(probabilities)
        is_kept[kept[:, 0], kept[:, 1], kept[:, 2]] = 1.0
        kept_scores = probabilities.masked_fill(is_kept == 0, -1.0).flatten(1)  # (N, (n_classes - 1) n_priors)

        scores, index = kept_scores.topk(self.top_k, dim=1)  # the best survivors of each image, best first
        prior = index % self.n_priors
        labels = torch.div(index, self.n_priors, rounding_mode="floor") + 1
        is_real = scores >= 0
        boxes = decoded_boxes.gather(1, prior.unsqueeze(2).expand(-1, -1, 4))
        return (torch.where(is_real.unsqueeze(2), boxes, torch.zeros_like(boxes)),
                torch.where(is_real, scores, torch.zeros_like(scores)),
                torch.where(is_real, labels, torch.zeros_like(labels)),
                is_real.sum(dim=1))


class ExportableSSD(nn.Module):
    """The network, optionally followed by ``SSDPostprocess``: what is exported."""

    def __init__(self, network, postprocess=None):
        """
        :param network: an ``SSD`` (its forward gives offsets and logits)
        :param postprocess: an ``SSDPostprocess``, or None for the raw outputs
        """
        super().__init__()
        self.network, self.postprocess = network, postprocess

    def forward(self, images):
        """:param images: (N, 3, S, S) normalized images
        :return: the network's two outputs, or the four of ``SSDPostprocess``
        """
        # A float16 network (export.py --half) takes and gives float16: cast inside the graph, so that the model's
        # input and outputs stay float32.
        predicted_locs, predicted_scores = self.network(images.to(self.network.priors_cxcy.dtype))
        if self.postprocess is None:
            return predicted_locs.float(), predicted_scores.float()
        return self.postprocess(predicted_locs, predicted_scores)


NETWORK_OUTPUTS = ("predicted_locs", "predicted_scores")
POSTPROCESS_OUTPUTS = ("decoded_boxes", "class_scores", "detection_boxes", "detection_scores", "detection_labels", "num_detections")


def export_onnx(module, example_inputs, path, input_names, output_names, opset=DEFAULT_OPSET, metadata=None):
    """Export a module to an ONNX file with the TorchScript exporter, every input and output with a free
    first (batch) axis; the file is written atomically.

    :param module: the module, in eval mode
    :param example_inputs: tuple of example input tensors (any batch size)
    :param path: the .onnx file to write
    :param input_names: names of the inputs, in order
    :param output_names: names of the outputs, in order
    :param opset: ONNX opset version
    :param metadata: {str: str} stored in the model's metadata_props
    """
    import onnx  # optional: only exporting needs it

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: the exported graph needs opset {MIN_OPSET} or newer")
    # torch 2.4 has no ``dynamo`` argument (its export is the TorchScript one); later versions need it off.
    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Since torch 2.9 the TorchScript exporter warns that it is deprecated; see the module docstring.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(module, tuple(example_inputs), buffer, input_names=list(input_names),
                          output_names=list(output_names), opset_version=opset,
                          dynamic_axes={name: {0: "batch"} for name in (*input_names, *output_names)}, **options)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    write_atomically(path, lambda file: file.write(model.SerializeToString()), binary=True)


def export_network(network, path):
    """Export an SSD's network alone (its two raw outputs, no post-processing) to ``path``, as
    :class:`OnnxRuntimeSSD` runs it.

    :param network: an ``SSD`` on the CPU, in either mode: it is traced in eval mode and left in the mode it was in
    :param path: the .onnx file to write
    """
    size = network.image_size
    was_training = network.training
    try:
        with torch.no_grad():  # traced in eval mode (batch norm's running statistics), then left as it was
            export_onnx(ExportableSSD(network).eval(), (torch.zeros(1, 3, size, size),), path, ("images",),
                        NETWORK_OUTPUTS)
    finally:
        network.train(was_training)


def export_checkpoint(checkpoint, output, opset=DEFAULT_OPSET, with_postprocess=False, min_score=EVAL_MIN_SCORE,
                      max_overlap=EVAL_NMS_IOU, top_k=EVAL_TOP_K, max_candidates=EVAL_CANDIDATES_PER_CLASS,
                      half=False):
    """Export the network of a ``train.py`` checkpoint, with or without the post-processing.

    :param checkpoint: path of the checkpoint
    :param output: the .onnx file to write
    :param opset: ONNX opset version
    :param with_postprocess: also export decoding, NMS and the top_k (see the module docstring)
    :param min_score: with_postprocess: score threshold of a candidate
    :param max_overlap: with_postprocess: NMS IoU threshold
    :param top_k: with_postprocess: detections per image
    :param max_candidates: with_postprocess: candidates per image and class before NMS
    :param half: the network in float16 (for GPU runtimes; ``export.py --half``): its weights and arithmetic;
        the input, the outputs and the post-processing stay float32
    :return: the exported ``ExportableSSD`` (eval mode), to compare with
    :raises ssd_support.files.OutputRefused: (a ValueError) when ``output`` is the checkpoint
    """
    from ssd_support.checkpoints import load_model_from_checkpoint  # here: importing this builds no network

    refuse_inputs_as_outputs([checkpoint], {"--output": output})  # before any work: the checkpoint stays
    network, label_map = load_model_from_checkpoint(checkpoint)
    postprocess = None
    if with_postprocess:
        postprocess = SSDPostprocess(network.priors_cxcy, network.n_classes, min_score, max_overlap, top_k,
                                     max_candidates)
    if half:
        network = network.half()  # after the post-processing took the float32 priors
    module = ExportableSSD(network, postprocess).eval()
    size = network.image_size
    settings = preprocess_settings(network.preprocess_config)  # a converted checkpoint names its own
    mean, std = (", ".join(f"{value:.6g}" for value in settings[key]) for key in ("mean", "std"))
    metadata = {"label_map": json.dumps(label_map), "base": network.base_name, "image_size": str(size),
                "input": f"images (N, 3, {size}, {size}) float32, RGB in [0, 1] resized "
                         f"({'with' if settings['antialias'] else 'without'} antialiasing), then normalized "
                         f"as (x - mean) / std with mean ({mean}) and std ({std})",
                "preprocess": json.dumps({key: list(value) if key != "antialias" else value
                                          for key, value in settings.items()})}
    if with_postprocess:
        metadata.update(min_score=str(min_score), max_overlap=str(max_overlap), top_k=str(postprocess.top_k),
                        max_candidates=str(max_candidates))
    if half:
        metadata["precision"] = "float16 network (float32 input, outputs and post-processing); for GPU runtimes"
    output_names = POSTPROCESS_OUTPUTS if with_postprocess else NETWORK_OUTPUTS
    with torch.no_grad():  # traced with 2 images; any number can be given to the exported model
        export_onnx(module, (torch.zeros(2, 3, size, size),), output, ("images",), output_names, opset, metadata)
    return module


class OnnxRuntimeSSD(nn.Module):
    """An SSD whose forward pass runs in onnxruntime on its exported network; everything else is the SSD's.

    A drop-in for the network in ``detect.detect_batch`` (``detect.py --backend onnxruntime``) and inside
    ``SSDDetector``: ``forward`` returns the same ``(predicted_locs, predicted_scores)`` tensors (to about 1e-5,
    see tests/test_export.py), and ``detect_objects``, ``image_size``, ``priors_cxcy`` and ``parameters()`` are
    the wrapped network's. onnxruntime's CPU kernels fold and prepack the convolutions once, where PyTorch's
    eager CPU path reorders tensors on every call.

    :param network: an ``SSD`` on the CPU; the wrapper starts in its mode (eval mode: ready to run)
    :param onnx_path: an exported network (``export.py`` without --with-postprocess) of this same network's
        weights; None: export it now into a temporary file (a few seconds)
    :param threads: onnxruntime's intra-op threads (None: its default, one per core)
    """

    def __init__(self, network, onnx_path=None, threads=None):
        import onnxruntime  # optional: only this backend needs it

        super().__init__()
        self.network = network
        self.image_size, self.n_classes = network.image_size, network.n_classes
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if onnx_path is None:
            with tempfile.TemporaryDirectory() as folder:
                onnx_path = os.path.join(folder, "network.onnx")
                export_network(network, onnx_path)
                self.session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        else:
            self.session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        # In the wrapped network's mode: one taken from a detector in training mode refuses to run (forward) until
        # .eval() is called, rather than handing that detector outputs a loss could not train.
        self.train(network.training)

    @property
    def priors_cxcy(self):
        """The wrapped network's priors (n_priors, 4)."""
        return self.network.priors_cxcy

    @property
    def preprocess_config(self):
        """The wrapped network's preprocessing (a converted checkpoint's mean/std/antialias, or None)."""
        return getattr(self.network, "preprocess_config", None)

    def forward(self, images):
        """:param images: (N, 3, S, S) normalized float32 images
        :return: predicted_locs (N, n_priors, 4), predicted_scores (N, n_priors, n_classes), CPU tensors
        :raises RuntimeError: in training mode (e.g. inside an ``SSDDetector`` put in ``.train()``): onnxruntime
            computes no gradients, so a loss through it could not train anything"""
        if self.training:
            raise RuntimeError("OnnxRuntimeSSD runs inference only (no gradients through onnxruntime): call .eval() "
                               "on it, or on the SSDDetector holding it")
        locs, scores = self.session.run(list(NETWORK_OUTPUTS), {"images": images.detach().cpu().float().numpy()})
        return torch.from_numpy(locs), torch.from_numpy(scores)

    def detect_objects(self, *args, **kwargs):
        """The wrapped network's ``detect_objects``."""
        return self.network.detect_objects(*args, **kwargs)
