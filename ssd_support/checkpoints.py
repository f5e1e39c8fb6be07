"""Checkpoints: the one owner of the checkpoint file, from its name to resuming from it.

A checkpoint is a ``torch.save``d dict of tensors and plain Python, so that ``torch.load(weights_only=True)``
reads it (no code runs from the file):

- ``"model"``: the SSD's state_dict (its priors included, as the ``priors_cxcy`` buffer);
- ``"config"``: what rebuilds the network (``network_config``): classes, label map, base, input size, and the
  priors and preprocessing of converted weights;
- from ``train.py`` also ``"iteration"``, ``"optimizer"``, ``"scaler"``, ``"rng"`` (every generator's state),
  ``"args"`` and ``"world_size"`` (what a resume checks); ``best.pt`` adds ``"val_map_11pt"``.

Here: the file names and the one rule for "latest", the atomic save, what is saved, reading a file safely,
rebuilding a network from one, and the checks and generator states that make a resumed run continue exactly.
"""

import io
import os
import random
import re
import sys

import numpy as np
import torch

from model import build_ssd, config_with_priors, create_prior_boxes, priors_per_location, ssd_config
from ssd_support.files import write_atomically
from ssd_support.limits import BASES, IMAGE_SIZES, MAX_CLASSES, MIN_CLASSES
from utils import AUGMENTATION_STEPS

BEST_CHECKPOINT = "best.pt"  # not ssd300_iter_N.pt: --resume latest and pruning never see it


def check_preprocess_config(preprocess):
    """Check a checkpoint's ``config["preprocess"]``: how its network wants images prepared.

    :param preprocess: None (this repository's: ImageNet mean/std of [0, 1] RGB, antialiased resizing) or
        {"mean": 3 floats, "std": 3 floats, "antialias": bool}, applied to [0, 1] RGB as (x - mean) / std
    :return: the same, as a plain dict of lists (or None)
    :raises ValueError: for anything else
    """
    if preprocess is None:
        return None
    try:
        checked = {"mean": [float(v) for v in preprocess["mean"]], "std": [float(v) for v in preprocess["std"]],
                   "antialias": bool(preprocess.get("antialias", True))}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"preprocess: expected {{'mean': [3 floats], 'std': [3 floats], 'antialias': bool}}, "
                         f"got {preprocess!r}") from None
    if len(checked["mean"]) != 3 or len(checked["std"]) != 3 or min(checked["std"]) <= 0:
        raise ValueError(f"preprocess: mean and std need 3 values each, std positive; got {preprocess!r}")
    return checked


def network_config(model, label_map):
    """The ``"config"`` entry of a checkpoint: what ``load_model_from_checkpoint`` needs to rebuild ``model``.

    :param model: an ``SSD``
    :param label_map: {class name: label} it was trained with
    :return: {"n_classes", "label_map", "base", "image_size"}, plain Python, plus "priors" (``prior_spec``) and
        "preprocess" (``check_preprocess_config``) when the network has its own (a converted COCO detector, or
        one fine-tuned from it)
    """
    config = {"n_classes": model.n_classes, "label_map": dict(label_map), "base": model.base_name,
              "image_size": model.image_size}
    if getattr(model, "priors_spec", None) is not None:
        config["priors"] = model.priors_spec
    if getattr(model, "preprocess_config", None) is not None:
        config["preprocess"] = dict(model.preprocess_config)
    return config


def configured_network(config):
    """The network a checkpoint's config names.

    :param config: the ``"config"`` entry of a checkpoint (``network_config``'s dict)
    :return: (base, image_size); ("vgg16", 300) for checkpoints written before the other networks existed
    """
    return config.get("base", "vgg16"), config.get("image_size", 300)


def apply_checkpoint_config(model, config):
    """Give a network the priors and the preprocessing a checkpoint's config names (none: its own, ImageNet's).

    :param model: an ``SSD`` of the config's base and input size
    :param config: a checkpoint's ``"config"``
    :return: the model, with ``priors_cxcy`` / ``priors_spec`` and ``preprocess_config`` set
    :raises ValueError: for priors or preprocessing that do not fit
    """
    if config.get("priors") is not None:
        model.use_priors(config["priors"])
    model.preprocess_config = check_preprocess_config(config.get("preprocess"))
    return model


