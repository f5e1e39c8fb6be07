"""An exponential moving average (EMA) of the weights: train.py --ema, --ema-decay.

After every optimizer step, each averaged parameter moves towards the trained one:
``ema = d * ema + (1 - d) * weights`` with the warm-up decay ``d = decay * (1 - exp(-updates / 2000))`` of
Ultralytics' ModelEMA and timm's ModelEmaV3 (early on the average follows the weights closely, since the first
weights are worth forgetting; after ~10k updates d is ``decay``). Buffers (batch-norm running statistics, the
priors) are copied, not averaged, as those implementations do by default: they describe the current weights.

A checkpoint of an --ema run holds ``"ema"``: {"model": the averaged state_dict, "updates": int, "decay":
float}, tensors and plain Python (``torch.load(weights_only=True)``). --eval-every measures the averaged weights,
best.pt keeps them, and ``ssd_support.checkpoints.load_model_from_checkpoint`` (eval.py, detect.py, export.py)
takes them by default.
"""

import copy
import math

import torch

from ssd_support.checkpoints import TrainingSetupError, check_network_config, read_checkpoint

EMA_DECAY = 0.9999
EMA_WARMUP_UPDATES = 2000  # the time constant of the warm-up, in updates (Ultralytics' tau)


def ema_decay_at(updates, decay=EMA_DECAY, warmup_updates=EMA_WARMUP_UPDATES):
    """The decay of the ``updates``-th update (1-based): ``decay * (1 - exp(-updates / warmup_updates))``."""
    return decay * (1.0 - math.exp(-updates / warmup_updates))


class ModelEMA:
    """The averaged copy of a model, kept in eval mode on the model's device.

    :param model: the trained network (not wrapped in DDP); copied
    :param decay: the decay after the warm-up (--ema-decay), in [0, 1)
    """

    def __init__(self, model, decay=EMA_DECAY):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        """Move the average one step towards ``model``'s parameters; copy its buffers.

        :param model: the trained network, the same architecture as ``self.module``
        """
        self.updates += 1
        d = ema_decay_at(self.updates, self.decay)
        for averaged, current in zip(self.module.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 1.0 - d)  # d * averaged + (1 - d) * current
        for averaged_buffer, buffer in zip(self.module.buffers(), model.buffers()):
            averaged_buffer.copy_(buffer)

    def state_dict(self):
        """What a checkpoint holds: {"model": the averaged state_dict, "updates": int, "decay": float}."""
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state):
        """Restore ``state_dict()``'s dict exactly (a resumed run goes on averaging as the uninterrupted one)."""
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])


def load_ema(ema, path):
    """Resuming with --ema: restore the averaged weights a checkpoint holds; one written without --ema (resumed
    with --allow-changed-settings) starts the average from the resumed weights, as a fresh run does.

    :param ema: a ModelEMA of the resumed model
    :param path: the checkpoint resumed from
    :raises TrainingSetupError: when its "ema" does not fit the model or its config (check_network_config: shapes,
        finite weights, priors), one line naming the file
    """
    checkpoint = read_checkpoint(path, required=())
    if "ema" not in checkpoint:
        return
    averaged = checkpoint["ema"].get("model") if isinstance(checkpoint["ema"], dict) else None
    if isinstance(checkpoint.get("config"), dict) and averaged is not None:
        try:  # the averaged weights go on into the next checkpoints and best.pt: NaN or wrong priors stop here
            check_network_config(path, checkpoint["config"], averaged, "ema model")
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
    try:
        ema.load_state_dict(checkpoint["ema"])
    except (RuntimeError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0]
        raise TrainingSetupError(f"{path}: its EMA weights do not fit this run ({reason})") from None
