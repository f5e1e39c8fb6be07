"""The VOC mAP: utils.calculate_mAP (the devkit's loop, the lesson's) and ssd_support.voc_map (the vectorised one
eval.py runs), both on hand-worked cases, and the two against each other on randomized problems."""

import warnings

import numpy as np
import pytest
import torch

from ssd_support import voc_map
from utils import VOC_LABELS, average_precision, calculate_mAP, find_jaccard_overlap, make_label_map

TWO_CLASSES = make_label_map(["cat", "dog"])  # cat = 1, dog = 2
IMPLEMENTATIONS = {"utils": calculate_mAP, "voc_map": voc_map.calculate_mAP}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def implementation(request):
    """Each hand-worked case runs on both implementations: calculate_mAP(...) -> (APs, mean AP)."""
    return IMPLEMENTATIONS[request.param]


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


def _evaluate(implementation, images, use_07_metric=True, label_map=TWO_CLASSES):
    """``implementation`` (either calculate_mAP) over a list of _image() tuples: (APs, mean AP)."""
    per_image_lists = [list(column) for column in zip(*images)]
    return implementation(*per_image_lists, use_07_metric=use_07_metric, label_map=label_map)


def random_problem(seed, n_images=15, n_classes=4, on_grid=True, ground_truth_as_detections=False):
    """A small randomized detection problem with the cases the matching rules are about.

    Objects have labels 1..n_classes-1 only, so class n_classes has no object (an empty class); those of class
    n_classes-1 are all difficult (where n_classes > 2: a class with only difficult objects), the others difficult
    with probability 0.3; some images have no objects or no detections. On the grid (coordinates multiples of 1/4), boxes repeat exactly: objects tie for a detection's
    best overlap, IoUs of exactly 0.5 occur. Scores take 4 values, so detections tie. Detections are copies of
    objects, moved by a grid step or not, with the right class or another, duplicates, and stray boxes; a few
    have label 0 (background) or n_classes + 1 (not in the label map), which both implementations ignore.

    :param seed: the seed of numpy's generator
    :param on_grid: boxes on the 1/4 grid (True) or continuous (False: no ties between objects)
    :param ground_truth_as_detections: the detections are the objects themselves, each once, random scores
    :return: (the six per-image lists calculate_mAP takes, the label map of the n_classes classes)
    """
    rng = np.random.default_rng(seed)

    def boxes(n):
        if on_grid:
            corners = rng.integers(0, 4, (n, 2))
            return np.concatenate([corners, np.minimum(corners + rng.integers(1, 3, (n, 2)), 4)], axis=1) / 4
        top_left = rng.uniform(0, 0.7, (n, 2))
        return np.concatenate([top_left, top_left + rng.uniform(0.05, 0.3, (n, 2))], axis=1)

    lists = [[] for _ in range(6)]
    for _ in range(n_images):
        n_objects = int(rng.integers(0, 5))
        true_boxes, true_labels = boxes(n_objects), rng.integers(1, n_classes, n_objects)
        difficult = (rng.random(n_objects) < 0.3) | ((true_labels == n_classes - 1) & (n_classes > 2))
        if ground_truth_as_detections:
            det_boxes, det_labels, det_scores = true_boxes, true_labels, rng.random(n_objects)
        else:
            n_dets = int(rng.integers(0, 9))
            det_boxes = boxes(n_dets)
            det_labels = rng.integers(0, n_classes + 2, n_dets)  # stray labels, 0 and n_classes + 1 included
            det_scores = rng.integers(1, 5, n_dets) / 4
            if n_objects:
                source = rng.integers(0, n_objects, n_dets)
                copies = rng.random(n_dets) < 0.7
                moved = rng.integers(-1, 2, (n_dets, 2)) * (rng.random((n_dets, 1)) < 0.3) / 4  # a grid step or 0
                det_boxes[copies] = true_boxes[source[copies]] + np.tile(moved[copies], 2)
                own_class = copies & (rng.random(n_dets) < 0.8)
                det_labels[own_class] = true_labels[source[own_class]]
        for column, values, dtype in zip(lists, (det_boxes, det_labels, det_scores, true_boxes, true_labels, difficult),
                                         (torch.float32, torch.int64, torch.float32, torch.float32, torch.int64,
                                          torch.uint8)):
            column.append(torch.as_tensor(np.asarray(values)).to(dtype))
    for column in (0, 3):
        lists[column] = [b.reshape(-1, 4) for b in lists[column]]
    return lists, make_label_map([f"class{c}" for c in range(1, n_classes + 1)])


