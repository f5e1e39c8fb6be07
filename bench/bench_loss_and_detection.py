"""Time MultiBoxLoss and SSD300.detect_objects against torchvision's SSD on the same inputs.

Both sides get the same priors (as torchvision's anchors), the same predictions and the same
objects; the script prints each side's median time and the ratio ours / torchvision's (below 1
means we are faster).

    python bench/bench_loss_and_detection.py                  # CPU, batch 8 and 32
    python bench/bench_loss_and_detection.py --device cuda
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import SSD300  # noqa: E402
from utils import MultiBoxLoss, cxcy_to_gcxgcy, cxcy_to_xy, xy_to_cxcy  # noqa: E402

N_CLASSES = 21


def median_time(function, device, repeats):
    """Median wall time of ``function()`` in seconds, after one warm-up call.

    :param function: callable to time
    :param device: torch.device, to synchronize CUDA before reading the clock
    :param repeats: timed calls
    :return: median seconds per call
    """
    function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_inputs(batch_size, device, priors_cxcy, trained=True, seed=0):
    """Predictions and objects for a batch.

    ``trained=True`` imitates a trained detector: background wins at almost every prior, the priors
    that overlap an object predict its class and (noisily) its box; at the evaluation threshold of
    0.01 this leaves about 150 detections per image, as a real SSD300 on VOC does.
    ``trained=False`` is an untrained network: random logits, where every class of every prior
    clears 0.01 and the per-class cap of 400 candidates is always reached (the worst case).

    :return: predicted_locs (N, 8732, 4), predicted_scores (N, 8732, 21), and per-image lists of
        boxes (fractional x1y1x2y2) and labels, 1 to 4 objects per image
    """
    generator = torch.Generator().manual_seed(seed)
    priors_cxcy = priors_cxcy.cpu()
    predicted_locs = torch.randn(batch_size, 8732, 4, generator=generator) * 0.5
    predicted_scores = torch.randn(batch_size, 8732, N_CLASSES, generator=generator) * (1.0 if trained else 3.0)
    if trained:
        predicted_scores[:, :, 0] += 9.0
    boxes, labels = [], []
    for i in range(batch_size):
        n_objects = int(torch.randint(1, 5, (1,), generator=generator))
        xy = torch.rand(n_objects, 2, generator=generator) * 0.6
        wh = 0.1 + torch.rand(n_objects, 2, generator=generator) * 0.3
        image_boxes = torch.cat([xy, xy + wh], dim=1)
        image_labels = torch.randint(1, N_CLASSES, (n_objects,), generator=generator)
        if trained:
            best_overlap, best_object = box_iou(image_boxes, cxcy_to_xy(priors_cxcy)).max(dim=0)
            near = best_overlap > 0.4
            predicted_scores[i, near, image_labels[best_object[near]]] += 11.0
            offsets = cxcy_to_gcxgcy(xy_to_cxcy(image_boxes[best_object[near]]), priors_cxcy[near])
            predicted_locs[i, near] = offsets + 0.3 * torch.randn(offsets.shape, generator=generator)
        boxes.append(image_boxes.to(device))
        labels.append(image_labels.to(device))
    return predicted_locs.to(device), predicted_scores.to(device), boxes, labels


def bench_loss(tv_model, our_model, batch_size, device, repeats):
    predicted_locs, predicted_scores, boxes, labels = make_inputs(batch_size, device, our_model.priors_cxcy)
    anchors = cxcy_to_xy(our_model.priors_cxcy)
    loss_fn = MultiBoxLoss(our_model.priors_cxcy).to(device)

    def ours():
        return sum(loss_fn(predicted_locs, predicted_scores, boxes, labels))

    def theirs():  # what torchvision's SSD.forward does in training mode, after the network
        targets = [{"boxes": b, "labels": l} for b, l in zip(boxes, labels)]
        matched_idxs = [tv_model.proposal_matcher(box_iou(t["boxes"], anchors)) for t in targets]
        head_outputs = {"bbox_regression": predicted_locs, "cls_logits": predicted_scores}
        return tv_model.compute_loss(targets, head_outputs, [anchors] * batch_size, matched_idxs)

    losses = theirs()
    torch.testing.assert_close(ours(), losses["bbox_regression"] + losses["classification"], rtol=1e-4, atol=1e-4)
    return median_time(ours, device, repeats), median_time(theirs, device, repeats)


def bench_detection(tv_model, our_model, batch_size, device, repeats, trained, min_score, max_overlap, top_k):
    predicted_locs, predicted_scores, _, _ = make_inputs(batch_size, device, our_model.priors_cxcy, trained)
    anchors = cxcy_to_xy(our_model.priors_cxcy)
    tv_model.score_thresh, tv_model.nms_thresh, tv_model.detections_per_img = min_score, max_overlap, top_k
    tv_model.topk_candidates = 400  # both keep 400 candidates per class, as the Caffe code does

    def ours():
        return our_model.detect_objects(predicted_locs, predicted_scores, min_score, max_overlap, top_k,
                                        max_candidates_per_class=400)

    def theirs():
        head_outputs = {"bbox_regression": predicted_locs, "cls_logits": predicted_scores}
        return tv_model.postprocess_detections(head_outputs, [anchors] * batch_size, [(1, 1)] * batch_size)

    n_ours = sum(len(s) for s in ours()[2])
    n_theirs = sum(len(d["scores"]) for d in theirs())
    assert n_ours == n_theirs, (n_ours, n_theirs)
    return median_time(ours, device, repeats), median_time(theirs, device, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    torch.manual_seed(0)
    tv_model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES).to(device)
    our_model = SSD300(N_CLASSES).to(device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'what':<44} {'batch':>5} {'ours ms':>9} {'torchvision ms':>15} {'ratio':>6}")
    settings = [("MultiBoxLoss vs compute_loss", None),
                ("detect_objects, trained-like, eval (0.01)", (True, 0.01, 0.45, 200)),
                ("detect_objects, trained-like, detect (0.2)", (True, 0.2, 0.5, 200)),
                ("detect_objects, untrained, eval (0.01)", (False, 0.01, 0.45, 200))]
    for batch_size in args.batch_sizes:
        for name, detection_settings in settings:
            if detection_settings is None:
                ours, theirs = bench_loss(tv_model, our_model, batch_size, device, args.repeats)
            else:
                ours, theirs = bench_detection(tv_model, our_model, batch_size, device, args.repeats,
                                               *detection_settings)
            print(f"{name:<44} {batch_size:>5} {ours * 1e3:>9.2f} {theirs * 1e3:>15.2f} {ours / theirs:>6.2f}")


if __name__ == "__main__":
    main()
