"""The training features around the recipe: a VAL split and best.pt, --epochs, --tensorboard, --sync-bn.

Training runs here are 1-3 iterations on 2-3 toy images (SSD300 costs ~1.5 s per image per step on a CPU).
"""

import contextlib
import csv
import io
import json
import os
import sys

import pytest
import torch

import create_data_lists as cdl
from ssd_support.data_lists import split_validation
import train
from ssd_support import checkpoints as checkpoint_files
from ssd_support import distributed
from ssd_support import run_log
from datasets import PascalVOCDataset
from ssd_support.distributed import DistInfo


def quiet_args(data_folder, checkpoint_dir, *extra):
    """CPU, random init, no workers, no progress bar, a log row every step."""
    return ["--data-folder", data_folder, "--checkpoint-dir", str(checkpoint_dir), "--device", "cpu",
            "--no-pretrained", "--workers", "0", "--no-progress", "--log-every", "1", *extra]


def copy_lists(source, folder, n_train, n_test=1):
    """A data folder with the first ``n_train`` TRAIN and ``n_test`` TEST images of ``source`` (absolute paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        with open(os.path.join(source, f"{split}_images.json")) as file:
            images = [p if os.path.isabs(p) else os.path.join(source, p) for p in json.load(file)][:n]
        with open(os.path.join(source, f"{split}_objects.json")) as file:
            objects = json.load(file)[:n]
        (folder / f"{split}_images.json").write_text(json.dumps(images))
        (folder / f"{split}_objects.json").write_text(json.dumps(objects))
    with open(os.path.join(source, "label_map.json")) as file:
        (folder / "label_map.json").write_text(file.read())
    return str(folder)


def read_json(path):
    with open(path) as file:
        return json.load(file)


def measured(map_11pt):
    """What train.evaluation_on's function returns, for a fake evaluation of the given mAP."""
    return {"map_11pt": map_11pt, "loss": {"loss": 3.0, "loc_loss": 1.0, "conf_loss": 2.0},
            "operating_point": {"score": 0.5, "precision": 0.25, "recall": 0.75, "f1": 0.375, "per_class": {}}}


# ---------------------------------------------------------------------------------------------------------
# create_data_lists.py --val-fraction, and the VAL split in datasets.py
# ---------------------------------------------------------------------------------------------------------


def test_val_fraction_moves_a_seeded_share_of_train_into_val(toy_data_folder, tmp_path):
    original = read_json(os.path.join(toy_data_folder, "TRAIN_images.json"))  # 8 images
    original_objects = read_json(os.path.join(toy_data_folder, "TRAIN_objects.json"))
    draws = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        folder = copy_lists(toy_data_folder, tmp_path / name, n_train=8)
        with contextlib.redirect_stdout(io.StringIO()):
            assert split_validation(folder, 0.25, seed=seed) == (2, 6)
        train_list = read_json(os.path.join(folder, "TRAIN_images.json"))
        val_list = read_json(os.path.join(folder, "VAL_images.json"))
        absolute = [p if os.path.isabs(p) else os.path.join(toy_data_folder, p) for p in original]
        # A partition of the old TRAIN, each image with its own objects, in the old order.
        assert sorted(train_list + val_list) == sorted(absolute) and not set(train_list) & set(val_list)
        assert val_list == [p for p in absolute if p in val_list]
        val_objects = read_json(os.path.join(folder, "VAL_objects.json"))
        assert val_objects == [original_objects[absolute.index(p)] for p in val_list]
        assert len(read_json(os.path.join(folder, "TRAIN_objects.json"))) == 6
        draws.append(val_list)
    assert draws[0] == draws[1]  # same seed, same split
    assert draws[0] != draws[2]  # another seed, another split (for these 8 images and seeds 0 / 1)

    val = PascalVOCDataset(str(tmp_path / "a"), "val", keep_difficult=True)
    assert len(val) == 2 and not val.augment  # VAL is measured like TEST: resized, not augmented