A = [0.1, 0.1, 0.4, 0.4]
B = [0.5, 0.5, 0.9, 0.9]
FAR = [0.0, 0.6, 0.2, 0.9]  # overlaps neither A nor B


def test_perfect_detections_give_one_with_both_metrics(implementation):
    images = [
        _image([(A, 1, 0.9), (B, 2, 0.8)], [(A, 1, 0), (B, 2, 0)]),
        _image([(B, 1, 0.7)], [(B, 1, 0)]),
    ]
    for use_07 in (True, False):
        aps, mean_ap = _evaluate(implementation, images, use_07)
        assert aps == {"cat": 1.0, "dog": 1.0}
        assert mean_ap == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_ground_truth_as_detections_gives_exactly_one_on_random_problems(seed, implementation):
    # Every object (difficult ones too) detected once with its own box, in random score order; continuous boxes,
    # so that no two objects tie for a detection. Classes 1-4 have APs; class 5 has only difficult objects and
    # class 6 none: no AP.
    problem, label_map = random_problem(seed, n_images=40, n_classes=6, on_grid=False, ground_truth_as_detections=True)
    for use_07 in (True, False):
        aps, mean_ap = implementation(*problem, use_07_metric=use_07, label_map=label_map)
        assert list(aps) == ["class1", "class2", "class3", "class4"] and set(aps.values()) == {1.0} and mean_ap == 1.0


