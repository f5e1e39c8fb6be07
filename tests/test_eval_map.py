"""Tests of utils.calculate_mAP: hand-worked VOC cases and agreement with a plain devkit-loop reference."""

import importlib.util
import os

import pytest
import torch

from utils import VOC_LABELS, average_precision, calculate_mAP, make_label_map

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_CLASSES = make_label_map(["cat", "dog"])  # cat = 1, dog = 2


def _load_bench():
    """Import bench/bench_map.py (not a package) for its reference implementation and problem generator."""
    spec = importlib.util.spec_from_file_location("bench_map", os.path.join(ROOT, "bench", "bench_map.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(dets, objects):
    """One image's tensors from readable lists.

    :param dets: list of (box, label, score)
    :param objects: list of (box, label, difficult)
    :return: (det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties) of the image
    """
    return (
        torch.tensor([d[0] for d in dets], dtype=torch.float32).reshape(-1, 4),
        torch.tensor([d[1] for d in dets], dtype=torch.int64),
        torch.tensor([d[2] for d in dets], dtype=torch.float32),
        torch.tensor([o[0] for o in objects], dtype=torch.float32).reshape(-1, 4),
        torch.tensor([o[1] for o in objects], dtype=torch.int64),
        torch.tensor([o[2] for o in objects], dtype=torch.uint8),
    )


def _evaluate(images, use_07_metric=True, label_map=TWO_CLASSES):
    """calculate_mAP over a list of _image() tuples."""
    per_image_lists = [list(column) for column in zip(*images)]
    return calculate_mAP(*per_image_lists, use_07_metric=use_07_metric, label_map=label_map)


A = [0.1, 0.1, 0.4, 0.4]
B = [0.5, 0.5, 0.9, 0.9]
FAR = [0.0, 0.6, 0.2, 0.9]  # overlaps neither A nor B


def test_perfect_detections_give_one_with_both_metrics():
    images = [
        _image([(A, 1, 0.9), (B, 2, 0.8)], [(A, 1, 0), (B, 2, 0)]),
        _image([(B, 1, 0.7)], [(B, 1, 0)]),
    ]
    for use_07 in (True, False):
        aps, mean_ap = _evaluate(images, use_07)
        assert aps == {"cat": 1.0, "dog": 1.0}
        assert mean_ap == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_ground_truth_as_detections_gives_exactly_one_on_random_problems(seed):
    # Every object (difficult ones too) detected once with its own box, in random score order.
    bench = _load_bench()
    _, _, _, true_boxes, true_labels, true_difficulties = bench.make_synthetic_problem(
        n_images=40, objects_per_image=4, n_classes=20, difficult_rate=0.2, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.rand(len(labels), generator=generator) for labels in true_labels]
    for use_07 in (True, False):
        aps, mean_ap = calculate_mAP(true_boxes, true_labels, scores, true_boxes, true_labels, true_difficulties,
                                     use_07_metric=use_07)
        assert len(aps) >= 15 and set(aps.values()) == {1.0} and mean_ap == 1.0


def test_duplicate_detection_is_a_false_positive():
    # Scores: A 0.9 (TP), A again 0.8 (duplicate: FP), B 0.7 (TP) -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    images = [
        _image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0)]),
        _image([(B, 1, 0.7)], [(B, 1, 0)]),
    ]
    aps_07, _ = _evaluate(images, True)
    # 11-point: t = 0 .. 0.5 reach precision 1, t = 0.6 .. 1.0 reach 2/3.
    assert aps_07["cat"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    aps_area, _ = _evaluate(images, False)
    # Area: recall 0 -> 1/2 at precision 1, 1/2 -> 1 at precision 2/3.
    assert aps_area["cat"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Without the duplicate, both are perfect: the duplicate is what cost precision.
    images[0] = _image([(A, 1, 0.9)], [(A, 1, 0)])
    assert _evaluate(images, True)[0]["cat"] == pytest.approx(1.0)


def test_difficult_objects_are_ignored_not_false_positives_and_not_counted_in_recall():
    # The 0.95 detection hits a difficult object: ignored. Then A is found. AP 1 (recall 1/1, precision 1).
    # Counting it as a false positive would give 0.5; counting the difficult object in recall, 0.5 too.
    images = [_image([(B, 1, 0.95), (A, 1, 0.9)], [(A, 1, 0), (B, 1, 1)])]
    for use_07 in (True, False):
        assert _evaluate(images, use_07)[0]["cat"] == pytest.approx(1.0)
    # A second detection of the difficult object is ignored too (not a duplicate FP).
    images = [_image([(B, 1, 0.95), (B, 1, 0.93), (A, 1, 0.9)], [(A, 1, 0), (B, 1, 1)])]
    assert _evaluate(images)[0]["cat"] == pytest.approx(1.0)


def test_detection_best_matching_a_difficult_object_is_ignored_even_if_it_also_fits_another():
    # The devkit takes the object of highest IoU (here the difficult one, IoU 0.8) and stops there, even though
    # the non-difficult object also has IoU 0.6 > 0.5. So nothing is found: recall 0, AP 0.
    easy = [0.0, 0.0, 0.6, 1.0]
    hard = [0.0, 0.0, 0.8, 1.0]
    det = [0.0, 0.0, 1.0, 1.0]
    images = [_image([(det, 1, 0.9)], [(easy, 1, 0), (hard, 1, 1)])]
    aps, _ = _evaluate(images)
    assert aps["cat"] == 0.0


def test_class_with_only_difficult_objects_has_no_ap_and_is_left_out_of_the_mean():
    images = [_image([(A, 1, 0.9), (B, 2, 0.9)], [(A, 1, 0), (B, 2, 1)])]
    aps, mean_ap = _evaluate(images)
    assert set(aps) == {"cat"}
    assert mean_ap == pytest.approx(1.0)


def test_class_without_detections_has_ap_zero_and_counts_in_the_mean():
    images = [_image([(A, 1, 0.9)], [(A, 1, 0), (B, 2, 0)])]
    for use_07 in (True, False):
        aps, mean_ap = _evaluate(images, use_07)
        assert aps == {"cat": pytest.approx(1.0), "dog": 0.0}
        assert mean_ap == pytest.approx(0.5)


def test_iou_must_be_strictly_above_one_half():
    obj = [0.0, 0.0, 1.0, 0.5]
    exactly_half = [0.0, 0.0, 1.0, 1.0]  # intersection 0.5, union 1
    just_above = [0.0, 0.0, 1.0, 0.99]
    assert _evaluate([_image([(exactly_half, 1, 0.9)], [(obj, 1, 0)])])[0]["cat"] == 0.0
    assert _evaluate([_image([(just_above, 1, 0.9)], [(obj, 1, 0)])])[0]["cat"] == pytest.approx(1.0)


def test_detections_only_match_objects_of_their_own_class_and_image():
    images = [
        _image([(A, 2, 0.9)], [(A, 1, 0)]),  # right box, wrong class
        _image([(A, 1, 0.8)], [(B, 1, 0)]),  # right class, object is in another place
        _image([(A, 1, 0.7)], []),  # image without objects
    ]
    aps, _ = _evaluate(images)
    assert aps == {"cat": 0.0}  # dog has no object: no AP


def test_equal_scores_keep_input_order_image_first():
    # Both detections score 0.5. The stable sort keeps image 0's (a false positive) before image 1's (a true
    # positive): precision 0 then 1/2 at recall 0 then 1 -> AP 0.5 with both metrics. The other order gives 1.
    fp_then_tp = [_image([(FAR, 1, 0.5)], []), _image([(A, 1, 0.5)], [(A, 1, 0)])]
    tp_then_fp = [fp_then_tp[1], fp_then_tp[0]]
    for use_07 in (True, False):
        assert _evaluate(fp_then_tp, use_07)[0]["cat"] == pytest.approx(0.5)
        assert _evaluate(tp_then_fp, use_07)[0]["cat"] == pytest.approx(1.0)
    # Within an image, the order of the detection list decides.
    assert _evaluate([_image([(FAR, 1, 0.5), (A, 1, 0.5)], [(A, 1, 0)])])[0]["cat"] == pytest.approx(0.5)
    assert _evaluate([_image([(A, 1, 0.5), (FAR, 1, 0.5)], [(A, 1, 0)])])[0]["cat"] == pytest.approx(1.0)


def test_tie_between_objects_goes_to_the_first_annotated_and_there_is_no_second_choice():
    # Two identical objects; both detections overlap both equally. Like np.argmax in the devkit, each takes the
    # FIRST annotated object, taken or not: the devkit never falls back to the next-best object, so the second
    # detection is a duplicate (FP). Precision 1, 1/2 at recall 1/2, 1/2 -> 11-point 6/11, area 1/2.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0), (A, 1, 0)])]
    assert _evaluate(images, True)[0]["cat"] == pytest.approx(6 / 11)
    assert _evaluate(images, False)[0]["cat"] == pytest.approx(0.5)
    # With the first annotated object difficult, both detections are ignored and the other is never found.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 1), (A, 1, 0)])]
    assert _evaluate(images)[0]["cat"] == 0.0
    # With it second, the first detection is a TP and the next one a duplicate of the same object.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0), (A, 1, 1)])]
    assert _evaluate(images)[0]["cat"] == pytest.approx(1.0)


def test_recall_of_exactly_three_tenths_counts_at_threshold_point_three():
    # 10 objects, 3 found with precision 1: recall reaches exactly 0.3, so t = 0, 0.1, 0.2, 0.3 score 1 -> 4/11.
    # (np.arange(0, 1.1, 0.1)[3] is 0.30000000000000004: that bug would give 3/11.)
    objects = [([i / 10, 0.0, i / 10 + 0.05, 0.5], 1, 0) for i in range(10)]
    dets = [(objects[i][0], 1, 0.9 - i / 100) for i in range(3)]
    aps, _ = _evaluate([_image(dets, objects)])
    assert aps["cat"] == pytest.approx(4 / 11)


def test_average_precision_by_hand():
    # precision/recall after each detection: TP, FP, TP, FP with 3 objects.
    precision = [1.0, 0.5, 2 / 3, 0.5]
    recall = [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    # 11-point: t = 0 .. 0.3 -> 1 (4 points), t = 0.4 .. 0.6 -> 2/3 (3 points), t >= 0.7 -> 0.
    assert average_precision(precision, recall, True) == pytest.approx((4 + 3 * 2 / 3) / 11)
    # Area: 1/3 at precision 1, then 1/3 at 2/3.
    assert average_precision(precision, recall, False) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision([], [], True) == 0.0
    assert average_precision([], [], False) == 0.0


def test_default_label_map_is_voc_and_empty_images_are_fine():
    n_images = 3
    det_boxes = [torch.zeros(0, 4), torch.tensor([A]), torch.zeros(0)]
    det_labels = [torch.zeros(0, dtype=torch.int64), torch.tensor([15]), torch.zeros(0, dtype=torch.int64)]
    det_scores = [torch.zeros(0), torch.tensor([0.3]), torch.zeros(0)]
    true_boxes = [torch.zeros(0, 4), torch.tensor([A]), torch.tensor([B])]
    true_labels = [torch.zeros(0, dtype=torch.int64), torch.tensor([15]), torch.tensor([1])]
    true_difficulties = [torch.zeros(0, dtype=torch.bool), torch.tensor([False]), torch.tensor([False])]
    assert len(det_boxes) == n_images
    aps, mean_ap = calculate_mAP(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties)
    assert aps == {VOC_LABELS[0]: 0.0, "person": pytest.approx(1.0)}  # label 1 aeroplane, label 15 person
    assert mean_ap == pytest.approx(0.5)


def test_mismatched_inputs_raise_clear_errors():
    image = _image([(A, 1, 0.9)], [(A, 1, 0)])
    lists = [[column] for column in image]
    with pytest.raises(ValueError, match="det_scores has 2 images"):
        calculate_mAP(lists[0], lists[1], lists[2] * 2, lists[3], lists[4], lists[5], label_map=TWO_CLASSES)
    with pytest.raises(ValueError, match="same number of entries"):
        calculate_mAP(lists[0], [torch.tensor([1, 1])], lists[2], lists[3], lists[4], lists[5],
                      label_map=TWO_CLASSES)


@pytest.mark.parametrize("seed", range(6))
def test_matches_devkit_reference_on_random_problems(seed):
    bench = _load_bench()
    n_classes = 1 + seed % 3  # few classes: many detections compete for the same objects
    label_map = make_label_map(VOC_LABELS[:n_classes])
    problem = bench.make_synthetic_problem(n_images=25, objects_per_image=3, dets_per_image=25,
                                           n_classes=n_classes, difficult_rate=0.25, seed=seed)
    ref_07, ref_area = bench.reference_voc_eval(*problem, label_map)
    ours_07, map_07 = calculate_mAP(*problem, use_07_metric=True, label_map=label_map)
    ours_area, map_area = calculate_mAP(*problem, use_07_metric=False, label_map=label_map)
    assert ours_07.keys() == ref_07.keys() and len(ref_07) > 0
    for name in ref_07:
        assert ours_07[name] == pytest.approx(ref_07[name], abs=1e-6)
        assert ours_area[name] == pytest.approx(ref_area[name], abs=1e-6)
    assert map_07 == pytest.approx(sum(ref_07.values()) / len(ref_07), abs=1e-6)
    # The problem is neither trivial nor hopeless, so the comparison means something.
    assert 0.05 < map_07 < 0.95 and map_area != map_07
