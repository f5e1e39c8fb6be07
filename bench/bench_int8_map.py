"""What INT8 costs in accuracy: the VOC mAP (AP at IoU 0.5) of a checkpoint's float32 and INT8 ONNX exports.

Both exported with --with-postprocess (score 0.01, NMS 0.45, 200 detections: eval.py's settings), the INT8 one
calibrated on the TRAIN images of the same lists (``ssd_support/quantization.py``), both run by
``onnx_detector.OnnxDetector`` (what ``detect.py --onnx`` runs: its preprocessing in NumPy / Pillow) on the TEST
images, scored with the project's mAP (``ssd_support.voc_map.calculate_mAP``, VOC2007 11-point, difficult
objects ignored). Also the two files' sizes and their images/s in the same run.

    python bench/bench_int8_map.py --checkpoint checkpoints/toy/ssd300_iter_000064.pt --data-folder data/toy
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import read_image_list  # noqa: E402
from ssd_support.files import objects_list_path  # noqa: E402
from ssd_support.images import load_image  # noqa: E402
from ssd_support.onnx_detector import OnnxDetector, preprocess_numpy  # noqa: E402
from ssd_support.onnx_export import export_checkpoint  # noqa: E402
from ssd_support.quantization import (DEFAULT_CALIBRATION_IMAGES, calibration_image_paths,  # noqa: E402
                                      quantize_int8)
from ssd_support.voc_map import calculate_mAP  # noqa: E402


def detections(detector, images, batch_size):
    """Fractional boxes, labels and scores of every image (the graph's own post-processing), and the seconds."""
    boxes, labels, scores, seconds = [], [], [], 0.0
    for start in range(0, len(images), batch_size):
        batch = np.stack([preprocess_numpy(image, detector.image_size, **detector.preprocess)
                          for image in images[start:start + batch_size]])
        begin = time.perf_counter()
        b, s, l, n = detector.session.run(detector.output_names, {"images": batch})
        seconds += time.perf_counter() - begin
        for i in range(len(batch)):
            boxes.append(torch.from_numpy(b[i, :n[i]]))
            scores.append(torch.from_numpy(s[i, :n[i]]))
            labels.append(torch.from_numpy(l[i, :n[i]]))
    return boxes, labels, scores, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-folder", required=True, help="lists' folder: TRAIN calibrates, TEST is scored")
    parser.add_argument("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--keep", default=None, metavar="DIR", help="keep the two .onnx files in DIR")
    args = parser.parse_args(argv)
    label_map = json.load(open(os.path.join(args.data_folder, "label_map.json")))
    paths = read_image_list(args.data_folder, "TEST")
    objects = json.load(open(objects_list_path(args.data_folder, "TEST")))
    images = [load_image(path) for path in paths]
    true_boxes, true_labels, true_difficulties = [], [], []
    for image, target in zip(images, objects):
        scale = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
        true_boxes.append(torch.tensor(target["boxes"], dtype=torch.float32).view(-1, 4) / scale)
        true_labels.append(torch.tensor(target["labels"], dtype=torch.int64))
        true_difficulties.append(torch.tensor(target["difficulties"], dtype=torch.uint8))
    folder = args.keep or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    files = {"float32": os.path.join(folder, "float32_nms.onnx"), "int8": os.path.join(folder, "int8_nms.onnx")}
    export_checkpoint(args.checkpoint, files["float32"], with_postprocess=True, min_score=0.01, max_overlap=0.45)
    start = time.perf_counter()
    quantize_int8(files["float32"], files["int8"], calibration_image_paths(args.data_folder, args.calibration_images))
    print(f"quantized in {time.perf_counter() - start:.0f} s")
    print(f"{args.checkpoint}: {len(images)} TEST images of {args.data_folder}, VOC07 11-point mAP at IoU 0.5")
    results = {}
    for name, path in files.items():
        det = detections(OnnxDetector(path, providers=["CPUExecutionProvider"]), images, args.batch_size)
        aps, mean_ap = calculate_mAP(*det[:3], true_boxes, true_labels, true_difficulties, label_map=label_map)
        results[name] = (mean_ap, len(images) / det[3])
        print(f"  {name:8s} mAP (AP50) {mean_ap:.4f}  {os.path.getsize(path) / 1e6:6.1f} MB  "
              f"{len(images) / det[3]:.2f} images/s  per class {', '.join(f'{k} {v:.3f}' for k, v in aps.items())}")
    print(f"  INT8 - float32: {results['int8'][0] - results['float32'][0]:+.4f} mAP; "
          f"speed ratio INT8 / float32 {results['int8'][1] / results['float32'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
