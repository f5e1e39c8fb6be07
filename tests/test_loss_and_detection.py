"""MultiBoxLoss and SSD300.detect_objects against torchvision's SSD, given our priors as its anchors."""

import math

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import batched_nms, box_iou

from model import SSD300, create_prior_boxes
from ssd_support.nms import batched_nms_fractional
from utils import MultiBoxLoss, cxcy_to_gcxgcy, cxcy_to_xy

N_CLASSES = 5


@pytest.fixture(scope="module")
def tv_model():
    return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=N_CLASSES)


@pytest.fixture(scope="module")
def our_model():
    return SSD300(N_CLASSES)


def random_objects(generator, n_objects):
    """``n_objects`` random boxes (fractional x1y1x2y2, 5% to 80% of a side) and labels."""
    xy = torch.rand(n_objects, 2, generator=generator) * 0.6
    wh = 0.05 + torch.rand(n_objects, 2, generator=generator) * 0.75
    boxes = torch.cat([xy, (xy + wh).clamp(max=1.0)], dim=1)
    labels = torch.randint(1, N_CLASSES, (n_objects,), generator=generator)
    return boxes, labels


def random_batch(seed, objects_per_image):
    generator = torch.Generator().manual_seed(seed)
    objects = [random_objects(generator, n) for n in objects_per_image]
    batch_size = len(objects_per_image)
    predicted_locs = torch.randn(batch_size, 8732, 4, generator=generator)
    predicted_scores = torch.randn(batch_size, 8732, N_CLASSES, generator=generator) * 3
    return predicted_locs, predicted_scores, [o[0] for o in objects], [o[1] for o in objects]


def torchvision_loss(tv_model, predicted_locs, predicted_scores, boxes, labels):
    """torchvision's SSD.compute_loss, with our priors as its anchors (fractional coordinates)."""
    anchors = cxcy_to_xy(create_prior_boxes())
    targets = [{"boxes": b, "labels": l} for b, l in zip(boxes, labels)]
    matched_idxs = []
    for target in targets:
        if target["boxes"].numel() == 0:
            matched_idxs.append(torch.full((anchors.size(0),), -1, dtype=torch.int64))
        else:
            matched_idxs.append(tv_model.proposal_matcher(box_iou(target["boxes"], anchors)))
    head_outputs = {"bbox_regression": predicted_locs, "cls_logits": predicted_scores}
    return tv_model.compute_loss(targets, head_outputs, [anchors] * len(targets), matched_idxs)


