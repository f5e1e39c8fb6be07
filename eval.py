"""Evaluate a trained SSD on the TEST split: the Pascal VOC average precision of every class and the mAP, and
(with --metric coco or all) the COCO AP.

    python eval.py --data-folder data --checkpoint checkpoints/ssd300_iter_120000.pt
    python eval.py --data-folder data --checkpoint ckpt.pt --output results.json --plots pr_curves/
    python eval.py --data-folder data/coco --checkpoint ckpt.pt --metric coco
    python eval.py --data-folder data --checkpoint ckpt.pt --split VAL --thresholds-out t.json --operating-score 0.4
    python eval.py --data-folder data --checkpoint ckpt.pt --plots errors/ --save-detections detections.json
    python eval.py --data-folder data --onnx ssd300_nms.onnx   # an export.py --with-postprocess model

The defaults are the paper's evaluation settings: keep detections scoring above 0.01, at most 400 candidates per
class into NMS (Caffe's nms_param top_k; --no-candidate-cap: all of them), NMS at IoU 0.45, at most 200 detections
per image. Difficult objects are loaded and then ignored by the metric (a detection that finds
one is neither right nor wrong), as the VOC devkit does. Two APs are printed for every class:

- 11-point AP, the VOC2007 metric, which is what the SSD paper reports (77.2 mAP for SSD300*, VOC07+12 training);
- area AP, the VOC2010+ metric (area under the precision envelope), usually about 2 points apart from it.

Always say which one a number is.

--plots DIR also writes what the errors are, at the operating score (--operating-score, default 0.5), matched as
the devkit matches (ssd_support.error_analysis): confusion_matrix.png / .csv (rows the objects' classes and
"background", columns the detected classes and "missed"), f1_curve.png (precision, recall and F1 against the
score) and predictions/ (the 16 images with the most false positives + misses, ground truth green, detections
red, listed in predictions/index.json). --save-detections FILE writes the detections as a COCO results file
and the ground truth of the scored split beside it (ssd_support.detection_export). An output that is one of the
inputs (the checkpoint, the lists) is refused before any work.

--operating-score S prints each class's precision, recall and F1 for the detections scoring >= S (a detector is
deployed at 0.4, say, not at the 0.01 of the AP); --thresholds-out FILE writes, per class, the score that
maximises F1 on the evaluated split with that precision and recall (detect.py --thresholds FILE uses them;
ssd_support.operating_points). Choose them on a VAL split (--split VAL, made by create_data_lists.py
--val-fraction), not on TEST.

--onnx FILE evaluates an export.py --with-postprocess model in onnxruntime instead of a checkpoint, on the same
images with the same metrics, so that an export's cost in mAP is measured (ssd_support.onnx_eval). Its NMS is in
the graph, with the settings it was exported with: it is refused, naming them, unless they give this evaluation's
detections (export.py's defaults are eval.py's).

--metric coco prints the COCO metrics (pycocotools, installed separately: pip install pycocotools): AP averaged
over IoU 0.50:0.95, AP50, AP75, AP of small / medium / large objects, and the same per class, with the VOC mAP in
one line; --metric all prints both tables. The COCO ground truth is built from the data folder's TEST lists, so
any data folder works (VOC ones too, their difficult objects counting as COCO crowd objects), and the boxes are
compared in the pixels of each original image. COCO keeps at most 100 detections per image, the best-scoring of those --top-k gives.
"""

import argparse
import importlib.util
import json
import os
import sys

import torch
from tqdm import tqdm

from ssd_support.coco_eval import coco_average_precision, format_coco_table
from ssd_support.detection_export import coco_ids_path, ground_truth_path, load_coco_ids, save_coco_detections
from ssd_support.detection_formats import EMPTY_RESULTS_NOTE
from ssd_support.error_analysis import OPERATING_SCORE, operating_score_argument, write_plots
from ssd_support.images import image_size
from model import EVAL_CANDIDATES_PER_CLASS, EVAL_MIN_SCORE, EVAL_NMS_IOU, EVAL_TOP_K
from ssd_support.files import data_folder_files, label_map_path, output_file_argument, refuse_inputs_as_outputs
from ssd_support.files import output_folder_argument, write_atomically
from ssd_support.onnx_eval import collect_onnx_detections, load_onnx_for_evaluation
from ssd_support.operating_points import (operating_point, operating_point_means, report_operating_points,
                                          sorted_class_scores)
