"""The MultiBox loss of a whole split (train.py --eval-every's VAL loss), gathered during the mAP's forward pass.

MultiBoxLoss divides each batch's sums by that batch's number of positive priors (Sec. 2.2 of the paper), and
mines hard negatives per image; so summing each batch's terms times its positives and dividing by all the
positives at the end gives the loss of the split taken as one batch: the same number for any --eval-batch-size,
and comparable with the TRAIN loss of train_log.csv.
"""


class SplitLoss:
    """Accumulates ``loss_fn``'s two terms over the batches of a split.

    :param loss_fn: a utils.MultiBoxLoss (the run's: same priors, threshold and negative ratio)
    """

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self.loc_sum, self.conf_sum, self.n_positives = 0.0, 0.0, 0

    def add(self, predicted_locs, predicted_scores, boxes, labels):
        """Add one batch.

        :param predicted_locs: (N, n_priors, 4) the network's offsets
        :param predicted_scores: (N, n_priors, n_classes) its class logits
        :param boxes: list of N tensors (n_i, 4), fractional x1y1x2y2 (difficult objects included, as training
            has them by default)
        :param labels: list of N tensors (n_i,)
        """
        device = predicted_locs.device
        boxes = [b.to(device) for b in boxes]
        labels = [lab.to(device) for lab in labels]
        loc_loss, conf_loss = self.loss_fn(predicted_locs.float(), predicted_scores.float(), boxes, labels)
        # The matching again, for the batch's count of positives: loss_fn divided by max(1, that count).
        n_positives = int((self.loss_fn.match(boxes, labels)[0] != 0).sum())
        normalizer = max(n_positives, 1)
        self.loc_sum += float(loc_loss) * normalizer
        self.conf_sum += float(conf_loss) * normalizer
        self.n_positives += n_positives

    def result(self):
        """:return: {"loss", "loc_loss", "conf_loss"}: floats, the split's terms divided by all its positives"""
        normalizer = max(self.n_positives, 1)
        loc, conf = self.loc_sum / normalizer, self.conf_sum / normalizer
        return {"loss": loc + conf, "loc_loss": loc, "conf_loss": conf}

