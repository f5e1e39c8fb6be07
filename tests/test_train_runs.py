"""train.py end to end on the toy data, on CPU: it learns, it resumes exactly, it runs under torchrun, it stops
cleanly on a NaN loss and on Ctrl-C.

SSD300 costs ~1.5 s per image per training step on 2 CPU cores, so every run here is a handful of images and
steps; the learning test is the long one (~2-3 minutes).
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from ssd_support import distributed
from model import SSD300
from ssd_support.checkpoints import load_model_from_checkpoint

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet_args(data_folder, checkpoint_dir, *extra):
    """Arguments shared by the runs below: CPU, random init, no workers, no progress bar."""
    return ["--data-folder", data_folder, "--checkpoint-dir", str(checkpoint_dir), "--device", "cpu",
            "--no-pretrained", "--workers", "0", "--no-progress", "--log-every", "1", *extra]


def read_log(checkpoint_dir):
    with open(os.path.join(checkpoint_dir, "train_log.csv"), newline="") as file:
        return list(csv.DictReader(file))


def checkpoint_files(checkpoint_dir):
    return sorted(name for name in os.listdir(checkpoint_dir) if name.endswith(".pt"))


@pytest.fixture(scope="module")
def overfit_folder(toy_data_folder, tmp_path_factory):
    """A data folder whose TRAIN and TEST splits are both the first 2 toy training images."""
    folder = tmp_path_factory.mktemp("overfit")
    with open(os.path.join(toy_data_folder, "TRAIN_images.json")) as file:
        images = [path if os.path.isabs(path) else os.path.join(toy_data_folder, path) for path in json.load(file)]
    with open(os.path.join(toy_data_folder, "TRAIN_objects.json")) as file:
        objects = json.load(file)
    for split in ("TRAIN", "TEST"):
        (folder / f"{split}_images.json").write_text(json.dumps(images[:2]))
        (folder / f"{split}_objects.json").write_text(json.dumps(objects[:2]))
    with open(os.path.join(toy_data_folder, "label_map.json")) as file:
        (folder / "label_map.json").write_text(file.read())
    return str(folder)


def test_training_overfits_two_images_to_a_high_map(overfit_folder, tmp_path):
    """The whole pipeline learns: loss falls and the trained images are detected (mAP >= 0.9 on them).

    Adam-style steps at 1e-4 on two fixed, un-augmented images: a random-init SSD300 memorizes them in a few
    dozen steps, where the paper's SGD recipe would need thousands.
    """
    result = train.main(quiet_args(overfit_folder, tmp_path, "--optimizer", "adamw", "--lr", "1e-4",
                                   "--warmup", "0", "--no-augment", "--batch-size", "2", "--iterations", "30",
                                   "--eval-every", "30", "--save-every", "30", "--seed", "0"))
    losses = [float(row["loss"]) for row in result["log"] if row["loss"] != ""]
    assert len(losses) == 30
    assert losses[-1] < losses[0] / 5, f"loss fell only from {losses[0]:.2f} to {losses[-1]:.2f}"
    assert result["eval"]["map_11pt"] >= 0.9, result["eval"]

    # The eval row is in the CSV log, the checkpoint reloads through the interface eval.py/detect.py use, and
    # it holds the same weights as the model main() returned.
    assert float(read_log(tmp_path)[-1]["map_11pt"]) == pytest.approx(result["eval"]["map_11pt"], abs=1e-4)
    model, label_map = load_model_from_checkpoint(result["checkpoint"])
    assert label_map == {"background": 0, "circle": 1, "square": 2, "triangle": 3}
    for name, tensor in result["model"].state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert os.path.getsize(tmp_path / "loss_curve.png") > 0
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["iterations_done"] == 30 and summary["eval"]["map_11pt"] == result["eval"]["map_11pt"]


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(toy_data_folder, tmp_path):
    """4 iterations in one go == 2 iterations, stop, --resume, 2 more (augmentation on, batches across epochs,
    a warmup and an lr decay on either side of the resume point)."""
    common = ["--batch-size", "2", "--max-images", "3", "--warmup", "2", "--decay-at", "3", "--seed", "7"]
    straight = train.main(quiet_args(toy_data_folder, tmp_path / "straight", "--iterations", "4", *common))

    first_half = train.main(quiet_args(toy_data_folder, tmp_path / "resumed", "--iterations", "2", *common))
    assert first_half["checkpoint"].endswith("ssd300_iter_000002.pt")
    halfway = {name: tensor.clone() for name, tensor in first_half["model"].state_dict().items()}
    resumed = train.main(quiet_args(toy_data_folder, tmp_path / "resumed", "--iterations", "4", "--resume",
                                    "latest", *common))

    assert resumed["iteration"] == 4
    straight_state, resumed_state = straight["model"].state_dict(), resumed["model"].state_dict()
    assert any(not torch.equal(halfway[name], resumed_state[name]) for name in halfway)  # it trained on
    for name in straight_state:
        torch.testing.assert_close(resumed_state[name], straight_state[name], rtol=1e-6, atol=1e-7, msg=name)
    # The loss of every step matches too, so the same (augmented) batches were drawn after the resume.
    straight_losses = [row["loss"] for row in read_log(tmp_path / "straight")]
    resumed_losses = [row["loss"] for row in read_log(tmp_path / "resumed")]
    assert resumed_losses == straight_losses and len(straight_losses) == 4

    # The momentum buffers were restored as well: the optimizer states of the final checkpoints agree.
    straight_ckpt = torch.load(straight["checkpoint"], weights_only=True)
    resumed_ckpt = torch.load(resumed["checkpoint"], weights_only=True)
    for key, state in straight_ckpt["optimizer"]["state"].items():
        torch.testing.assert_close(resumed_ckpt["optimizer"]["state"][key]["momentum_buffer"],
                                   state["momentum_buffer"], rtol=1e-6, atol=1e-7)
    assert resumed_ckpt["iteration"] == 4 and resumed_ckpt["config"]["n_classes"] == 4


def test_torchrun_two_cpu_processes_keep_identical_weights_and_write_one_checkpoint(toy_data_folder, tmp_path):
    """DistributedDataParallel over gloo: both ranks end with the same weights, and only rank 0 writes."""
    checkpoint_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(REPO_ROOT, "train.py"),
               *quiet_args(toy_data_folder, checkpoint_dir, "--batch-size", "1", "--iterations", "2", "--seed", "3")]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    digests = dict(re.findall(r"rank (\d): final weights sha256 ([0-9a-f]{64})", completed.stdout))
    assert set(digests) == {"0", "1"}, completed.stdout
    assert digests["0"] == digests["1"]
    assert checkpoint_files(checkpoint_dir) == ["ssd300_iter_000002.pt"]

    # Rank 0's checkpoint holds exactly those weights, and they moved away from the initial ones.
    model, _ = load_model_from_checkpoint(str(checkpoint_dir / "ssd300_iter_000002.pt"))
    assert distributed.weights_digest(model) == digests["0"]
    torch.manual_seed(3)
    assert distributed.weights_digest(SSD300(n_classes=4)) != digests["0"]
    assert len(read_log(checkpoint_dir)) == 2  # one log, written by rank 0 only


def test_a_stop_signal_under_the_launcher_saves_and_exits_130_on_every_rank(toy_data_folder, tmp_path):
    """SIGTERM to the launcher (what a scheduler sends): torchrun forwards it to both ranks, they finish the step,
    rank 0 saves, every rank exits 130, and ssd_support.launch exits 130 where torchrun would exit 1."""
    checkpoint_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "ssd_support.launch", "--standalone", "--nproc_per_node=2",
               os.path.join(REPO_ROOT, "train.py"),
               *quiet_args(toy_data_folder, checkpoint_dir, "--batch-size", "1", "--iterations", "1000")]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 240
        while not (checkpoint_dir / "train_log.csv").exists() or len(read_log(checkpoint_dir)) < 1:
            assert process.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output[-3000:]
    assert "all 2 ranks stopped on a signal" in output and "Traceback" not in output, output[-3000:]
    saved = checkpoint_files(checkpoint_dir)
    assert len(saved) == 1 and f"--resume {checkpoint_dir / saved[0]}" in output, output[-3000:]
    assert torch.load(checkpoint_dir / saved[0], weights_only=True)["iteration"] >= 1
    digests = dict(re.findall(r"rank (\d): final weights sha256 ([0-9a-f]{64})", output))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]  # both ranks stopped after the same step


@pytest.mark.parametrize("rank1_status, launcher_status", [(130, 130), (1, 1)])
def test_the_launcher_exits_130_only_when_every_rank_stopped_cleanly(tmp_path, rank1_status, launcher_status):
    """A rank that crashed (exit 1) beside one that stopped cleanly is a failure: torchrun's report, exit 1."""
    # Each rank ignores SIGTERM and waits for the other to start, as train.py's ranks leave together: torchrun
    # SIGTERMs the others as soon as one exits non-zero.
    script = tmp_path / "ranks.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from ssd_support.distributed import report_exit_status\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open(os.path.join({str(tmp_path)!r}, 'started' + os.environ['LOCAL_RANK']), 'w').close()\n"
        f"while len([n for n in os.listdir({str(tmp_path)!r}) if n.startswith('started')]) < 2:\n"
        "    time.sleep(0.05)\n"
        f"status = 130 if os.environ['LOCAL_RANK'] == '0' else {rank1_status}\n"
        "if status == 130:\n"
        "    report_exit_status(status)\n"
        "sys.exit(status)\n")
    completed = subprocess.run(
        [sys.executable, "-m", "ssd_support.launch", "--standalone", "--nproc_per_node=2", str(script)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == launcher_status, completed.stderr[-3000:]
    assert ("ChildFailedError" in completed.stderr) == (launcher_status == 1), completed.stderr[-3000:]


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(toy_data_folder, tmp_path):
    """An absurd learning rate (reached after a 1e-3 first step) blows the weights up; training stops instead
    of writing NaN checkpoints."""
    with pytest.raises(train.NonFiniteLossError, match=r"not finite .*iteration \d+") as error:
        train.main(quiet_args(toy_data_folder, tmp_path, "--batch-size", "1", "--max-images", "1", "--lr", "1e30",
                              "--warmup", "4", "--warmup-factor", "1e-33", "--iterations", "6", "--save-every", "1",
                              "--keep-checkpoints", "0"))
    assert "last good checkpoint" in str(error.value)
    saved = checkpoint_files(tmp_path)
    assert saved, "the first step(s) were finite and should have been saved"
    for name in saved:
        state = torch.load(tmp_path / name, weights_only=True)["model"]
        assert all(torch.isfinite(tensor).all() for tensor in state.values()), name
    assert saved[-1] in str(error.value)


def test_ctrl_c_saves_a_checkpoint_and_exits(toy_data_folder, tmp_path):
    """Ctrl-C during training (SIGINT to the whole process group, data-loading worker included): the current
    step finishes, a checkpoint is written, the exit status is 130, and a fresh run refuses the folder."""
    command = [sys.executable, os.path.join(REPO_ROOT, "train.py"),
               *quiet_args(toy_data_folder, tmp_path, "--batch-size", "1", "--iterations", "1000", "--workers", "1")]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # its own process group, as a terminal would make
    try:
        deadline = time.time() + 240
        while not (tmp_path / "train_log.csv").exists() or len(read_log(tmp_path)) < 1:
            assert process.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    saved = checkpoint_files(tmp_path)
    assert len(saved) == 1, output
    checkpoint = torch.load(tmp_path / saved[0], weights_only=True)
    assert 1 <= checkpoint["iteration"] < 1000
    assert f"--resume {tmp_path / saved[0]}" in output

    # Starting afresh in the same folder would mix two runs: refused, with the way out in the message.
    with pytest.raises(train.TrainingSetupError, match="--resume latest"):
        train.main(quiet_args(toy_data_folder, tmp_path, "--iterations", "1"))


def test_resnet50_base_learns_on_two_toy_images_and_its_checkpoint_rebuilds_it(overfit_folder, tmp_path):
    """A toy smoke test of NVIDIA's ResNet-50 SSD300: the loss falls, the checkpoint names the base, and
    load_model_from_checkpoint rebuilds the same network from it; resuming it as VGG16 is refused."""
    result = train.main(quiet_args(overfit_folder, tmp_path, "--base", "resnet50", "--iterations", "8",
                                   "--batch-size", "2", "--no-augment", "--optimizer", "adamw", "--lr", "1e-3",
                                   "--warmup", "0", "--save-every", "8"))
    losses = [float(row["loss"]) for row in read_log(tmp_path)]
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    checkpoint = torch.load(result["checkpoint"], weights_only=True)
    assert checkpoint["config"]["base"] == "resnet50" and checkpoint["config"]["image_size"] == 300
    model, _ = load_model_from_checkpoint(result["checkpoint"])
    assert model.base_name == "resnet50" and not model.training
    for name, tensor in result["model"].state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    with pytest.raises(train.TrainingSetupError, match="base resnet50"):
        train.main(quiet_args(overfit_folder, tmp_path, "--iterations", "9", "--resume", "latest"))


def test_ssd512_trains_a_step_and_writes_an_ssd512_checkpoint(overfit_folder, tmp_path):
    result = train.main(quiet_args(overfit_folder, tmp_path, "--image-size", "512", "--iterations", "1",
                                   "--batch-size", "1", "--no-augment", "--warmup", "0"))
    assert checkpoint_files(tmp_path) == ["ssd512_iter_000001.pt"]
    model, _ = load_model_from_checkpoint(result["checkpoint"])
    assert model.image_size == 512 and model.priors_cxcy.shape == (24564, 4)