from ssd_support.voc_map import average_precisions_from_curves, precision_recall_curves

METRICS = ("voc", "coco", "all")


def collect_detections(model, data_loader, device, min_score=EVAL_MIN_SCORE, max_overlap=EVAL_NMS_IOU, top_k=EVAL_TOP_K,
                       progress=True, max_candidates_per_class=EVAL_CANDIDATES_PER_CLASS, split_loss=None):
    """Run the model over a data set and gather its detections and the ground truth, image by image.

    :param model: an SSD300 (or a DistributedDataParallel wrapping one); put in eval mode for the duration
    :param data_loader: yields (images (N, 3, S, S), boxes list, labels list, difficulties list), as
        ``PascalVOCDataset(..., "TEST", keep_difficult=True)`` with its ``collate_fn`` gives them
    :param device: where to run the model (a str or torch.device)
    :param min_score: minimum class score of a detection (0.01 in the paper's evaluation)
    :param max_overlap: NMS IoU threshold (0.45)
    :param top_k: at most this many detections per image (200)
    :param progress: show a tqdm progress bar
    :param max_candidates_per_class: at most this many candidates per image and class enter NMS, the best-scoring
        (Caffe's nms_param top_k, 400, as export.py and SSDDetector keep); None: every candidate above min_score
    :param split_loss: a ssd_support.split_loss.SplitLoss fed each batch's outputs and ground truth (train.py's
        VAL loss, from the same forward pass), or None
    :return: dict of six lists with one CPU tensor per image: "det_boxes" (n, 4) fractional x1y1x2y2,
        "det_labels" (n,), "det_scores" (n,), "true_boxes" (m, 4), "true_labels" (m,), "true_difficulties" (m,)
    """
    network = getattr(model, "module", model)  # detect_objects lives on the SSD300, not on a DDP wrapper
    was_training = network.training
    network.eval()
    collected = {key: [] for key in ("det_boxes", "det_labels", "det_scores",
                                     "true_boxes", "true_labels", "true_difficulties")}
    try:
        with torch.inference_mode():
            for images, boxes, labels, difficulties in tqdm(data_loader, desc="Evaluating", unit="batch",
                                                             disable=not progress):
                predicted_locs, predicted_scores = network(images.to(device))
                if split_loss is not None:
                    split_loss.add(predicted_locs, predicted_scores, boxes, labels)
                det_boxes, det_labels, det_scores = network.detect_objects(
                    predicted_locs, predicted_scores, min_score=min_score, max_overlap=max_overlap, top_k=top_k,
                    max_candidates_per_class=max_candidates_per_class)
                collected["det_boxes"].extend(b.cpu() for b in det_boxes)
                collected["det_labels"].extend(lab.cpu() for lab in det_labels)
                collected["det_scores"].extend(s.cpu() for s in det_scores)
                collected["true_boxes"].extend(b.cpu() for b in boxes)
                collected["true_labels"].extend(lab.cpu() for lab in labels)
                collected["true_difficulties"].extend(d.cpu() for d in difficulties)
    finally:
        network.train(was_training)  # train.py's --eval-every calls this in the middle of training
    return collected


def read_image_sizes(image_paths):
    """The upright (EXIF-applied) (width, height) of each image, as images.load_image gives it, read from the
    file headers (images.image_size).

    :param image_paths: list of image file paths
    :return: list of (width, height) pairs, in pixels
    :raises images.UnreadableImageError: (a ValueError) naming the file, when one cannot be read
    """
    return [image_size(path) for path in image_paths]