def test_val_fraction_on_the_command_line_and_a_stale_val_split_removed(tmp_path, capsys):
    folder = str(tmp_path / "toy")
    small = ["--toy", folder, "--toy-train", "5", "--toy-test", "1"]
    assert cdl.main([*small, "--val-fraction", "0.4", "--val-seed", "3"]) == 0
    assert "VAL: 2 images drawn from TRAIN" in capsys.readouterr().out
    assert len(read_json(os.path.join(folder, "TRAIN_images.json"))) == 3
    assert len(read_json(os.path.join(folder, "VAL_images.json"))) == 2
    # Lists made again without --val-fraction: the old VAL would overlap the new TRAIN, so it goes.
    assert cdl.main(small) == 0
    assert not os.path.exists(os.path.join(folder, "VAL_images.json"))
    assert len(read_json(os.path.join(folder, "TRAIN_images.json"))) == 5
    with pytest.raises(SystemExit):
        cdl.parse_args([*small, "--val-fraction", "1.5"])


# ---------------------------------------------------------------------------------------------------------
# --epochs
# ---------------------------------------------------------------------------------------------------------


def test_epochs_give_iterations_and_the_papers_decay_proportions():
    # 10 epochs of 500 images at 32 per step: ceil(5000 / 32) = 157; decays at 2/3 and 5/6 of it.
    assert train.schedule_for_epochs(10, 500, 32, 1, warmup=500) == (157, [105, 131], 105)
    # 4 processes x 8 images is the same step size; a short warmup is kept.
    assert train.schedule_for_epochs(10, 500, 8, 4, warmup=50) == (157, [105, 131], 50)
    # Decay points the user chose are kept; the paper's full run is the paper's schedule.
    assert train.schedule_for_epochs(1, 100, 10, 1, warmup=0, decay_at=[7]) == (10, [7], 0)
    assert train.schedule_for_epochs(120_000 * 32 / 16_551, 16_551, 32, 1, warmup=500) == (
        120_000, [80_000, 100_000], 500)


def test_epochs_and_iterations_are_alternatives():
    args = train.parse_args(["--data-folder", "d", "--epochs", "2.5", "--batch-size", "8"])
    note = train.apply_epochs(args, n_images=40, world_size=2)
    # ceil(2.5 x 40 / (8 x 2)) = 7; decays at round(7 x 2/3) = 5 and round(7 x 5/6) = 6; warmup 500 cut to 5.
    assert (args.iterations, args.decay_at, args.warmup) == (7, [5, 6], 5)
    assert "--epochs 2.5 = 7 iterations" in note
    unchanged = train.parse_args(["--data-folder", "d"])
    assert train.apply_epochs(unchanged, 40, 2) == "" and unchanged.iterations == 120_000
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "d", "--epochs", "2", "--iterations", "10"])
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "d", "--epochs", "0"])


# ---------------------------------------------------------------------------------------------------------
# Evaluation on VAL and best.pt
# ---------------------------------------------------------------------------------------------------------


