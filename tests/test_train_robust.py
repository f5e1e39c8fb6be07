"""train.py never loses a user's work, and every failure it cannot fix is one line naming the file or setting.

Real subprocesses for signals and the folder lock (SIGTERM to the process group with loader workers, a second
run on the same folder), in-process runs for the rest; every run is 1-2 toy images, batch 1, a few steps.
"""

import csv
import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from ssd_support import checkpoints as checkpoint_files
from ssd_support import resumable_loader
from ssd_support import training_run
from ssd_support import files

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quick_args(data_folder, checkpoint_dir, *extra):
    """A tiny CPU run: random init, 2 images, batch 1, 2 steps, no workers, no progress bar."""
    return ["--data-folder", str(data_folder), "--checkpoint-dir", str(checkpoint_dir), "--device", "cpu",
            "--no-pretrained", "--workers", "0", "--no-progress", "--log-every", "1", "--max-images", "2",
            "--batch-size", "1", "--iterations", "2", "--warmup", "0", *extra]


def train_command(*args):
    return [sys.executable, os.path.join(REPO_ROOT, "train.py"), *args]


def run_cli(*args, timeout=300):
    """Run train.py; :return: (exit status, stderr lines without Python warnings)."""
    completed = subprocess.run(train_command(*args), cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [line for line in completed.stderr.splitlines()
             if line.strip() and "Warning" not in line and not line.startswith("  ")]
    return completed.returncode, lines


def log_rows(checkpoint_dir):
    path = os.path.join(checkpoint_dir, "train_log.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def checkpoints(checkpoint_dir):
    return [path for _, path in checkpoint_files.list_checkpoints(str(checkpoint_dir))]


@pytest.fixture(scope="module")
def trained(toy_data_folder, tmp_path_factory):
    """A 2-step run (batch 1, seed 0, sgd): its checkpoint folder, for the resume tests."""
    folder = tmp_path_factory.mktemp("trained")
    train.main(quick_args(toy_data_folder, folder, "--save-every", "2"))
    return folder


def own_data_folder(toy_data_folder, folder, n_train=2, n_test=None):
    """A data folder of our own: the first ``n_train`` toy images copied (so a test may delete them),
    TEST the same images, or ``n_test`` of them."""
    os.makedirs(folder / "images", exist_ok=True)
    with open(os.path.join(toy_data_folder, "TRAIN_images.json")) as file:
        images = [p if os.path.isabs(p) else os.path.join(toy_data_folder, p) for p in json.load(file)][:n_train]
    with open(os.path.join(toy_data_folder, "TRAIN_objects.json")) as file:
        objects = json.load(file)[:n_train]
    copies = []
    for path in images:
        copies.append(str(folder / "images" / os.path.basename(path)))
        shutil.copy(path, copies[-1])
    n_test = n_train if n_test is None else n_test
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        (folder / f"{split}_images.json").write_text(json.dumps(copies[:n]))
        (folder / f"{split}_objects.json").write_text(json.dumps(objects[:n]))
    shutil.copy(os.path.join(toy_data_folder, "label_map.json"), folder / "label_map.json")
    return folder, copies


# ------------------------------------------------------------------------------------------------------------
# Losing work: preemption with workers, two runs on one folder, an image lost mid-run, a full disk
# ------------------------------------------------------------------------------------------------------------


def test_sigterm_to_the_group_with_workers_saves_after_the_current_step_and_a_second_run_is_refused(
        toy_data_folder, tmp_path):
    """SIGTERM to the process group (scancel, preemption), loader workers included: the step in progress
    finishes, a checkpoint of it is written, exit 130. While the run holds its folder, a second run on it is
    refused in one line and changes nothing; stale temporary files of a killed save are cleared at the start."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".tmp_killed_save.pt").write_bytes(b"\0" * 1000)  # what a SIGKILL during a save leaves
    command = train_command(*quick_args(toy_data_folder, folder, "--iterations", "1000", "--workers", "2"))
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 240
        while len(log_rows(folder)) < 1:
            assert process.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.2)
        assert not (folder / ".tmp_killed_save.pt").exists()

        status, lines = run_cli(*quick_args(toy_data_folder, folder, "--resume", "latest"))
        assert status == 1 and len(lines) == 1, lines
        assert lines[0].startswith(f"train.py: {folder}: another training run (pid {process.pid})"), lines

        steps_done = len(log_rows(folder))
        os.killpg(process.pid, signal.SIGTERM)  # during step steps_done + 1
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output
    assert "killed by signal" not in output and "Traceback" not in output, output
    saved = checkpoints(folder)
    assert len(saved) == 1, output
    assert torch.load(saved[0], weights_only=True)["iteration"] == steps_done + 1, output
    assert [int(row["iteration"]) for row in log_rows(folder)] == list(range(1, steps_done + 2))  # one run's log
    assert f"--resume {saved[0]}" in output
    assert not [name for name in os.listdir(folder) if name.startswith(".tmp_")]


def test_an_image_lost_mid_run_saves_the_progress_and_names_the_file(toy_data_folder, tmp_path, monkeypatch):
    """Both training images are deleted after step 1, with 2 loader workers: the run saves the steps it did,
    then stops with one line naming a deleted file and the checkpoint to continue from."""
    data, images = own_data_folder(toy_data_folder, tmp_path / "data")
    real_step = train.train_step

    def step_then_delete(run, *args, **kwargs):
        stats = real_step(run, *args, **kwargs)
        for path in images:
            if os.path.exists(path):
                os.remove(path)
        return stats

    monkeypatch.setattr(train, "train_step", step_then_delete)
    with pytest.raises(train.DataLoadError) as error:
        train.main(quick_args(data, tmp_path / "run", "--iterations", "20", "--save-every", "100",
                              "--workers", "2"))
    message = str(error.value)
    assert "\n" not in message and any(path in message for path in images), message
    saved = checkpoints(tmp_path / "run")
    assert len(saved) == 1 and f"--resume {saved[0]}" in message
    steps = torch.load(saved[0], weights_only=True)["iteration"]
    assert steps >= 1 and [int(r["iteration"]) for r in log_rows(tmp_path / "run")] == list(range(1, steps + 1))


def test_loader_errors_become_the_original_one_line_message():
    """From the main process (--workers 0) and re-raised from a worker (ExceptionWrapper: same type, the
    worker's traceback as message), for a built-in type and for one of a module (datasets' image errors)."""
    from torch.utils.data._utils.worker import ExceptionWrapper

    class UnreadableImageError(ValueError):
        pass

    for error in (OSError("/data/a.jpg: cannot read image (truncated)"),
                  UnreadableImageError("/data/a.jpg: cannot read image (truncated)")):
        assert resumable_loader.loader_error_message(error) == "/data/a.jpg: cannot read image (truncated)"
        try:
            raise error
        except type(error):
            wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
        with pytest.raises(type(error)) as reraised:
            wrapped.reraise()
        assert "Traceback" in str(reraised.value)
        assert resumable_loader.loader_error_message(reraised.value) == "/data/a.jpg: cannot read image (truncated)"


def test_a_full_disk_names_the_file_and_keeps_the_earlier_checkpoints(toy_data_folder, tmp_path, monkeypatch):
    """The second checkpoint's write fails with ENOSPC after some bytes: "cannot write PATH: no space left on
    device", the first checkpoint intact, no temporary file left behind."""
    real_write = files.write_atomically

    def full_after_first_checkpoint(path, write, binary=False):
        if not path.endswith("_000002.pt"):
            return real_write(path, write, binary)

        def write_until_full(file):
            file.write(b"x" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, write_until_full, binary)

    monkeypatch.setattr(checkpoint_files, "write_atomically", full_after_first_checkpoint)
    with pytest.raises(train.CheckpointWriteError) as error:
        train.main(quick_args(toy_data_folder, tmp_path, "--save-every", "1", "--keep-checkpoints", "1"))
    assert str(error.value) == f"cannot write {tmp_path / 'ssd300_iter_000002.pt'}: no space left on device"
    assert checkpoints(tmp_path) == [str(tmp_path / "ssd300_iter_000001.pt")]
    assert torch.load(tmp_path / "ssd300_iter_000001.pt", weights_only=True)["iteration"] == 1
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp_")]


# ------------------------------------------------------------------------------------------------------------
# One line, not a traceback
# ------------------------------------------------------------------------------------------------------------


def test_unusable_settings_are_one_line_before_the_model_is_built(toy_data_folder, tmp_path, monkeypatch):
    """A --checkpoint-dir that is a file or cannot be written, --device cuda without a GPU, --base resnet50
    with batch 1: one line each (the command line too), checked before any network is built."""
    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the settings were checked")

    monkeypatch.setattr(train, "build_model", no_model)
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with pytest.raises(train.TrainingSetupError, match=f"^{a_file}: --checkpoint-dir is a file, not a folder$"):
        train.main(quick_args(toy_data_folder, a_file))
    with pytest.raises(train.TrainingSetupError, match="cannot write into --checkpoint-dir"):
        train.main(quick_args(toy_data_folder, a_file / "below_a_file"))
    if os.geteuid() != 0:  # root writes into read-only folders
        read_only = tmp_path / "read_only"
        read_only.mkdir(mode=0o500)
        with pytest.raises(train.TrainingSetupError, match="cannot write into --checkpoint-dir"):
            train.main(quick_args(toy_data_folder, read_only))
    if not torch.cuda.is_available():
        with pytest.raises(train.TrainingSetupError, match="--device cuda: no CUDA GPU is available"):
            train.main(quick_args(toy_data_folder, tmp_path / "cuda", "--device", "cuda"))

    status, lines = run_cli(*quick_args(toy_data_folder, a_file))
    assert status == 1 and lines == [f"train.py: {a_file}: --checkpoint-dir is a file, not a folder"]
    status, lines = run_cli(*quick_args(toy_data_folder, tmp_path / "resnet", "--base", "resnet50"))
    assert status == 2 and "--base resnet50 needs --batch-size 2 or more" in lines[-1]


def test_resume_from_a_broken_file_is_one_line_naming_it_and_runs_no_code(trained, toy_data_folder, tmp_path):
    good = checkpoints(trained)[-1]
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    broken = {"empty.pt": b"", "text.pt": b"not a checkpoint\n", "truncated.pt": open(good, "rb").read()[:5000],
              "malicious.pt": pickle.dumps(Payload())}
    for name, content in broken.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(train.TrainingSetupError) as error:
            train.main(quick_args(toy_data_folder, tmp_path / f"run_{name}", "--resume", str(tmp_path / name)))
        message = str(error.value)
        assert message.startswith(f"{tmp_path / name}: not a readable checkpoint") and "\n" not in message, message
    assert not marker.exists()

    torch.save({"model": {}}, tmp_path / "other.pt")  # a readable file, but not a training checkpoint
    with pytest.raises(train.TrainingSetupError, match="not an SSD checkpoint .*missing 'optimizer'"):
        train.main(quick_args(toy_data_folder, tmp_path / "run_other", "--resume", str(tmp_path / "other.pt")))


def test_resume_refuses_changed_settings_in_one_line_unless_allowed(trained, toy_data_folder, tmp_path, capsys):
    """A changed batch size, seed, augmentation, difficult objects, optimizer or number of processes is named;
    --allow-changed-settings accepts it knowingly (another optimizer then starts from a fresh state)."""
    good = checkpoints(trained)[-1]
    for extra, named in ((["--batch-size", "2"], "--batch-size 2 (was 1)"), (["--seed", "5"], "--seed 5 (was 0)"),
                         (["--no-augment"], "--no-augment True (was False)"),
                         (["--skip-difficult"], "--skip-difficult True (was False)"),
                         (["--optimizer", "adamw"], "--optimizer adamw (was sgd)")):
        with pytest.raises(train.TrainingSetupError, match="--allow-changed-settings") as error:
            train.main(quick_args(toy_data_folder, tmp_path / "refused", "--iterations", "3", "--resume", good,
                                  *extra))
        assert str(error.value).startswith(f"{good}: this run changes") and named in str(error.value)

    two_processes = torch.load(good, weights_only=True)
    two_processes["world_size"] = 2
    torch.save(two_processes, tmp_path / "ddp.pt")
    with pytest.raises(train.TrainingSetupError, match=r"1 process\(es\) \(was 2\)"):
        train.main(quick_args(toy_data_folder, tmp_path / "refused", "--iterations", "3", "--resume",
                              str(tmp_path / "ddp.pt")))

    result = train.main(quick_args(toy_data_folder, tmp_path / "allowed", "--iterations", "3", "--resume", good,
                                   "--optimizer", "adamw", "--lr", "1e-5", "--allow-changed-settings"))
    assert result["iteration"] == 3 and "--optimizer adamw (was sgd)" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Divergence, AMP on a CPU, an empty TEST split
# ------------------------------------------------------------------------------------------------------------


def test_the_last_good_checkpoint_after_divergence_is_one_training_can_go_on_from(toy_data_folder, tmp_path):
    """--lr 1e8 (reached after a 1e-3 first step) --save-every 1 --keep-checkpoints 1: the checkpoint named as
    good gives a finite loss, and the advised resume with a lower --lr (--allow-changed-settings) trains on; the
    checkpoint whose weights gave the non-finite loss is not left behind for --resume latest."""
    with pytest.raises(train.NonFiniteLossError) as error:
        train.main(quick_args(toy_data_folder, tmp_path, "--max-images", "1", "--iterations", "8", "--lr", "1e8",
                              "--warmup", "4", "--warmup-factor", "1e-11", "--save-every", "1",
                              "--keep-checkpoints", "1"))
    message = str(error.value)
    good = checkpoints(tmp_path)[-1]
    assert f"last good checkpoint is {good}: continue from it with --resume {good}" in message, message
    assert checkpoints(tmp_path) == [good]

    resumed_from = torch.load(good, weights_only=True)["iteration"]
    result = train.main(quick_args(toy_data_folder, tmp_path, "--max-images", "1", "--lr", "1e-5",
                                   "--iterations", str(resumed_from + 2), "--resume", good, "--save-every", "1",
                                   "--keep-checkpoints", "1", "--allow-changed-settings"))
    assert result["iteration"] == resumed_from + 2 and training_run.weights_are_finite(result["model"])


def test_amp_on_a_cpu_warns_and_trains_in_float32_unless_insisted(toy_data_folder, tmp_path, capsys):
    result = train.main(quick_args(toy_data_folder, tmp_path, "--iterations", "1", "--amp"))
    assert "--amp on a CPU is usually 20-40x slower than float32; training in float32" in capsys.readouterr().err
    assert result["iteration"] == 1
    assert json.loads((tmp_path / "train_summary.json").read_text())["args"]["amp"] is False

    insisted = train.parse_args(["--data-folder", "x", "--amp", "--amp-on-cpu"])
    assert training_run.use_amp_on(torch.device("cpu"), insisted.amp, insisted.amp_on_cpu)


def test_eval_every_with_an_empty_test_split_says_so_once_and_writes_strict_json(toy_data_folder, tmp_path, capsys):
    data, _ = own_data_folder(toy_data_folder, tmp_path / "data", n_train=1, n_test=0)
    result = train.main(quick_args(data, tmp_path / "run", "--eval-every", "1"))
    assert capsys.readouterr().err.count("has no TEST images; --eval-every is ignored") == 1
    assert result["eval"] is None
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text(),
                         parse_constant=lambda name: pytest.fail(f"bare {name} in train_summary.json"))
    assert summary["eval"] is None and summary["iterations_done"] == 2
    assert files.finite_or_null({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}