@pytest.mark.parametrize("seed, objects_per_image", [(0, [3, 1, 5]), (1, [0, 2, 7, 1]), (2, [12])])
def test_loss_equals_torchvision(tv_model, seed, objects_per_image):
    predicted_locs, predicted_scores, boxes, labels = random_batch(seed, objects_per_image)
    loss_fn = MultiBoxLoss(create_prior_boxes())
    loc_loss, conf_loss = loss_fn(predicted_locs, predicted_scores, boxes, labels)
    expected = torchvision_loss(tv_model, predicted_locs, predicted_scores, boxes, labels)
    torch.testing.assert_close(loc_loss, expected["bbox_regression"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conf_loss, expected["classification"], rtol=1e-5, atol=1e-5)


def test_every_object_gets_a_prior_even_at_low_iou():
    # A thin box matches no prior at IoU 0.5, yet must still claim its best prior.
    priors = create_prior_boxes()
    loss_fn = MultiBoxLoss(priors)
    thin_box = torch.tensor([[0.40, 0.10, 0.42, 0.90]])
    assert box_iou(thin_box, cxcy_to_xy(priors)).max() < 0.5
    true_classes, _, _ = loss_fn.match([thin_box], [torch.tensor([3])])
    assert (true_classes == 3).sum() == 1


def test_images_without_objects(our_model):
    loss_fn = MultiBoxLoss(our_model.priors_cxcy)
    predicted_locs = torch.randn(2, 8732, 4, requires_grad=True)
    predicted_scores = torch.randn(2, 8732, N_CLASSES, requires_grad=True)
    empty_boxes, empty_labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)

    # A batch with no object at all: nothing to learn, a zero loss, no NaN.
    loss = sum(loss_fn(predicted_locs, predicted_scores, [empty_boxes] * 2, [empty_labels] * 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(predicted_scores.grad).all()

    # One empty image beside a full one: the empty image contributes no hard negatives.
    boxes = [torch.tensor([[0.1, 0.1, 0.6, 0.7]]), empty_boxes]
    labels = [torch.tensor([2]), empty_labels]
    predicted_scores.grad = None
    loss = sum(loss_fn(predicted_locs, predicted_scores, boxes, labels))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert predicted_scores.grad[1].abs().sum() == 0


def test_negatives_per_empty_image_hand_checked():
    """K hard negatives in an image without objects, divided by the batch's positives as the paper's loss.

    Image 0 has one object and equal logits everywhere (every prior's cross-entropy is log C); image 1 has no
    object, equal logits except 5 priors whose class-1 logit is 10 (cross-entropy log(e^10 + C - 1)): with K = 5
    exactly those 5 are its hard negatives. A batch of two empty images has no positives: divided by 1, no NaN."""
    priors = create_prior_boxes()
    loss_fn = MultiBoxLoss(priors, negatives_per_empty_image=5)
    boxes = [torch.tensor([[0.2, 0.2, 0.5, 0.6]]), torch.zeros(0, 4)]
    labels = [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    n_positives = int((loss_fn.match(boxes[:1], labels[:1])[0] != 0).sum())
    scores = torch.zeros(2, 8732, N_CLASSES)
    scores[1, [7, 100, 2000, 5000, 8000], 1] = 10.0
    _, conf_loss = loss_fn(torch.zeros(2, 8732, 4), scores, boxes, labels)
    log_c, hot = math.log(N_CLASSES), math.log(math.exp(10.0) + N_CLASSES - 1)
    torch.testing.assert_close(conf_loss, torch.tensor((4 * n_positives * log_c + 5 * hot) / n_positives))
    # K = 0 (the paper's): the empty image adds nothing.
    _, paper = MultiBoxLoss(priors)(torch.zeros(2, 8732, 4), scores, boxes, labels)
    torch.testing.assert_close(paper, torch.tensor(4 * log_c))
    # No positives in the batch: 5 negatives per image over a normaliser of 1.
    empty = [torch.zeros(0, 4)] * 2
    loc, conf = loss_fn(torch.zeros(2, 8732, 4), torch.zeros(2, 8732, N_CLASSES), empty, [labels[1]] * 2)
    assert loc.item() == 0.0
    torch.testing.assert_close(conf, torch.tensor(2 * 5 * log_c))


def test_hard_negatives_are_three_per_positive():
    priors = create_prior_boxes()
    loss_fn = MultiBoxLoss(priors)
    boxes, labels = [torch.tensor([[0.2, 0.2, 0.5, 0.6]])], [torch.tensor([1])]
    true_classes, _, _ = loss_fn.match(boxes, labels)
    n_positives = int((true_classes != 0).sum())
    predicted_scores = torch.zeros(1, 8732, N_CLASSES, requires_grad=True)
    _, conf_loss = loss_fn(torch.zeros(1, 8732, 4), predicted_scores, boxes, labels)
    # With equal logits every prior's cross-entropy is log(n_classes).
    expected_conf = 4 * n_positives * torch.log(torch.tensor(float(N_CLASSES))) / n_positives
    torch.testing.assert_close(conf_loss, expected_conf)


def sorted_detections(boxes, labels, scores):
    order = torch.argsort(scores, descending=True)
    return boxes[order], labels[order], scores[order]


@pytest.mark.parametrize("max_candidates", [None, 400])
def test_detect_objects_equals_torchvision(tv_model, our_model, max_candidates):
    predicted_locs, predicted_scores, _, _ = random_batch(3, [0, 0, 0])
    tv_model.score_thresh, tv_model.nms_thresh, tv_model.detections_per_img = 0.3, 0.45, 50
    tv_model.topk_candidates = 8732 if max_candidates is None else max_candidates
    anchors = cxcy_to_xy(our_model.priors_cxcy)
    expected = tv_model.postprocess_detections({"bbox_regression": predicted_locs, "cls_logits": predicted_scores},
                                               [anchors] * 3, [(1, 1)] * 3)

    boxes, labels, scores = our_model.detect_objects(predicted_locs, predicted_scores, min_score=0.3,
                                                     max_overlap=0.45, top_k=50,
                                                     max_candidates_per_class=max_candidates)
    assert len(boxes) == 3
    for i in range(3):
        assert len(scores[i]) == 50  # random scores: plenty of detections, capped at top_k
        ours = sorted_detections(boxes[i], labels[i], scores[i])
        theirs = sorted_detections(expected[i]["boxes"], expected[i]["labels"], expected[i]["scores"])
        torch.testing.assert_close(ours[2], theirs[2])
        torch.testing.assert_close(ours[1], theirs[1])
        torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
        assert ours[0].min() >= 0 and ours[0].max() <= 1


def test_detect_objects_with_nothing_above_threshold(our_model):
    predicted_locs = torch.zeros(2, 8732, 4)
    predicted_scores = torch.zeros(2, 8732, N_CLASSES)
    predicted_scores[..., 0] = 10.0  # everything is confidently background
    predicted_scores[1, 100, 2] = 20.0  # except one prior of the second image
    boxes, labels, scores = our_model.detect_objects(predicted_locs, predicted_scores, 0.5, 0.45, 200)
    assert boxes[0].shape == (0, 4) and labels[0].shape == (0,) and scores[0].shape == (0,)
    assert labels[1].tolist() == [2] and scores[1].item() > 0.99
    expected_box = cxcy_to_xy(our_model.priors_cxcy[100]).clamp(0, 1)
    torch.testing.assert_close(boxes[1][0], expected_box)


def test_top_k_is_per_image(our_model):
    predicted_locs, predicted_scores, _, _ = random_batch(4, [0, 0])
    for top_k in (1, 7):
        boxes, labels, scores = our_model.detect_objects(predicted_locs, predicted_scores, 0.2, 0.45, top_k)
        assert [len(s) for s in scores] == [top_k, top_k]
        for image_scores in scores:
            assert torch.all(image_scores[:-1] >= image_scores[1:])


def test_detect_objects_equals_torchvision_under_heavy_suppression(tv_model, our_model):
    """All priors predict nearly the same box: few survive NMS, so the candidate window must widen."""
    generator = torch.Generator().manual_seed(5)
    priors = our_model.priors_cxcy
    target = torch.tensor([[0.5, 0.5, 0.4, 0.4]]).expand(8732, 4)
    predicted_locs = (cxcy_to_gcxgcy(target, priors) + 0.05 * torch.randn(2, 8732, 4, generator=generator))
    predicted_scores = torch.randn(2, 8732, N_CLASSES, generator=generator) * 3
    tv_model.score_thresh, tv_model.nms_thresh, tv_model.detections_per_img = 0.05, 0.45, 100
    tv_model.topk_candidates = 8732
    expected = tv_model.postprocess_detections({"bbox_regression": predicted_locs, "cls_logits": predicted_scores},
                                               [cxcy_to_xy(priors)] * 2, [(1, 1)] * 2)
    boxes, labels, scores = our_model.detect_objects(predicted_locs, predicted_scores, 0.05, 0.45, 100)
    for i in range(2):
        assert 0 < len(scores[i]) < 100  # fewer survivors than top_k: every candidate had to be seen
        ours = sorted_detections(boxes[i], labels[i], scores[i])
        theirs = sorted_detections(expected[i]["boxes"], expected[i]["labels"], expected[i]["scores"])
        torch.testing.assert_close(ours[2], theirs[2])
        torch.testing.assert_close(ours[1], theirs[1])
        torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_piece", [1, 7, 10_000])
def test_nms_in_pieces_equals_batched_nms(max_piece):
    """Cutting the boxes into pieces between images changes nothing: same survivors as batched_nms."""
    generator = torch.Generator().manual_seed(6)
    image_index = torch.sort(torch.randint(0, 5, (300,), generator=generator)).values
    groups = image_index * 3 + torch.randint(0, 3, (300,), generator=generator)
    xy = torch.rand(300, 2, generator=generator) * 0.7
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(300, 2, generator=generator) * 0.25], dim=1)
    scores = torch.rand(300, generator=generator)
    ours = batched_nms_fractional(boxes, scores, groups, 0.45, image_index, max_piece=max_piece)
    expected = batched_nms(boxes, scores, groups, 0.45)
    assert 0 < len(expected) < 300
    assert torch.equal(torch.sort(ours).values, torch.sort(expected).values)