def test_eval_on_val_keeps_best_pt_by_val_map(toy_data_folder, tmp_path, monkeypatch, capsys):
    """3 steps, an evaluation after each, with VAL mAPs 0.2, 0.5, 0.3: best.pt holds step 2's weights, the
    summary names it, and neither pruning nor --resume latest ever takes it for a periodic checkpoint."""
    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)
    with contextlib.redirect_stdout(io.StringIO()):
        split_validation(folder, 0.5)  # 1 VAL image, 1 TRAIN image
    maps, asked, weights = iter([0.2, 0.5, 0.3]), [], {}

    def fake_evaluate_split(model, split):
        asked.append(split)
        weights[len(asked)] = {k: v.clone() for k, v in model.state_dict().items()}
        return measured(next(maps))

    monkeypatch.setattr(train, "evaluation_on", lambda *args, **kwargs: fake_evaluate_split)
    checkpoints = tmp_path / "ckpt"
    result = train.main(quiet_args(folder, checkpoints, "--epochs", "3", "--batch-size", "1", "--eval-every", "1",
                                   "--save-every", "2", "--keep-checkpoints", "1", "--warmup", "0"))
    printed = capsys.readouterr().out
    assert "--epochs 3 = 3 iterations" in printed
    # --no-progress: a plain line per log row (--log-every 1), for logs under nohup or a batch scheduler.
    assert [line.split(":")[0] for line in printed.splitlines() if line.startswith("iteration ") and "images/s" in line
            ] == ["iteration 1", "iteration 2", "iteration 3"]
    assert asked == ["VAL"] * 3 and result["iteration"] == 3

    best = torch.load(checkpoints / "best.pt", weights_only=True)
    assert best["iteration"] == 2 and best["val_map_11pt"] == 0.5
    for name, tensor in weights[2].items():
        assert torch.equal(best["model"][name], tensor), name
    assert set(best) >= {"model", "config", "optimizer", "scaler", "rng", "args"}  # the periodic format

    summary = read_json(checkpoints / "train_summary.json")
    assert summary["best_checkpoint"] == str(checkpoints / "best.pt") and summary["best_val_map_11pt"] == 0.5
    assert summary["eval_split"] == "VAL"
    # --keep-checkpoints 1 also keeps the last checkpoint that training went on from (step 2), since the newest
    # (step 3) has not yet shown that a step from its weights gives a finite loss; the lock file is hidden.
    assert sorted(name for name in os.listdir(checkpoints) if not name.startswith(".")) == [
        "best.pt", "loss_curve.png", "ssd300_iter_000002.pt", "ssd300_iter_000003.pt", "train_batch0.jpg",
        "train_batch1.jpg", "train_log.csv", "train_summary.json"]
    assert checkpoint_files.resolve_resume_path("latest", str(checkpoints)).endswith("ssd300_iter_000003.pt")

    # Resumed for one more step at mAP 0.4: below the best of the whole run (0.5), so best.pt stays.
    maps = iter([0.4])
    train.main(quiet_args(folder, checkpoints, "--epochs", "4", "--batch-size", "1", "--eval-every", "1",
                          "--warmup", "0", "--resume", "latest"))
    assert torch.load(checkpoints / "best.pt", weights_only=True)["iteration"] == 2


def test_eval_without_val_measures_test_and_warns(toy_data_folder, tmp_path, capsys):
    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=1)
    result = train.main(quiet_args(folder, tmp_path / "ckpt", "--iterations", "1", "--batch-size", "1",
                                   "--eval-every", "1"))
    err = capsys.readouterr().err
    assert "no VAL split" in err and "tunes on the test set" in err
    assert 0.0 <= result["eval"]["map_11pt"] <= 1.0  # a real evaluation, on TEST
    assert not os.path.exists(tmp_path / "ckpt" / "best.pt")
    assert read_json(tmp_path / "ckpt" / "train_summary.json")["eval_split"] == "TEST"