def test_duplicate_detection_is_a_false_positive(implementation):
    # Scores: A 0.9 (TP), A again 0.8 (duplicate: FP), B 0.7 (TP) -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    images = [
        _image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0)]),
        _image([(B, 1, 0.7)], [(B, 1, 0)]),
    ]
    aps_07, _ = _evaluate(implementation, images, True)
    # 11-point: t = 0 .. 0.5 reach precision 1, t = 0.6 .. 1.0 reach 2/3.
    assert aps_07["cat"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    aps_area, _ = _evaluate(implementation, images, False)
    # Area: recall 0 -> 1/2 at precision 1, 1/2 -> 1 at precision 2/3.
    assert aps_area["cat"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Without the duplicate, both are perfect: the duplicate is what cost precision.
    images[0] = _image([(A, 1, 0.9)], [(A, 1, 0)])
    assert _evaluate(implementation, images, True)[0]["cat"] == pytest.approx(1.0)


def test_difficult_objects_are_ignored_not_false_positives_and_not_counted_in_recall(implementation):
    # The 0.95 detection hits a difficult object: ignored. Then A is found. AP 1 (recall 1/1, precision 1).
    # Counting it as a false positive would give 0.5; counting the difficult object in recall, 0.5 too.
    images = [_image([(B, 1, 0.95), (A, 1, 0.9)], [(A, 1, 0), (B, 1, 1)])]
    for use_07 in (True, False):
        assert _evaluate(implementation, images, use_07)[0]["cat"] == pytest.approx(1.0)
    # A second detection of the difficult object is ignored too (not a duplicate FP).
    images = [_image([(B, 1, 0.95), (B, 1, 0.93), (A, 1, 0.9)], [(A, 1, 0), (B, 1, 1)])]
    assert _evaluate(implementation, images)[0]["cat"] == pytest.approx(1.0)


def test_detection_best_matching_a_difficult_object_is_ignored_even_if_it_also_fits_another(implementation):
    # The devkit takes the object of highest IoU (here the difficult one, IoU 0.8) and stops there, even though
    # the non-difficult object also has IoU 0.6 > 0.5. So nothing is found: recall 0, AP 0.
    easy = [0.0, 0.0, 0.6, 1.0]
    hard = [0.0, 0.0, 0.8, 1.0]
    det = [0.0, 0.0, 1.0, 1.0]
    images = [_image([(det, 1, 0.9)], [(easy, 1, 0), (hard, 1, 1)])]
    aps, _ = _evaluate(implementation, images)
    assert aps["cat"] == 0.0


def test_class_with_only_difficult_objects_has_no_ap_and_is_left_out_of_the_mean(implementation):
    images = [_image([(A, 1, 0.9), (B, 2, 0.9)], [(A, 1, 0), (B, 2, 1)])]
    aps, mean_ap = _evaluate(implementation, images)
    assert set(aps) == {"cat"}
    assert mean_ap == pytest.approx(1.0)


def test_class_without_detections_has_ap_zero_and_counts_in_the_mean(implementation):
    images = [_image([(A, 1, 0.9)], [(A, 1, 0), (B, 2, 0)])]
    for use_07 in (True, False):
        aps, mean_ap = _evaluate(implementation, images, use_07)
        assert aps == {"cat": pytest.approx(1.0), "dog": 0.0}
        assert mean_ap == pytest.approx(0.5)


def test_iou_must_be_strictly_above_one_half(implementation):
    obj = [0.0, 0.0, 1.0, 0.5]
    exactly_half = [0.0, 0.0, 1.0, 1.0]  # intersection 0.5, union 1
    just_above = [0.0, 0.0, 1.0, 0.99]
    assert _evaluate(implementation, [_image([(exactly_half, 1, 0.9)], [(obj, 1, 0)])])[0]["cat"] == 0.0
    assert _evaluate(implementation, [_image([(just_above, 1, 0.9)], [(obj, 1, 0)])])[0]["cat"] == pytest.approx(1.0)


def test_detections_only_match_objects_of_their_own_class_and_image(implementation):
    images = [
        _image([(A, 2, 0.9)], [(A, 1, 0)]),  # right box, wrong class
        _image([(A, 1, 0.8)], [(B, 1, 0)]),  # right class, object is in another place
        _image([(A, 1, 0.7)], []),  # image without objects
    ]
    aps, _ = _evaluate(implementation, images)
    assert aps == {"cat": 0.0}  # dog has no object: no AP


def test_equal_scores_keep_input_order_image_first(implementation):
    # Both detections score 0.5. The stable sort keeps image 0's (a false positive) before image 1's (a true
    # positive): precision 0 then 1/2 at recall 0 then 1 -> AP 0.5 with both metrics. The other order gives 1.
    fp_then_tp = [_image([(FAR, 1, 0.5)], []), _image([(A, 1, 0.5)], [(A, 1, 0)])]
    tp_then_fp = [fp_then_tp[1], fp_then_tp[0]]
    for use_07 in (True, False):
        assert _evaluate(implementation, fp_then_tp, use_07)[0]["cat"] == pytest.approx(0.5)
        assert _evaluate(implementation, tp_then_fp, use_07)[0]["cat"] == pytest.approx(1.0)
    # Within an image, the order of the detection list decides.
    assert _evaluate(implementation, [_image([(FAR, 1, 0.5), (A, 1, 0.5)], [(A, 1, 0)])])[0]["cat"] == pytest.approx(0.5)
    assert _evaluate(implementation, [_image([(A, 1, 0.5), (FAR, 1, 0.5)], [(A, 1, 0)])])[0]["cat"] == pytest.approx(1.0)


def test_tie_between_objects_goes_to_the_first_annotated_and_there_is_no_second_choice(implementation):
    # Two identical objects; both detections overlap both equally. Like np.argmax in the devkit, each takes the
    # FIRST annotated object, taken or not: the devkit never falls back to the next-best object, so the second
    # detection is a duplicate (FP). Precision 1, 1/2 at recall 1/2, 1/2 -> 11-point 6/11, area 1/2.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0), (A, 1, 0)])]
    assert _evaluate(implementation, images, True)[0]["cat"] == pytest.approx(6 / 11)
    assert _evaluate(implementation, images, False)[0]["cat"] == pytest.approx(0.5)
    # With the first annotated object difficult, both detections are ignored and the other is never found.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 1), (A, 1, 0)])]
    assert _evaluate(implementation, images)[0]["cat"] == 0.0
    # With it second, the first detection is a TP and the next one a duplicate of the same object.
    images = [_image([(A, 1, 0.9), (A, 1, 0.8)], [(A, 1, 0), (A, 1, 1)])]
    assert _evaluate(implementation, images)[0]["cat"] == pytest.approx(1.0)


def test_recall_of_exactly_three_tenths_counts_at_threshold_point_three(implementation):
    # 10 objects, 3 found with precision 1: recall reaches exactly 0.3, so t = 0, 0.1, 0.2, 0.3 score 1 -> 4/11.
    # (np.arange(0, 1.1, 0.1)[3] is 0.30000000000000004: that bug would give 3/11.)
    objects = [([i / 10, 0.0, i / 10 + 0.05, 0.5], 1, 0) for i in range(10)]
    dets = [(objects[i][0], 1, 0.9 - i / 100) for i in range(3)]
    aps, _ = _evaluate(implementation, [_image(dets, objects)])
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


def test_default_label_map_is_voc_and_empty_images_are_fine(implementation):
    n_images = 3
    det_boxes = [torch.zeros(0, 4), torch.tensor([A]), torch.zeros(0)]
    det_labels = [torch.zeros(0, dtype=torch.int64), torch.tensor([15]), torch.zeros(0, dtype=torch.int64)]
    det_scores = [torch.zeros(0), torch.tensor([0.3]), torch.zeros(0)]
    true_boxes = [torch.zeros(0, 4), torch.tensor([A]), torch.tensor([B])]
    true_labels = [torch.zeros(0, dtype=torch.int64), torch.tensor([15]), torch.tensor([1])]
    true_difficulties = [torch.zeros(0, dtype=torch.bool), torch.tensor([False]), torch.tensor([False])]
    assert len(det_boxes) == n_images
    aps, mean_ap = implementation(det_boxes, det_labels, det_scores, true_boxes, true_labels, true_difficulties)
    assert aps == {VOC_LABELS[0]: 0.0, "person": pytest.approx(1.0)}  # label 1 aeroplane, label 15 person
    assert mean_ap == pytest.approx(0.5)


def test_a_split_without_any_object_gives_no_ap_and_a_nan_mean_not_an_error(implementation):
    """Detections on images that hold no object at all (an unannotated VAL split): every class's AP is undefined."""
    images = [_image([(A, 1, 0.9), (B, 2, 0.4)], []), _image([], [])]
    aps, mean_ap = _evaluate(implementation, images)
    assert aps == {} and mean_ap != mean_ap  # NaN


def test_mismatched_inputs_raise_clear_errors(implementation):
    image = _image([(A, 1, 0.9)], [(A, 1, 0)])
    lists = [[column] for column in image]
    with pytest.raises(ValueError, match="^det_scores has 2 images but true_boxes has 1$"):
        implementation(lists[0], lists[1], lists[2] * 2, lists[3], lists[4], lists[5], label_map=TWO_CLASSES)
    with pytest.raises(ValueError, match="same number of entries per image; image 0 has 1, 2 and 1$"):
        implementation(lists[0], [torch.tensor([1, 1])], lists[2], lists[3], lists[4], lists[5],
                       label_map=TWO_CLASSES)
    with pytest.raises(ValueError, match="true_boxes, true_labels and true_difficulties must have the same number"):
        implementation(*lists[:5], [torch.zeros(0)], label_map=TWO_CLASSES)
    with pytest.raises(ValueError, match=r"^true_boxes\[0\] has size \(1, 3\); expected \(n, 4\)$"):
        implementation(*lists[:3], [torch.zeros(1, 3)], *lists[4:], label_map=TWO_CLASSES)


def test_zero_area_detection_on_a_zero_area_object_overlaps_nothing(implementation):
    # IoU 0 / 0 counts as no overlap (no NaN, no warning): the point detection (score 0.9) is a false positive,
    # then A is found; the point object still counts in recall. Precision 0, 1/2 at recall 0, 1/2 -> 11-point 3/11.
    point = [0.3, 0.3, 0.3, 0.3]
    images = [_image([(point, 1, 0.9), (A, 1, 0.8)], [(point, 1, 0), (A, 1, 0)])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _evaluate(implementation, images)[0]["cat"] == pytest.approx(3 / 11)


@pytest.mark.parametrize("seed", range(40))
def test_voc_map_equals_the_devkit_loop_on_random_problems(seed):
    """ssd_support.voc_map (what eval.py runs) gives utils.calculate_mAP's APs, to 1e-12, for both metrics, on
    problems with ties (of scores and of objects), IoUs of exactly 0.5, difficult objects, empty classes, images
    without objects or detections and labels outside the label map; few classes, so detections compete."""
    problem, label_map = random_problem(seed, n_classes=2 + seed % 3)
    for use_07 in (True, False):
        reference, reference_mean = calculate_mAP(*problem, use_07_metric=use_07, label_map=label_map)
        fast, fast_mean = voc_map.calculate_mAP(*problem, use_07_metric=use_07, label_map=label_map)
        assert list(fast) == list(reference) and len(reference) >= 1, seed
        for name in reference:
            assert abs(fast[name] - reference[name]) <= 1e-12, (seed, name)
        assert abs(fast_mean - reference_mean) <= 1e-12, seed
        n_classes = 2 + seed % 3
        assert f"class{n_classes}" not in reference  # the class without objects has no AP
        assert n_classes == 2 or f"class{n_classes - 1}" not in reference  # nor the one with only difficult ones


def test_random_problems_exercise_every_rule():
    """The randomized problems above are not trivial: over the seeds, most APs lie strictly between 0 and 1, some
    are 0, and the problems hold what the rules are about: detections with an IoU of exactly 0.5 (not a match),
    detections whose best overlap (above 0.5) ties between objects, classes with only difficult objects."""
    aps, n_exactly_half, n_object_ties, n_only_difficult = [], 0, 0, 0
    for seed in range(40):
        problem, label_map = random_problem(seed, n_classes=2 + seed % 3)
        aps.extend(calculate_mAP(*problem, label_map=label_map)[0].values())
        det_boxes, det_labels, _, true_boxes, true_labels, true_difficulties = problem
        for dets, det_label, objects, label in zip(det_boxes, det_labels, true_boxes, true_labels):
            for box, c in zip(dets, det_label):
                same = objects[label == c]
                if len(same):
                    iou = find_jaccard_overlap(box[None], same)[0]
                    n_exactly_half += bool((iou == 0.5).any())
                    n_object_ties += bool((iou > 0.5).sum() > 1 and (iou == iou.max()).sum() > 1)
        for c in range(1, len(label_map)):
            difficult = torch.cat([d[lab == c] for d, lab in zip(true_difficulties, true_labels)])
            n_only_difficult += bool(len(difficult) and difficult.all())
    aps = np.array(aps)
    assert ((aps > 0) & (aps < 1)).mean() > 0.5 and (aps == 0).any()
    assert n_exactly_half > 20 and n_object_ties >= 10 and n_only_difficult >= 1, (
        n_exactly_half, n_object_ties, n_only_difficult)