def _check_metric(metric):
    """Raise a ValueError unless ``metric`` is one of METRICS."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def score_detections(collected, label_map, metric="voc", image_sizes=None):
    """The VOC metrics (always: train.py reads them) and, when asked, the COCO metrics from collected detections.

    :param collected: the dict :func:`collect_detections` returns
    :param label_map: {class name: label}, background 0
    :param metric: "voc", or "coco" / "all" to add the COCO metrics
    :param image_sizes: (width, height) of each image in pixels, in data-loader order; needed for "coco" / "all"
    :return: (results, curves): results is {"ap_11pt": {class: AP}, "map_11pt": float, "ap_area": {...},
        "map_area": float}, plus "coco" (coco_eval.coco_average_precision's dict) for "coco" / "all"; curves is
        {class: (precision, recall, n_positives)} for plotting. Classes without any non-difficult test object
        have no VOC AP and are absent from both.
    """
    _check_metric(metric)
    curves = precision_recall_curves(
        collected["det_boxes"], collected["det_labels"], collected["det_scores"],
        collected["true_boxes"], collected["true_labels"], collected["true_difficulties"], label_map=label_map)
    ap_11pt, map_11pt = average_precisions_from_curves(curves, use_07_metric=True)
    ap_area, map_area = average_precisions_from_curves(curves, use_07_metric=False)
    results = {"ap_11pt": ap_11pt, "map_11pt": map_11pt, "ap_area": ap_area, "map_area": map_area}
    if metric in ("coco", "all"):
        if image_sizes is None:
            raise ValueError("the COCO metrics need the size of every image (image_sizes)")
        results["coco"] = coco_average_precision(
            collected["det_boxes"], collected["det_labels"], collected["det_scores"], collected["true_boxes"],
            collected["true_labels"], collected["true_difficulties"], image_sizes, label_map=label_map)
    return results, curves


def evaluate(model, data_loader, label_map, device, min_score=EVAL_MIN_SCORE, max_overlap=EVAL_NMS_IOU, top_k=EVAL_TOP_K,
             progress=True,
             metric="voc", image_sizes=None, max_candidates_per_class=EVAL_CANDIDATES_PER_CLASS, split_loss=None,
             operating_score=None):
    """Evaluate a model on a data set with the VOC metrics, and optionally the COCO ones.

    :param model: an SSD300 (or a DDP wrapper of one); its train/eval mode is restored afterwards
    :param data_loader: TEST-split loader with difficult objects kept, yielding (images, boxes, labels,
        difficulties) with boxes as fractional x1y1x2y2
    :param label_map: {class name: label}, background 0
    :param device: where to run the model
    :param min_score: minimum detection score (paper: 0.01)
    :param max_overlap: NMS IoU threshold (paper: 0.45)
    :param top_k: at most this many detections per image (paper: 200)
    :param progress: show a tqdm progress bar
    :param metric: "voc" (default), or "coco" / "all" to add the COCO metrics (needs pycocotools)
    :param image_sizes: (width, height) of each image in loader order, for the COCO metrics; by default read
        from the headers of ``data_loader.dataset.images`` (a PascalVOCDataset's image paths)
    :param max_candidates_per_class: candidates per image and class entering NMS (paper: 400; None: all)
    :param split_loss: a SplitLoss to feed from the same forward pass (collect_detections), or None
    :param operating_score: also give the precision and recall of the detections scoring at least this, or None
    :return: {"ap_11pt": {class: AP}, "map_11pt": float, "ap_area": {class: AP}, "map_area": float}, plus
        "coco" ({"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", ..., "per_class"}) for "coco" / "all", and
        "operating_point" ({"score", "precision", "recall", "f1"}: means over classes, "per_class":
        operating_points.operating_point's dict) when ``operating_score`` is given
    """
    _check_metric(metric)
    if metric != "voc" and image_sizes is None:
        # Before the model runs, so that a loader without image paths fails at once, not after the whole pass.
        image_paths = getattr(getattr(data_loader, "dataset", None), "images", None)
        if image_paths is None:
            raise ValueError("the COCO metrics need image_sizes, or a data loader whose dataset has .images paths")
        image_sizes = read_image_sizes(image_paths)
    collected = collect_detections(model, data_loader, device, min_score, max_overlap, top_k, progress,
                                   max_candidates_per_class, split_loss)
    results, curves = score_detections(collected, label_map, metric, image_sizes)
    if operating_score is not None:
        points = operating_point(curves, sorted_class_scores(collected, label_map), operating_score)
        results["operating_point"] = {"score": operating_score, **operating_point_means(points), "per_class": points}
    return results


def format_table(results, label_map):
    """The per-class AP table eval.py prints.

    :param results: the dict :func:`evaluate` returns
    :param label_map: {class name: label}; every class but the background gets a row ("n/a" when it has no AP)
    :return: the table, a str
    """
    names = [name for name, label in sorted(label_map.items(), key=lambda item: item[1]) if label != 0]
    width = max([len(name) for name in names] + [len("class")])
    lines = [f"{'class':<{width}}  AP 11-point  AP area", "-" * (width + 22)]
    for name in names:
        if name in results["ap_11pt"]:
            lines.append(f"{name:<{width}}  {results['ap_11pt'][name]:11.4f}  {results['ap_area'][name]:7.4f}")
        else:
            lines.append(f"{name:<{width}}  {'n/a':>11}  {'n/a':>7}   (no non-difficult test object)")
    lines.append("-" * (width + 22))
    lines.append(f"{'mAP':<{width}}  {results['map_11pt']:11.4f}  {results['map_area']:7.4f}")
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options; the defaults are the paper's evaluation settings."""
    parser = argparse.ArgumentParser(description="Evaluate an SSD checkpoint or ONNX export on the TEST split "
                                                 "(VOC mAP, COCO AP).")
    parser.add_argument("--data-folder", required=True, help="folder with TEST_images.json, TEST_objects.json")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="checkpoint written by train.py")
    model.add_argument("--onnx", metavar="FILE",
                       help="evaluate this export.py --with-postprocess model in onnxruntime instead of a checkpoint "
                            "(its label map and input size from its metadata; its graph's post-processing settings "
                            "must allow the evaluation's; it runs where onnxruntime runs it, not on --device)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4, help="data-loading worker processes")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--min-score", type=float, default=EVAL_MIN_SCORE,
                        help=f"minimum detection score (paper: {EVAL_MIN_SCORE})")
    parser.add_argument("--max-overlap", type=float, default=EVAL_NMS_IOU,
                        help=f"NMS IoU threshold (paper: {EVAL_NMS_IOU})")
    parser.add_argument("--top-k", type=int, default=EVAL_TOP_K, help=f"detections kept per image (paper: {EVAL_TOP_K})")
    parser.add_argument("--no-candidate-cap", action="store_true",
                        help=f"send every candidate above --min-score into NMS, instead of the best "
                             f"{EVAL_CANDIDATES_PER_CLASS} per image and class (Caffe's nms_param top_k, the paper's)")
    parser.add_argument("--metric", choices=METRICS, default="voc",
                        help="voc: the VOC APs, 11-point and area (default); coco: the COCO AP at IoU 0.50:0.95, "
                             "AP50, AP75, by object size and per class (needs pycocotools); all: both")
    parser.add_argument("--output", type=output_file_argument(".json", "a summary json"),
                        help="write the APs and mAPs to this JSON file")
    parser.add_argument("--plots", type=output_folder_argument, metavar="DIR",
                        help="write here a precision-recall curve PNG per class, confusion_matrix.png / .csv, "
                             "f1_curve.png and predictions/ (the 16 images with the most errors, drawn), these "
                             "three at --operating-score")
    parser.add_argument("--save-detections", type=output_file_argument(".json", "a COCO results json"), metavar="FILE",
                        help="write every image's detections (its best 100, COCO's rule) as a COCO results json, "
                             "and beside it the ground truth of the scored split (FILE_ground_truth.json, with file "
                             "names and sizes): pycocotools on the two gives --metric coco's AP; lists made from a "
                             "COCO json keep its image and category ids")
    parser.add_argument("--split", choices=("TEST", "VAL"), default="TEST",
                        help="the split to evaluate: TEST, or VAL (create_data_lists.py --val-fraction), where "
                             "thresholds should be chosen")
    parser.add_argument("--thresholds-out", type=output_file_argument(".json", "a thresholds json"), metavar="FILE",
                        help="write per class the score that maximises F1 on the evaluated split, with its "
                             "precision and recall, as JSON that detect.py --thresholds reads")
    parser.add_argument("--operating-score", type=operating_score_argument, default=None, metavar="S",
                        help="also print precision, recall and F1 per class for the detections scoring >= S "
                             "(where a deployed detector runs, e.g. 0.4, not the 0.01 of the AP); --plots counts "
                             f"its confusion matrix and errors at S (default there: {OPERATING_SCORE})")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return parser.parse_args(argv)


def _nan_to_none(value):
    """A copy of nested dicts / lists with NaN replaced by None, so that the JSON written is standard JSON."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    return None if isinstance(value, float) and value != value else value


def _fail(message):
    """Print a one-line error and return the failing exit status."""
    print(f"eval.py: error: {message}", file=sys.stderr)
    return 1


def load_model(args, device, max_candidates):
    """The model to evaluate: a checkpoint's network, or with --onnx an exported model in onnxruntime
    (ssd_support.onnx_eval, its baked-in post-processing checked against the evaluation settings).

    :param args: parse_args' namespace (--checkpoint or --onnx, and the evaluation settings)
    :param device: where a checkpoint's network runs
    :param max_candidates: the evaluation's candidates per image and class (None: all)
    :return: (model, label_map, preprocess): the SSD300 or OnnxDetector (both have ``image_size``), its
        {class name: label}, and how its images are prepared (``PascalVOCDataset``'s preprocess)
    :raises ValueError: (KeyError, RuntimeError from a broken checkpoint; ImportError without onnxruntime) one
        line naming the file
    """
    if args.onnx:
        detector = load_onnx_for_evaluation(args.onnx, args.min_score, args.max_overlap, args.top_k, max_candidates)
        return detector, detector.label_map, detector.preprocess or None
    from ssd_support.checkpoints import load_model_from_checkpoint
    from ssd_support.cpu_layout import use_fast_cpu_layout

    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"{args.checkpoint}: checkpoint not found")
    model, label_map = load_model_from_checkpoint(args.checkpoint, device=device)
    use_fast_cpu_layout(model)  # channels-last weights on the CPU: same detections, ~1.25x the images/s
    return model, label_map, getattr(model, "preprocess_config", None)


def main(argv=None):
    """Evaluate a checkpoint from the command line; prints the table, optionally writes JSON and plots.

    :param argv: arguments (None: sys.argv[1:])
    :return: exit status (0 on success, 1 on bad input)
    """
    args = parse_args(argv)
    try:  # an output that is an input (the checkpoint, the lists) would be replaced by it: refused before any work
        inputs = [*data_folder_files(args.data_folder), coco_ids_path(args.data_folder), args.onnx or args.checkpoint]
        refuse_inputs_as_outputs(inputs, {"--output": args.output, "--save-detections": args.save_detections,
                                          "--save-detections' ground truth": args.save_detections and
                                          ground_truth_path(args.save_detections),
                                          "--thresholds-out": args.thresholds_out})
    except ValueError as error:
        return _fail(str(error))
    # Checked before the model runs rather than after the whole pass.
    if args.metric != "voc" and importlib.util.find_spec("pycocotools") is None:
        return _fail(f"--metric {args.metric} needs pycocotools: pip install pycocotools")
    # Imported here rather than at the top so that ``import eval`` stays light for train.py's --eval-every.
    from datasets import PascalVOCDataset, collate_fn, load_label_map

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    max_candidates = None if args.no_candidate_cap else EVAL_CANDIDATES_PER_CLASS
    model_path = args.onnx or args.checkpoint
    try:
        model, label_map, preprocess = load_model(args, device, max_candidates)
    except (ValueError, KeyError, RuntimeError, ImportError) as error:
        return _fail(str(error).splitlines()[0])

    # The labels in the data folder must mean what the model's outputs mean, or every AP is silently wrong.
    if os.path.isfile(label_map_path(args.data_folder)):
        data_label_map = load_label_map(args.data_folder)
        if data_label_map != label_map:
            return _fail(f"{label_map_path(args.data_folder)}: label map differs from the one in "
                         f"{model_path} (classes {sorted(data_label_map)} vs {sorted(label_map)})")
    try:
        # Resized to the input size the network was built for (SSD300: 300, SSD512: 512), and prepared as
        # its checkpoint says (a converted COCO checkpoint names its own mean/std and resizing).
        dataset = PascalVOCDataset(args.data_folder, args.split, keep_difficult=True,
                                   image_size=getattr(model, "image_size", 300), preprocess=preprocess)
        image_sizes = read_image_sizes(dataset.images) if args.metric != "voc" or args.save_detections else None
        # Before the pass: lists whose coco_ids.json does not fit them fail now, not after it.
        coco_ids = load_coco_ids(args.data_folder, args.split, label_map) if args.save_detections else None
    except (OSError, ValueError) as error:
        return _fail(str(error).splitlines()[0])
    if len(dataset) == 0:
        return _fail(f"{args.data_folder}: the {args.split} split has no images")
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                                         num_workers=args.workers, collate_fn=collate_fn,
                                         pin_memory=device.type == "cuda")

    if args.onnx:  # the graph ran the post-processing: its detections, at the settings checked on loading
        collected = collect_onnx_detections(model, loader, args.min_score, args.top_k, progress=not args.no_progress)
    else:
        collected = collect_detections(model, loader, device, args.min_score, args.max_overlap, args.top_k,
                                       progress=not args.no_progress, max_candidates_per_class=max_candidates)
    results, curves = score_detections(collected, label_map, args.metric, image_sizes)

    print(f"{model_path}{' (onnxruntime)' if args.onnx else ''} on {args.data_folder} {args.split}: "
          f"{len(dataset)} images "
          f"(min_score {args.min_score}, NMS IoU {args.max_overlap}, top_k {args.top_k}, "
          f"{'every candidate' if max_candidates is None else f'at most {max_candidates} candidates per class'} "
          f"into NMS; difficult objects ignored)")
    if args.metric in ("voc", "all"):
        print(format_table(results, label_map))
        print("11-point: VOC2007 metric, as in the SSD paper. area: VOC2010+ metric.")
    if args.metric in ("coco", "all"):
        print(format_coco_table(results["coco"], label_map))
        print("COCO metrics (pycocotools): best 100 detections per image; difficult objects count as crowd; object "
              "areas are box areas (official COCO areas come from masks, so APs/APm/APl can differ slightly).")
    if args.metric == "coco":  # the VOC mAP alongside, in one line (--metric all prints its whole table)
        print(f"VOC mAP (IoU 0.5): {results['map_11pt']:.4f} 11-point, {results['map_area']:.4f} area")
    if args.output:
        summary = {
            "checkpoint": args.checkpoint, **({"onnx": args.onnx} if args.onnx else {}),
            "data_folder": args.data_folder, "split": args.split,
            "n_images": len(dataset), "metric": args.metric,
            "settings": {"min_score": args.min_score, "max_overlap": args.max_overlap, "top_k": args.top_k,
                         "max_candidates_per_class": max_candidates},
            **results,
        }
        # COCO metrics are NaN where there is nothing to average (no small object, say): null in the file.
        summary = _nan_to_none(summary)
        write_atomically(args.output, lambda file: json.dump(summary, file, indent=2, allow_nan=False))
        print(f"results written to {args.output}")
    if args.plots:
        try:
            for line in write_plots(args.plots, collected, curves, sorted_class_scores(collected, label_map),
                                    label_map, dataset.images, args.operating_score):
                print(line)
        except (OSError, ValueError) as error:
            return _fail(str(error).splitlines()[0])
    if args.save_detections:
        n_written, truth_path = save_coco_detections(args.save_detections, collected, image_sizes, label_map,
                                                     coco_ids, image_paths=dataset.images)
        print(f"{n_written} detections (COCO results format) written to {args.save_detections}, "
              + (f"with the image and category ids of {coco_ids['annotation_file']}, " if coco_ids else "")
              + f"the ground truth of the {args.split} split they are scored on to {truth_path}")
        if not n_written:
            print(EMPTY_RESULTS_NOTE)
    report_operating_points(collected, curves, label_map, args.operating_score, args.thresholds_out, model_path,
                            args.data_folder, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