def test_eval_rows_hold_the_val_loss_and_precision_recall_and_the_curve_draws_both_losses(
        toy_data_folder, tmp_path, monkeypatch):
    """An evaluation row's eval_loss / eval_loc_loss / eval_conf_loss equal MultiBoxLoss over the whole VAL split
    as one batch (gathered here over batches of 1), its eval_precision / eval_recall eval.py's operating point at
    --operating-score; loss_curve.png draws the TRAIN and VAL curves of all three parts."""
    import matplotlib.figure

    import eval as ssd_eval
    from datasets import collate_fn
    from utils import MultiBoxLoss

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=4)
    with contextlib.redirect_stdout(io.StringIO()):
        split_validation(folder, 0.5)  # 2 VAL images, 2 TRAIN images
    drawn = []

    def record_curves(figure, *args, **kwargs):
        drawn.append(sorted(line.get_label() for axis in figure.axes for line in axis.get_lines()))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record_curves)
    checkpoints = tmp_path / "ckpt"
    result = train.main(quiet_args(folder, checkpoints, "--iterations", "2", "--batch-size", "1", "--eval-every",
                                   "2", "--eval-batch-size", "1", "--operating-score", "0.2", "--warmup", "0"))
    row = next(row for row in result["log"] if row["map_11pt"] != "")
    assert int(row["iteration"]) == 2 and row["loss"] == ""  # an evaluation row of its own

    model, _ = checkpoint_files.load_model_from_checkpoint(str(checkpoints / "ssd300_iter_000002.pt"))
    dataset = PascalVOCDataset(folder, "VAL", keep_difficult=True, preprocess=model.preprocess_config)
    images, boxes, labels, _ = collate_fn([dataset[0], dataset[1]])
    with torch.no_grad():
        loc_loss, conf_loss = MultiBoxLoss(model.priors_cxcy)(*model(images), boxes, labels)
    assert float(row["eval_loc_loss"]) == pytest.approx(float(loc_loss), rel=1e-4, abs=1e-5)
    assert float(row["eval_conf_loss"]) == pytest.approx(float(conf_loss), rel=1e-4, abs=1e-5)
    assert float(row["eval_loss"]) == pytest.approx(float(loc_loss + conf_loss), rel=1e-4, abs=1e-5)

    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_fn)
    label_map = read_json(os.path.join(folder, "label_map.json"))
    point = ssd_eval.evaluate(model, loader, label_map, "cpu", progress=False, operating_score=0.2)["operating_point"]
    assert float(row["eval_precision"]) == pytest.approx(point["precision"], abs=1e-4)
    assert float(row["eval_recall"]) == pytest.approx(point["recall"], abs=1e-4)
    # (After 2 steps nothing is found: 0 and 0. The numbers themselves are checked on a hand-made detector in
    # tests/test_error_analysis.py.)

    assert drawn[-1] == sorted(["total (TRAIN)", "localization (TRAIN)", "confidence (TRAIN)", "total (VAL)",
                                "localization (VAL)", "confidence (VAL)", "mAP (11-point, VAL)"])


@pytest.mark.parametrize("difficult", [None, 1])
def test_eval_every_on_a_split_without_a_countable_object_is_refused_before_the_model_is_built(
        toy_data_folder, tmp_path, monkeypatch, difficult):
    """VAL images without objects (None), or with difficult ones only (1): the mAP is undefined (NaN), which would
    make best.pt and --patience compare NaNs; refused in one line naming the file, before any training."""
    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=4)
    with contextlib.redirect_stdout(io.StringIO()):
        split_validation(folder, 0.5)
    path = os.path.join(folder, "VAL_objects.json")
    entries = read_json(path)
    for entry in entries:
        if difficult is None:
            entry.update(boxes=[], labels=[], difficulties=[])
        else:
            entry["difficulties"] = [difficult] * len(entry["labels"])
    with open(path, "w") as file:
        json.dump(entries, file)
    monkeypatch.setattr(train, "build_model", lambda *args, **kwargs: pytest.fail("the model was built"))
    with pytest.raises(train.TrainingSetupError, match=r"VAL_objects\.json holds no object that is not difficult"):
        train.main(quiet_args(folder, tmp_path / "ckpt", "--iterations", "2", "--batch-size", "1",
                              "--eval-every", "1"))


def test_a_stop_while_the_run_is_being_set_up_is_acted_on_after_the_first_step(toy_data_folder, tmp_path,
                                                                                 monkeypatch):
    """SIGTERM while the model is built (a minute with ImageNet weights): noted, not a kill; the run saves after its
    first step and reports the stop (exit 130 from the command line)."""
    import signal

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=1)
    build_model = train.build_model

    def build_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return build_model(*args, **kwargs)

    monkeypatch.setattr(train, "build_model", build_then_signal)
    result = train.main(quiet_args(folder, tmp_path / "ckpt", "--iterations", "5", "--batch-size", "1"))
    assert result["interrupted"] and result["iteration"] == 1
    assert checkpoint_files.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ssd300_iter_000001.pt")
    assert read_json(tmp_path / "ckpt" / "train_summary.json")["interrupted"] is True