def read_checkpoint(path, required=("model", "config")):
    """Read a checkpoint written by ``train.py`` safely: the one checkpoint reader of the project.

    ``torch.load(weights_only=True)`` runs no code from the file (a malicious pickle is refused), and every
    way a file can fail to be a checkpoint (missing, empty, truncated, text, another pickle) becomes one line.

    :param path: the ``.pt`` file
    :param required: keys the checkpoint dict must have
    :return: the checkpoint dict, its tensors on the CPU
    :raises ValueError: "PATH: not a readable checkpoint (...)" / "PATH: not an SSD checkpoint (...)"
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file, or not a checkpoint at all
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {reason})") from None
    missing = [key for key in required if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(f"{path}: not an SSD checkpoint (expected the keys {', '.join(map(repr, required))}; "
                         f"missing {', '.join(map(repr, missing))})")
    return checkpoint


def _is_int(value):
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_config_values(config):
    """The config's own values (types and ranges), before anything is built from them.

    :return: (n_classes, base, image_size)
    :raises ValueError: one line naming the key and its value (without the file)
    """
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict, got {type(config).__name__}")
    n_classes = config.get("n_classes")
    if not _is_int(n_classes) or not MIN_CLASSES <= n_classes <= MAX_CLASSES:
        raise ValueError(f"config n_classes: expected an integer from {MIN_CLASSES} to {MAX_CLASSES} (background "
                         f"included), got {n_classes!r}")
    base, image_size = configured_network(config)
    if base not in BASES:
        raise ValueError(f"config base: expected one of {', '.join(BASES)}, got {base!r}")
    if not _is_int(image_size) or image_size not in IMAGE_SIZES:
        raise ValueError(f"config image_size: expected one of {', '.join(map(str, IMAGE_SIZES))}, got {image_size!r}")
    ssd_config(base, int(image_size))  # a pair that does not exist (SSD512 resnet50) names the ones that do
    label_map = config.get("label_map")
    if not isinstance(label_map, dict) or not all(isinstance(name, str) and _is_int(label)
                                                  for name, label in label_map.items()):
        shown = repr(label_map) if len(repr(label_map)) <= 80 else repr(label_map)[:77] + "..."
        raise ValueError(f"config label_map: expected {{class name: integer label}}, got {shown}")
    beyond = {name: label for name, label in label_map.items() if not 0 <= label < n_classes}
    if beyond:
        name, label = next(iter(beyond.items()))
        raise ValueError(f"config label_map: label {label} of {name!r} is outside 0..{n_classes - 1} (n_classes "
                         f"{n_classes})" + (f", and {len(beyond) - 1} more" if len(beyond) > 1 else ""))
    if len(set(label_map.values())) != len(label_map):
        raise ValueError("config label_map: two classes share a label")
    try:
        if config.get("priors") is not None:
            config_with_priors(ssd_config(base, int(image_size)), config["priors"])
    except (TypeError, KeyError, AttributeError, ValueError) as error:
        raise ValueError(f"config priors: not a usable prior spec ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:120] if str(error) else ''})") from None
    check_preprocess_config(config.get("preprocess"))
    return int(n_classes), base, int(image_size)


def expected_shapes(n_classes, base, image_size):
    """The state_dict shapes of the network a config names, computed without allocating it (on the meta device).

    :return: {state_dict key: shape tuple}
    """
    with torch.device("meta"):
        network = build_ssd(n_classes, base=base, image_size=image_size)
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def _and_more(names):
    """" (and N more)" after the first of several names, "" for one."""
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


PRIORS_TOLERANCE = 1e-5  # fractions of the image side: float32 rounding, far below any real change of the priors


def configured_priors(config, base, image_size):
    """The priors a checkpoint's config describes: its base's own, or those of its "priors" spec.

    :param config: a checkpoint's ``"config"`` (already checked by ``_check_config_values``)
    :return: (n_priors, 4) tensor of (cx, cy, w, h) fractions (``model.create_prior_boxes``)
    """
    network = ssd_config(base, image_size)
    if config.get("priors") is not None:
        network = config_with_priors(network, config["priors"])
    return create_prior_boxes(network)


def _check_tensor_values(path, config, state_dict, base, image_size, source):
    """Every floating tensor of ``state_dict`` finite, and its ``priors_cxcy`` the priors its config describes
    (the buffer replaces the network's own when loaded, so a damaged one would decode every box wrongly).

    :raises ValueError: one line "PATH: SOURCE KEY ..." saying what differs
    """
    for name, tensor in state_dict.items():
        # A sum is finite when every value is (and ~8x cheaper than isfinite over 26M weights); a sum that is not
        # (NaN, inf, or a finite overflow) is then checked value by value.
        if tensor.is_floating_point() and not torch.isfinite(tensor.detach().sum()):
            bad = ~torch.isfinite(tensor)
            if bad.any():
                raise ValueError(f"{path}: {source} {name} holds {int(bad.sum())} of {tensor.numel()} values that "
                                 f"are not finite (NaN or inf); these weights are unusable")
    stored = state_dict["priors_cxcy"].detach().to(torch.float64)
    expected = configured_priors(config, base, image_size).to(torch.float64)
    error = (stored - expected).abs()
    if float(error.max()) > PRIORS_TOLERANCE:
        index = int(error.max(dim=1).values.argmax())
        described = "the priors spec of its config" if config.get("priors") is not None else \
            f"the SSD{image_size} {base} priors"
        shown = ", ".join(f"{v:.4g}" for v in stored[index].tolist())
        wanted = ", ".join(f"{v:.4g}" for v in expected[index].tolist())
        raise ValueError(f"{path}: {source} priors_cxcy differs from {described} by up to {float(error.max()):.3g} "
                         f"(prior {index}: (cx, cy, w, h) = ({shown}), expected ({wanted}); "
                         f"{int((error.max(dim=1).values > PRIORS_TOLERANCE).sum())} priors differ)")


def check_network_config(path, config, state_dict, source="model"):
    """Check a checkpoint's config against the bounds of ``ssd_support.limits`` and against its own tensors,
    before a network is built from it: a file from elsewhere decides nothing it does not hold.

    Checked: n_classes an integer in MIN_CLASSES..MAX_CLASSES, base one of BASES, image_size one of IMAGE_SIZES,
    the label map {name: label} with labels in 0..n_classes - 1, the priors and preprocessing specs; then every
    tensor of ``state_dict`` has the key and shape of that network's (e.g. a class head's out_channels =
    priors per location x n_classes), every floating tensor is finite (no NaN or inf) and ``priors_cxcy`` equals
    the priors the config describes (``configured_priors``, within PRIORS_TOLERANCE). Nothing is allocated from the
    config before the shapes fit (they come from the meta device); the priors cost a few milliseconds.

    :param path: the file, for the messages
    :param config: the checkpoint's ``"config"``
    :param state_dict: the weights that will be loaded (``checkpoint["model"]``, or ``checkpoint["ema"]["model"]``)
    :param source: what ``state_dict`` is, for the messages ("model", "ema model")
    :return: (n_classes, base, image_size)
    :raises ValueError: one line "PATH: ..." naming the key and the values or shapes that do not fit
    """
    try:
        n_classes, base, image_size = _check_config_values(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: {source}: expected a state_dict (a dict of tensors), got "
                         f"{type(state_dict).__name__}")
    expected = expected_shapes(n_classes, base, image_size)
    network = f"SSD{image_size} with base {base} and n_classes {n_classes}"
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    if missing:
        raise ValueError(f"{path}: the weights lack {missing[0]}{_and_more(missing)}, which the config's {network} "
                         f"has")
    if unexpected:
        raise ValueError(f"{path}: the weights hold {unexpected[0]!r}{_and_more(unexpected)}, which the config's "
                         f"{network} does not have")
    for name, shape in expected.items():
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{path}: {source} {name}: expected a tensor, got {type(tensor).__name__}")
        if tuple(tensor.shape) != shape:
            why = ""
            if name.startswith("pred_convs.cl_") and name.endswith((".weight", ".bias")):
                fmap = next(fmap for fmap in ssd_config(base, image_size).feature_maps
                            if name.split(".")[1] == f"cl_{fmap.name}")
                why = f" = {priors_per_location(fmap)} priors per location x {n_classes} classes"
            raise ValueError(f"{path}: {source} {name} has shape {tuple(tensor.shape)}, but the config's {network} "
                             f"needs {shape}{why}")
    _check_tensor_values(path, config, state_dict, base, image_size, source)
    return n_classes, base, image_size


def checkpoint_weights(checkpoint, use_ema=True):
    """The weights of a checkpoint that a network takes: the averaged ones of a ``train.py --ema`` run ("ema",
    ssd_support/ema.py: best.pt was chosen by their VAL mAP) unless ``use_ema`` is False, else the trained ones.

    :param checkpoint: a checkpoint dict (``read_checkpoint``)
    :return: (state_dict, "ema model" or "model": which one, for messages and check_network_config)
    """
    if use_ema and isinstance(checkpoint.get("ema"), dict) and "model" in checkpoint["ema"]:
        return checkpoint["ema"]["model"], "ema model"
    return checkpoint["model"], "model"


def ema_message(path, checkpoint):
    """The one line saying that the EMA weights of ``path`` are used."""
    return f"{path}: using its EMA weights (train.py --ema, {checkpoint['ema'].get('updates', '?')} updates)"


def load_model_from_checkpoint(path, device="cpu", use_ema=True):
    """Rebuild a trained SSD from a checkpoint written by ``train.py``.

    :param path: path of the ``.pt`` checkpoint (a dict with ``"model"`` and ``"config"``; the config
        names the base and the input size, vgg16 and 300 when it does not)
    :param device: where to put the model
    :return: the model (``SSD300`` or ``SSD512``) in eval mode on ``device``, and the label map
        (class name -> label). The config's "priors" (if any) are the model's priors, its "preprocess" (if any)
        becomes ``model.preprocess_config``: pass it to ``utils.preprocess_settings`` to prepare images
    :param use_ema: a checkpoint of a ``train.py --ema`` run holds the averaged weights too ("ema",
        ssd_support/ema.py): take them (the default, saying so in one line on stderr), or the trained ones (False)
    :raises ValueError: one line naming the file: not a checkpoint (read_checkpoint), or a config out of bounds or
        at odds with its weights (check_network_config)
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint["config"]
    state, source = checkpoint_weights(checkpoint, use_ema)
    use_ema = source == "ema model"
    check_network_config(path, config, state, source)  # before anything is built from the config
    base, image_size = configured_network(config)
    try:
        model = apply_checkpoint_config(build_ssd(config["n_classes"], base=base, image_size=image_size), config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if use_ema:
        print(ema_message(path, checkpoint), file=sys.stderr, flush=True)
    model.load_state_dict(state)
    return model.to(device).eval(), dict(config["label_map"])


class TrainingSetupError(ValueError):
    """Raised for unusable input (an empty data set, a checkpoint or folder that does not fit the run); the
    message is one line naming the file or the setting."""


class CheckpointWriteError(OSError):
    """Raised when a checkpoint cannot be written (disk full, no permission); the earlier ones are intact."""


CHECKPOINT_PATTERN = re.compile(r"^ssd(?:300|512)_iter_(\d+)\.pt$")


def checkpoint_path(checkpoint_dir, iteration, image_size=300):
    """Path of the checkpoint written after ``iteration`` optimizer steps (ssd300_iter_N.pt, or ssd512_...)."""
    return os.path.join(checkpoint_dir, f"ssd{image_size}_iter_{iteration:06d}.pt")


def list_checkpoints(checkpoint_dir):
    """The checkpoints in a folder, oldest first, as a list of (iteration, path)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(checkpoint_dir, name)))
    return sorted(found)


def latest_checkpoint(checkpoint_dir):
    """The checkpoint of the highest iteration in a folder: the one rule for "latest" (train.py's
    ``--resume latest``, detect.py without ``--checkpoint``). File times are not used: a copied or
    restored folder keeps its iterations but not its times.

    :return: its path, or None when the folder holds no ssd300_iter_N.pt / ssd512_iter_N.pt
    """
    found = list_checkpoints(checkpoint_dir)
    return found[-1][1] if found else None


def prune_checkpoints(checkpoint_dir, keep, protect=None):
    """Delete all but the newest ``keep`` checkpoints (``keep`` <= 0: delete none), never ``protect``."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(checkpoint_dir)[:-keep]:
        if protect is None or os.path.abspath(path) != os.path.abspath(protect):
            os.remove(path)


def save_atomically(state, path):
    """torch.save ``state`` to ``path`` atomically (utils.write_atomically): a crash or Ctrl-C while
    writing leaves the previous checkpoint intact, never half a checkpoint.

    :raises CheckpointWriteError: "cannot write PATH: no space left on device" (or the OS's reason); nothing
        is left behind and the earlier checkpoints are untouched
    """
    # Serialised in memory first: torch's zip writer turns a failed write (a full disk) into a RuntimeError
    # "unexpected pos ...", while a plain file write raises the OSError that says what happened.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        write_atomically(path, lambda file: file.write(buffer.getbuffer()), binary=True)
    except OSError as error:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise CheckpointWriteError(f"cannot write {path}: {reason}") from None


def capture_rng_state():
    """The states of every random generator training touches, as tensors and plain Python only.

    :return: dict that torch.load(weights_only=True) can read back
    """
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state):
    """Put back the generator states saved by capture_rng_state."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def resolve_resume_path(resume, checkpoint_dir):
    """Turn ``--resume`` into a file path ('latest': the newest checkpoint in ``checkpoint_dir``)."""
    if resume == "latest":
        latest = latest_checkpoint(checkpoint_dir)
        if latest is None:
            raise FileNotFoundError(f"{checkpoint_dir}: --resume latest found no ssd300_iter_*.pt / ssd512_iter_*.pt checkpoint")
        return latest
    if not os.path.isfile(resume):
        raise FileNotFoundError(f"{resume}: --resume checkpoint does not exist")
    return resume


# Every setting a checkpoint records ("args") is checked on resume, except these: they say how a run is carried out
# or watched, not what it learns. The run's length is one of them (training on is what --resume is for; a cosine or
# --epochs schedule then stretches to the new length); paths may move with the data; --init-from and
# --no-pretrained only matter to a fresh run.
FREE_SETTINGS = frozenset({
    "resume", "allow_changed_settings", "device", "workers", "checkpoint_dir", "data_folder", "save_every",
    "keep_checkpoints", "log_every", "eval_every", "eval_batch_size", "operating_score", "patience", "tensorboard",
    "no_progress", "no_previews", "amp_on_cpu", "iterations", "epochs", "init_from", "no_pretrained"})
# With --epochs, train.py works these out from it after the check (apply_epochs): the checkpoint holds the results.
EPOCHS_DERIVED_SETTINGS = frozenset({"decay_at", "warmup"})


def _augmentation_as_applied(settings):
    """``settings`` with the augmentation's switches as what they do: --no-augment is all four --no-<part>, and
    all four are --no-augment (the same TEST transform, the same losses), so that resuming a --no-augment run with
    --no-flip added, or a run of the four switches with --no-augment, changes nothing.

    :param settings: {option name: value}, a checkpoint's "args" or a run's
    :return: a copy, its no_augment and no_<part> (utils.AUGMENTATION_STEPS) made consistent, and
        reference_augment False when nothing is augmented
    """
    switches = [f"no_{step}" for step in AUGMENTATION_STEPS]
    none_applied = bool(settings.get("no_augment")) or all(settings.get(switch) for switch in switches)
    if not none_applied:
        return settings
    # Which chain would augment (--reference-augment: utils.py's, else the fast one) means nothing then.
    return {**settings, "no_augment": True, **{switch: True for switch in switches}, "reference_augment": False}


def changed_settings(saved, settings):
    """The recorded settings that a run changes: every one both name, less FREE_SETTINGS; the augmentation's
    switches compared by the parts they leave out (:func:`_augmentation_as_applied`).

    :param saved: the checkpoint's "args"
    :param settings: this run's, {option name: value}
    :return: list of "--setting NEW (was OLD)" strings, in the checkpoint's order
    """
    applied_before, applied_now = _augmentation_as_applied(saved), _augmentation_as_applied(settings)
    ignored = FREE_SETTINGS | (EPOCHS_DERIVED_SETTINGS if saved.get("epochs") is not None else frozenset())
    # Named as given (a switch the run changes), when what it does changes too.
    return [f"--{name.replace('_', '-')} {settings[name]} (was {value})" for name, value in saved.items()
            if name not in ignored and name in settings and settings[name] != value
            and applied_now.get(name) != applied_before.get(name)]


def check_resume_settings(checkpoint, path, settings, world_size, allow_changed=False):
    """Compare the run's settings with those the checkpoint was trained with (all of them: changed_settings).

    A resumed run continues the uninterrupted one only with the same settings and number of processes: another
    batch size or seed gives other batches, another schedule other learning rates; the optimizer state only fits
    the same optimizer.

    :param checkpoint: the checkpoint dict ("args": the settings it was trained with, "world_size"; older ones
        lack them)
    :param settings: this run's settings, {option name: value} (train.py's ``vars(args)``)
    :param world_size: this run's number of processes
    :param allow_changed: accept changes (--allow-changed-settings) instead of refusing them
    :return: list of "--setting NEW (was OLD)" strings that differ (only when ``allow_changed``)
    :raises TrainingSetupError: naming the changed settings, unless ``allow_changed``
    """
    changed = changed_settings(checkpoint.get("args") or {}, settings)
    if "world_size" in checkpoint and checkpoint["world_size"] != world_size:
        changed.append(f"{world_size} process(es) (was {checkpoint['world_size']})")
    if changed and not allow_changed:
        raise TrainingSetupError(f"{path}: this run changes what the checkpoint was trained with: {', '.join(changed)}; "
                                 f"resume with the same settings, or pass --allow-changed-settings to accept "
                                 f"other batches (and a fresh optimizer state if --optimizer changed)")
    return changed


def make_checkpoint(model, optimizer, scaler, iteration, label_map, settings, world_size=1):
    """The checkpoint dict: tensors and plain Python only, so torch.load(weights_only=True) reads it.

    :param model: the SSD (not wrapped in DDP)
    :param iteration: optimizer steps done
    :param label_map: {class name: label}
    :param settings: the run's settings, {option name: value} (what a resume checks: check_resume_settings)
    :param world_size: the number of processes
    :return: the dict (see the module docstring)
    """
    return {
        "model": model.state_dict(),
        "config": network_config(model, label_map),
        "iteration": iteration,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "args": dict(settings),
        "world_size": world_size,
    }


def save_checkpoint(state, checkpoint_dir, keep, protect=None):
    """Write ``state`` (make_checkpoint's) as ``ssd300_iter_<iteration>.pt`` (``ssd512_...``) atomically, then
    prune the older ones.

    :param checkpoint_dir: the folder
    :param keep: how many of the newest checkpoints to keep (0: all)
    :param protect: a checkpoint that pruning must keep (the last one known to be good)
    :return: the path written
    :raises CheckpointWriteError: when the file cannot be written (disk full...); nothing is pruned then
    """
    path = checkpoint_path(checkpoint_dir, state["iteration"], state["config"]["image_size"])
    save_atomically(state, path)
    prune_checkpoints(checkpoint_dir, keep, protect=protect)
    return path


def load_resume_state(path, model, optimizer, scaler, label_map, settings, world_size=1, allow_changed=False):
    """Load a checkpoint into the model, optimizer and scaler, after checking it fits this run.

    :param settings: this run's settings, {option name: value} (check_resume_settings; "optimizer" decides
        whether the optimizer state fits)
    :param allow_changed: --allow-changed-settings
    :return: (iteration the checkpoint was written after, its RNG states dict or None, the list of changed
        settings accepted)
    :raises TrainingSetupError: one line naming the file: not a readable checkpoint, another network or label
        map, or changed settings (check_resume_settings)
    """
    try:  # on the CPU: the RNG states must stay CPU tensors; load_state_dict moves the rest where it belongs
        checkpoint = read_checkpoint(path, required=("model", "optimizer", "iteration"))
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    config = checkpoint.get("config", {})
    if "config" in checkpoint:
        try:
            check_network_config(path, config, checkpoint["model"])
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
    saved_network = configured_network(config)
    if saved_network != (model.base_name, model.image_size):
        raise TrainingSetupError(f"{path}: checkpoint holds an SSD{saved_network[1]} with base {saved_network[0]}, "
                                 f"but this run asks for --base {model.base_name} --image-size {model.image_size}")
    saved_map = config.get("label_map")
    if saved_map is not None and dict(saved_map) != dict(label_map):
        raise TrainingSetupError(f"{path}: checkpoint was trained with labels {sorted(saved_map, key=saved_map.get)}, "
                                 f"but the data folder has {sorted(label_map, key=label_map.get)}")
    changed = check_resume_settings(checkpoint, path, settings, world_size, allow_changed)
    optimizer_name = settings.get("optimizer")
    try:
        apply_checkpoint_config(model, config)  # a run fine-tuned from converted weights keeps their priors and input
        model.load_state_dict(checkpoint["model"])
        if (checkpoint.get("args") or {}).get("optimizer", optimizer_name) == optimizer_name:
            optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise TrainingSetupError(f"{path}: does not fit this run ({str(error).splitlines()[0]})") from None
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    return int(checkpoint["iteration"]), checkpoint.get("rng"), changed
