"""--negatives-per-empty-image K on a toy set with background images: false positives and mAP against K = 0.

A toy set (ssd_support/toy_data.py) where a fraction of the TRAIN and TEST images have no objects, only decoys
(the classes' shapes in colours no class has). For each K, the same short train.py run (same seed, same batches),
then on TEST: the VOC mAP (11-point, eval.evaluate, the paper's settings) and the false positives per background
image at each score of --scores (every detection on an image without objects is a false positive).

    python bench/bench_levers.py                                          # K = 0, 3, 10; ~12 min per K
    python bench/bench_levers.py --ks 0 3 --iterations 200 --test 48      # ~24 min per K

It prints a markdown table, one row per K. Measured on 2 CPU cores (torch 2.14.1), seed 0, the tables in
docs/training.md#training-levers: after 80 iterations (the models still learning the classes, mAP 0.08-0.21)
K = 3 and 10 cut the false positives but cost mAP (0.210 -> 0.100 -> 0.076); after 200 iterations K = 3 gave both
a higher mAP (0.333 -> 0.401) and fewer false positives per background image (2.72 -> 0.39 at 0.2, 1.22 -> 0 at
0.5), which is why train.py's default is 3 (ssd_support/training_data.py). The same TRAIN images either way: a
larger --test adds TEST images only.
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402
from create_data_lists import create_data_lists  # noqa: E402
from datasets import PascalVOCDataset, collate_fn, load_label_map  # noqa: E402
from eval import evaluate  # noqa: E402
from model import EVAL_NMS_IOU, EVAL_TOP_K  # noqa: E402
from ssd_support.toy_data import make_toy_dataset  # noqa: E402


def make_data(folder, n_train, n_test, background_fraction, seed):
    """The toy set with background images and its lists in ``folder``."""
    voc = make_toy_dataset(folder, n_train=n_train, n_test=n_test, seed=seed, background_fraction=background_fraction)
    with contextlib.redirect_stdout(io.StringIO()):
        create_data_lists(voc07_path=voc, output_folder=folder)
    return folder


def measure(model, folder, scores):
    """(11-point mAP, [false positives per background TEST image at each of ``scores``], number of background
    images)."""
    dataset = PascalVOCDataset(folder, "TEST", keep_difficult=True)
    loader = DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=collate_fn)
    label_map = load_label_map(folder)
    result = evaluate(model, loader, label_map, torch.device("cpu"), progress=False)
    false_positives, n_background = [0] * len(scores), 0
    model.eval()
    with torch.no_grad():
        for images, boxes, _, _ in loader:
            locs, class_scores = model(images)
            _, _, det_scores = model.detect_objects(locs, class_scores, min_score=min(scores),
                                                    max_overlap=EVAL_NMS_IOU, top_k=EVAL_TOP_K)
            for image_boxes, image_scores in zip(boxes, det_scores):
                if len(image_boxes) == 0:
                    n_background += 1
                    for i, score in enumerate(scores):
                        false_positives[i] += int((image_scores >= score).sum())
    return result["map_11pt"], [count / max(n_background, 1) for count in false_positives], n_background


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 3, 10], help="values of --negatives-per-empty-image")
    parser.add_argument("--iterations", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train", type=int, default=24, help="toy TRAIN images")
    parser.add_argument("--test", type=int, default=24, help="toy TEST images")
    parser.add_argument("--background-fraction", type=float, default=0.33)
    parser.add_argument("--scores", type=float, nargs="+", default=[0.2, 0.5],
                        help="scores at which false positives are counted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        folder = make_data(os.path.join(root, "data"), args.train, args.test, args.background_fraction, args.seed)
        for k in args.ks:
            with contextlib.redirect_stdout(io.StringIO()):
                result = train.main([
                    "--data-folder", folder, "--checkpoint-dir", os.path.join(root, f"k{k}"), "--device", "cpu",
                    "--no-pretrained", "--optimizer", "adamw", "--lr", "2e-4", "--no-augment", "--batch-size",
                    str(args.batch_size), "--iterations", str(args.iterations), "--warmup", "4", "--workers", "0",
                    "--no-progress", "--no-previews", "--log-every", "1", "--seed", str(args.seed),
                    "--negatives-per-empty-image", str(k)])
            mean_ap, fp, n_background = measure(result["model"], folder, args.scores)
            # One step's loss is noisy (a batch of background images alone has none at K = 0): the last 20 steps'.
            last_losses = [float(row["loss"]) for row in result["log"] if row["loss"] not in ("", None)][-20:]
            rows.append((k, mean_ap, fp, sum(last_losses) / len(last_losses)))
            print(f"K={k}: mAP {mean_ap:.4f}, false positives per background image "
                  f"{', '.join(f'{f:.2f} at {s:g}' for f, s in zip(fp, args.scores))} "
                  f"({n_background} background TEST images)", file=sys.stderr, flush=True)
    print(f"\n{args.train} TRAIN / {args.test} TEST toy images, {args.background_fraction:.0%} without objects; "
          f"{args.iterations} iterations of batch {args.batch_size} (adamw 2e-4, --no-augment), seed {args.seed}\n")
    print("| --negatives-per-empty-image | TEST mAP (11-point) | "
          + " | ".join(f"false positives per background image, score >= {s:g}" for s in args.scores)
          + " | training loss, mean of the last 20 steps |")
    print("|---" * (3 + len(args.scores)) + "|")
    for k, mean_ap, fp, loss in rows:
        print(f"| {k} | {mean_ap:.4f} | " + " | ".join(f"{f:.2f}" for f in fp) + f" | {loss:.3f} |")


if __name__ == "__main__":
    main()