def test_a_log_of_an_older_version_is_resumed_with_the_new_columns_empty(tmp_path):
    """train_log.csv written before the eval_ columns existed: its rows are kept, the new columns empty."""
    (tmp_path / "train_log.csv").write_text("iteration,loss,loc_loss,conf_loss,lr,images_per_s,elapsed_s,map_11pt\n"
                                            "1,3.0,1.0,2.0,0.001,5.0,1.0,\n2,,,,,,2.0,0.25\n3,2.0,1.0,1.0,0.001,5.0,3.0,\n")
    log = run_log.TrainingLog(str(tmp_path), start_iteration=2)
    assert [row["iteration"] for row in log.rows] == ["1", "2"] and log.rows[1]["eval_loss"] == ""
    log.add(iteration=3, eval_loss="1.5", map_11pt="0.5")
    log.plot()
    with open(tmp_path / "train_log.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == run_log.LOG_FIELDS and [row["eval_loss"] for row in rows] == ["", "", "1.5"]


# ---------------------------------------------------------------------------------------------------------
# --tensorboard
# ---------------------------------------------------------------------------------------------------------


def test_tensorboard_gets_the_logged_scalars(toy_data_folder, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)
    with contextlib.redirect_stdout(io.StringIO()):
        split_validation(folder, 0.5)
    events = tmp_path / "tb"
    result = train.main(quiet_args(folder, tmp_path / "ckpt", "--iterations", "2", "--batch-size", "1",
                                   "--eval-every", "2", "--tensorboard", str(events)))
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"loss/total", "loss/localization", "loss/confidence", "lr", "images_per_s", "mAP_11pt/VAL",
            "loss/total_VAL", "loss/localization_VAL", "loss/confidence_VAL", "precision/VAL", "recall/VAL"} <= tags
    logged = [float(row["loss"]) for row in result["log"] if row["loss"] != ""]
    assert [e.step for e in accumulator.Scalars("loss/total")] == [1, 2]
    assert [e.value for e in accumulator.Scalars("loss/total")] == pytest.approx(logged, rel=1e-4)
    assert accumulator.Scalars("mAP_11pt/VAL")[0].value == pytest.approx(result["eval"]["map_11pt"], abs=1e-6)
    assert accumulator.Scalars("loss/total_VAL")[0].value == pytest.approx(result["eval"]["loss"]["loss"], rel=1e-6)
    assert accumulator.Scalars("recall/VAL")[0].value == pytest.approx(
        result["eval"]["operating_point"]["recall"], abs=1e-6)


def test_tensorboard_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    with pytest.raises(ImportError, match="pip install tensorboard"):
        run_log.require_tensorboard()


# ---------------------------------------------------------------------------------------------------------
# --sync-bn
# ---------------------------------------------------------------------------------------------------------


def test_sync_bn_converts_resnet50_batch_norms_under_several_processes(capsys):
    from model import build_ssd

    torch.manual_seed(0)
    network = build_ssd(4, base="resnet50")
    weights = {name: p for name, p in network.named_parameters()}
    n_batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())

    # One process: nothing to synchronise with; said, and nothing changed.
    same = distributed.convert_sync_batchnorm(network, DistInfo(0, 1, torch.device("cpu")))
    assert same is network and "single process" in capsys.readouterr().out
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in network.modules())
    # Several CPU processes: refused (SyncBatchNorm is GPU-only).
    with pytest.raises(train.TrainingSetupError, match="GPUs only"):
        distributed.convert_sync_batchnorm(network, DistInfo(0, 2, torch.device("cpu")))
    # Several GPU processes: every batch norm converted, the parameters (the optimizer's) kept.
    converted = distributed.convert_sync_batchnorm(network, DistInfo(0, 2, torch.device("cuda", 0)))
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == n_batch_norms > 0
    assert not any(type(m) is torch.nn.BatchNorm2d for m in converted.modules())
    assert all(p is weights[name] for name, p in converted.named_parameters())

    vgg = build_ssd(4)
    assert distributed.convert_sync_batchnorm(vgg, DistInfo(0, 2, torch.device("cuda", 0))) is vgg
    assert "no batch norm" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# Previews of the first batches, --patience, a stop during an evaluation, a full disk under the log
# ---------------------------------------------------------------------------------------------------------


def test_the_first_two_batches_are_written_as_the_network_sees_them_and_not_rewritten_on_resume(
        toy_data_folder, tmp_path, monkeypatch):
    """train_batch0.jpg / train_batch1.jpg: a grid of the batch's images (2 images of 300x300 side by side),
    the pixels the de-normalized network input, boxes drawn; a resumed run leaves them as they are."""
    from ssd_support import previews

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)
    seen = []
    real_write = previews.write_batch_preview

    def recording_write(path, images, boxes, labels, label_map, mean, std):
        seen.append((images.clone(), [b.clone() for b in boxes]))
        return real_write(path, images, boxes, labels, label_map, mean, std)

    monkeypatch.setattr(train, "write_batch_preview", recording_write)
    checkpoints = tmp_path / "ckpt"
    train.main(quiet_args(folder, checkpoints, "--iterations", "3", "--batch-size", "2", "--warmup", "0"))
    assert len(seen) == 2  # the first two batches only
    from PIL import Image

    for index, (images, boxes) in enumerate(seen):
        picture = Image.open(checkpoints / f"train_batch{index}.jpg").convert("RGB")
        assert picture.size == (600, 300)
        # Away from the drawn boxes, the picture is the network's input de-normalized (JPEG: within a few levels).
        mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        expected = ((images[0] * std + mean).clamp(0, 1) * 255).permute(1, 2, 0)
        actual = torch.tensor(list(picture.getdata()), dtype=torch.float32).view(300, 600, 3)[:, :300]
        x1, y1, x2, y2 = (boxes[0][0] * 300).tolist()
        inside = torch.zeros(300, 300, dtype=torch.bool)
        inside[int(y1) + 6:int(y2) - 6, int(x1) + 6:int(x2) - 6] = True  # the box's inside, clear of its outline
        if inside.any():
            assert (actual[inside] - expected[inside]).abs().mean() < 4
    first = (checkpoints / "train_batch0.jpg").stat().st_mtime_ns
    train.main(quiet_args(folder, checkpoints, "--iterations", "4", "--batch-size", "2", "--warmup", "0",
                          "--resume", "latest"))
    assert (checkpoints / "train_batch0.jpg").stat().st_mtime_ns == first and len(seen) == 2

    other = tmp_path / "other"
    train.main(quiet_args(folder, other, "--iterations", "1", "--batch-size", "1", "--no-previews"))
    assert not list(other.glob("train_batch*.jpg"))


def test_patience_stops_a_run_whose_val_map_stops_improving_and_a_resumed_run_keeps_the_count(
        toy_data_folder, tmp_path, monkeypatch):
    """VAL mAPs 0.3, 0.5, 0.5, 0.4 with --patience 2: no better mAP than 0.5 at evaluations 3 and 4, so the run
    stops after iteration 4 of 10 as a finished one; resumed with 0.45, it stops at once (the count is 3)."""
    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)
    with contextlib.redirect_stdout(io.StringIO()):
        split_validation(folder, 0.5)
    maps = iter([0.3, 0.5, 0.5, 0.4, 0.45])
    monkeypatch.setattr(train, "evaluation_on", lambda *args, **kwargs: lambda model, split: measured(next(maps)))
    checkpoints = tmp_path / "ckpt"
    common = ["--batch-size", "1", "--eval-every", "1", "--warmup", "0", "--patience", "2", "--save-every", "100"]
    result = train.main(quiet_args(folder, checkpoints, "--iterations", "10", *common))
    assert result["iteration"] == 4 and not result["interrupted"] and result["stopped_early"]
    summary = read_json(checkpoints / "train_summary.json")
    assert summary["stopped_early"] is True and summary["iterations_done"] == 4
    assert "2 evaluations in a row" in summary["stopped_early_because"] and "0.5000" in summary["stopped_early_because"]
    assert torch.load(checkpoints / "best.pt", weights_only=True)["iteration"] == 2
    assert checkpoint_files.latest_checkpoint(str(checkpoints)).endswith("ssd300_iter_000004.pt")

    result = train.main(quiet_args(folder, checkpoints, "--iterations", "10", *common, "--resume", "latest"))
    assert result["iteration"] == 5 and result["stopped_early"]


@pytest.mark.parametrize("option", [["--eval-batch-size", "0"], ["--operating-score", "1.5"],
                                    ["--operating-score", "nan"], ["--operating-score", "-0.1"]])
def test_evaluation_options_that_cannot_work_are_refused_at_the_start(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--data-folder", "d", "--eval-every", "10", *option])
    assert exit_.value.code == 2 and option[0] in capsys.readouterr().err


def test_eval_py_takes_the_same_operating_scores(capsys):
    import eval as ssd_eval

    assert ssd_eval.parse_args(["--data-folder", "d", "--checkpoint", "c", "--operating-score", "1"]).operating_score == 1
    with pytest.raises(SystemExit):
        ssd_eval.parse_args(["--data-folder", "d", "--checkpoint", "c", "--operating-score", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_patience_needs_eval_every():
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "d", "--patience", "3"])


def test_a_stop_during_an_evaluation_saves_at_that_iteration_not_one_later(toy_data_folder, tmp_path, monkeypatch):
    """SIGTERM arrives while iteration 1's evaluation runs: the run saves iteration 1 and stops there."""
    import signal

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=2)

    def evaluate_then_signal(model, split):
        os.kill(os.getpid(), signal.SIGTERM)
        return measured(0.1)

    monkeypatch.setattr(train, "evaluation_on", lambda *args, **kwargs: evaluate_then_signal)
    checkpoints = tmp_path / "ckpt"
    result = train.main(quiet_args(folder, checkpoints, "--iterations", "5", "--batch-size", "1", "--eval-every",
                                   "1", "--warmup", "0", "--save-every", "100"))
    assert result["interrupted"] and result["iteration"] == 1
    assert checkpoint_files.latest_checkpoint(str(checkpoints)).endswith("ssd300_iter_000001.pt")


def test_a_full_disk_under_the_log_is_one_line_naming_the_file(toy_data_folder, tmp_path, monkeypatch):
    """train_log.csv's second row and loss_curve.png fail with ENOSPC: LogWriteError "cannot write PATH: no space
    left on device" (what train.py prints, exit 1), the checkpoint before it intact."""
    import errno

    folder = copy_lists(toy_data_folder, tmp_path / "data", n_train=1)
    real_add = run_log.TrainingLog.add

    def full_after_first_row(self, **row):
        if self.rows:
            raise run_log.cannot_write(self.csv_path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real_add(self, **row)

    monkeypatch.setattr(run_log.TrainingLog, "add", full_after_first_row)
    checkpoints = tmp_path / "ckpt"
    with pytest.raises(train.LogWriteError) as error:
        train.main(quiet_args(folder, checkpoints, "--iterations", "3", "--batch-size", "1", "--save-every", "1"))
    assert str(error.value) == f"cannot write {checkpoints / 'train_log.csv'}: no space left on device"
    assert checkpoint_files.latest_checkpoint(str(checkpoints)).endswith("ssd300_iter_000001.pt")

    def full_disk_png(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_log.TrainingLog, "add", real_add)
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk_png)
    with pytest.raises(train.LogWriteError, match=r"loss_curve\.png: no space left on device$"):
        train.main(quiet_args(folder, tmp_path / "png", "--iterations", "1", "--batch-size", "1"))
