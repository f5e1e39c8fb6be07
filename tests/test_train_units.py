"""train.py's parts that need no data set: schedule, param groups, resumable data order, checkpoints, RNG states."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

import train
from ssd_support import checkpoints
from ssd_support import resumable_loader
from model import SSD300


def test_learning_rate_warms_up_linearly_then_decays_at_the_milestones():
    def lr(iteration):
        return train.learning_rate_at(iteration, 1e-3, decay_at=(80_000, 100_000), gamma=0.1, warmup=500,
                                      warmup_factor=1 / 3)

    assert lr(0) == pytest.approx(1e-3 / 3)
    assert lr(250) == pytest.approx(1e-3 * (1 / 3 + 2 / 3 * 0.5))
    assert lr(499) < lr(500) == pytest.approx(1e-3)
    assert all(lr(i) < lr(i + 1) for i in range(0, 500, 50))
    assert lr(79_999) == pytest.approx(1e-3)
    assert lr(80_000) == pytest.approx(1e-4)
    assert lr(99_999) == pytest.approx(1e-4)
    assert lr(100_000) == pytest.approx(1e-5)
    assert lr(119_999) == pytest.approx(1e-5)
    # No warmup: the full rate from the first step.
    assert train.learning_rate_at(0, 1e-3, decay_at=(), warmup=0) == pytest.approx(1e-3)


def test_defaults_are_the_papers_recipe():
    args = train.parse_args(["--data-folder", "x"])
    assert (args.batch_size, args.iterations, args.lr, args.momentum, args.weight_decay) == (32, 120_000, 1e-3, 0.9,
                                                                                               5e-4)
    assert args.decay_at == [80_000, 100_000] and args.bias_lr_mult == 2.0 and args.optimizer == "sgd"
    assert not args.skip_difficult and not args.no_pretrained and not args.no_augment
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "x", "--batch-size", "0"])


def test_param_groups_give_biases_twice_the_lr_and_no_decay_and_decay_the_rescale_factors():
    model = SSD300(n_classes=3)
    groups = train.make_param_groups(model, weight_decay=5e-4, bias_lr_mult=2.0)
    optimizer = train.make_optimizer("sgd", groups, lr=1e-3, momentum=0.9)
    train.set_learning_rate(optimizer, 1e-3)
    weights, biases = optimizer.param_groups

    named = dict(model.named_parameters())
    in_weights = {id(p) for p in weights["params"]}
    in_biases = {id(p) for p in biases["params"]}
    assert in_weights.isdisjoint(in_biases)
    assert in_weights | in_biases == {id(p) for p in named.values()}
    assert in_biases == {id(p) for name, p in named.items() if name.endswith(".bias")}
    assert id(named["rescale_factors"]) in in_weights  # Caffe's Normalize scale gets the default decay
    assert (weights["lr"], weights["weight_decay"]) == (pytest.approx(1e-3), 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (pytest.approx(2e-3), 0.0)
    assert isinstance(train.make_optimizer("adamw", train.make_param_groups(model, 5e-4), 1e-4, 0.9),
                      torch.optim.AdamW)


def _batches(sampler, batch_size, start_iteration, n_batches):
    stream = iter(resumable_loader.InfiniteBatchSampler(sampler, batch_size, start_iteration))
    return [next(stream) for _ in range(n_batches)]


def test_batch_stream_resumed_at_k_continues_exactly_like_the_uninterrupted_one():
    dataset = list(range(7))  # 7 images, batch 3: batches straddle epoch boundaries
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=5)
    uninterrupted = _batches(sampler, 3, 0, 10)
    for k in (1, 2, 3, 7):
        assert _batches(sampler, 3, k, 10 - k) == uninterrupted[k:]

    # Every epoch is a permutation of the data set, and the epochs differ (reshuffled).
    flat = [item for batch in uninterrupted for item in batch]
    epochs = [flat[i:i + 7] for i in range(0, 28, 7)]
    for epoch_number, epoch in enumerate(epochs):
        assert sorted(index for index, _ in epoch) == list(range(7))
        assert {e for _, e in epoch} == {epoch_number}
    assert epochs[0] != epochs[1]


def test_batch_stream_splits_each_epoch_between_ranks():
    dataset = list(range(8))
    per_rank = [_batches(DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0), 2, 0, 2)
                for rank in (0, 1)]
    first_epoch = [index for rank_batches in per_rank for batch in rank_batches for index, _ in batch]
    assert sorted(first_epoch) == list(range(8))


def test_seeded_augmentation_is_a_function_of_seed_epoch_and_index_and_leaves_global_rngs_alone():
    class RandomItems:
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return (random.random(), float(np.random.rand()), float(torch.rand(())))

    wrapped = resumable_loader.SeededAugmentation(RandomItems(), seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = wrapped[(2, 0)]
    assert torch.equal(torch.get_rng_state(), before)
    random.random(), np.random.rand(), torch.rand(5)  # whatever happens in between ...
    assert wrapped[(2, 0)] == first  # ... the same (index, epoch) is augmented identically
    assert wrapped[(2, 1)] != first and wrapped[(1, 0)] != first
    assert resumable_loader.SeededAugmentation(RandomItems(), seed=4)[(2, 0)] != first


def test_rng_states_survive_a_weights_only_checkpoint_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.randn()  # leave a cached Gaussian in numpy's state
    state = checkpoints.capture_rng_state()
    expected = (random.random(), np.random.randn(), torch.rand(3))

    path = tmp_path / "rng.pt"
    torch.save({"rng": state}, path)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    checkpoints.restore_rng_state(torch.load(path, weights_only=True)["rng"])
    again = (random.random(), np.random.randn(), torch.rand(3))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_atomic_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    checkpoints.save_atomically({"a": torch.ones(2)}, str(path))
    checkpoints.save_atomically({"a": torch.zeros(2)}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoints.save_atomically({"a": torch.ones(2)}, str(path))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_atomically({"a": torch.zeros(2)}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_prune_keeps_the_newest_checkpoints_and_latest_finds_the_newest(tmp_path):
    for iteration in (5, 100, 20, 1000):
        checkpoints.save_atomically({"iteration": iteration}, checkpoints.checkpoint_path(str(tmp_path), iteration))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    checkpoints.prune_checkpoints(str(tmp_path), keep=2)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "ssd300_iter_000100.pt", "ssd300_iter_001000.pt"]
    assert checkpoints.resolve_resume_path("latest", str(tmp_path)).endswith("ssd300_iter_001000.pt")
    with pytest.raises(FileNotFoundError, match="no ssd300_iter"):
        checkpoints.resolve_resume_path("latest", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoints.resolve_resume_path(str(tmp_path / "missing.pt"), str(tmp_path))


def test_resnet50_param_groups_leave_batch_norm_and_biases_undecayed():
    """NVIDIA's recipe for the ResNet-50 base: no weight decay on batch-norm scales and shifts or on biases."""
    args = train.parse_args(["--data-folder", "x", "--base", "resnet50"])
    assert args.bias_lr_mult == 1.0  # NVIDIA has no Caffe lr_mult 2
    model = SSD300(n_classes=3, base="resnet50")
    weights, biases, norms = train.make_param_groups(model, weight_decay=5e-4, bias_lr_mult=args.bias_lr_mult)
    named = dict(model.named_parameters())
    batch_norm_scales = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in norms["params"]} == batch_norm_scales and len(batch_norm_scales) > 50
    assert {id(p) for p in biases["params"]} == {id(p) for n, p in named.items() if n.endswith(".bias")}
    assert (norms["weight_decay"], biases["weight_decay"], weights["weight_decay"]) == (0.0, 0.0, 5e-4)
    assert all(p.dim() == 4 for p in weights["params"])  # only convolution kernels are decayed
    assert sum(len(g["params"]) for g in (weights, biases, norms)) == len(named)
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "x", "--base", "resnet50", "--image-size", "512"])


def test_loader_workers_run_opencv_on_one_thread_and_ignore_stop_signals():
    """init_loader_worker, run in a process of its own as a DataLoader worker is: OpenCV's pool down to one thread
    (the photometric kernels would otherwise start one thread per core in every worker), SIGINT and SIGTERM
    ignored (the main process saves the checkpoint and stops the workers itself)."""
    import subprocess
    import sys

    code = ("import signal, cv2; from ssd_support import resumable_loader; resumable_loader.init_loader_worker(0); "
            "print(cv2.getNumThreads(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "
            "signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "True", "True"]


def test_cosine_schedule_warms_up_then_falls_to_a_hundredth_of_the_rate():
    """--lr-schedule cosine: the step schedule's warmup, then 1e-3 at the warmup's end, the midpoint's
    (1 + 0.01) / 2 x 1e-3, and 1e-5 at the last iteration, never below."""
    rates = [train.cosine_learning_rate_at(i, 1e-3, 101, warmup=10, warmup_factor=0.5) for i in range(101)]
    assert rates[0] == pytest.approx(0.5e-3) and rates[5] == pytest.approx(0.75e-3)
    assert rates[10] == pytest.approx(1e-3)
    assert rates[55] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # halfway from iteration 10 to 100
    assert rates[100] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and min(rates) == pytest.approx(1e-5)


def test_epochs_on_a_handful_of_images_keep_the_two_decays_apart():
    """3 iterations: the paper's decays scale to round(2.0) and round(2.5) = 2, 2 (the rate divided by 100 at
    once); they become 2 and 3."""
    assert train.schedule_for_epochs(3, 1, 1, 1, warmup=0) == (3, [2, 3], 0)
    rates = [train.learning_rate_at(i, 1e-3, [2, 3], 0.1, warmup=0) for i in range(3)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4])


def test_loader_workers_start_after_the_parent_ran_opencv_in_threads(toy_data_folder):
    """A process that had run a parallel OpenCV call forked loader workers whose cv2.setNumThreads(1) waited forever
    for the parent's pool threads (the test session hung at the first batch): the loader is safe to start now."""
    script = (
        "import sys, cv2, numpy as np, torch; sys.path.insert(0, {root!r})\n"
        "image = np.random.randint(0, 255, (2000, 2000, 3), np.uint8)\n"
        "cv2.resize(image, (1000, 1000)); cv2.GaussianBlur(image, (5, 5), 0)\n"
        "from datasets import PascalVOCDataset\n"
        "from ssd_support.distributed import DistInfo\n"
        "from ssd_support.resumable_loader import make_train_loader\n"
        "dataset = PascalVOCDataset({data!r}, 'TRAIN', normalized=False)\n"
        "loader, _ = make_train_loader(dataset, 2, 0, 1, DistInfo(0, 1, torch.device('cpu')), 0)\n"
        "print(next(iter(loader))[0].shape)\n"
    ).format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), data=toy_data_folder)
    # Without OMP_NUM_THREADS, as CI runs it: OpenCV then runs its own thread pool, the one a fork breaks.
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                            env=env)
    assert "torch.Size([2, 3, 300, 300])" in output.stdout


@pytest.mark.parametrize("requested, device_type, capability, dtype, note", [
    (None, "cuda", (7, 5), torch.float16, "no fast bfloat16, so the forward pass runs in float16 with a GradScaler"),
    (None, "cuda", (7, 0), torch.float16, "this GPU (compute capability 7.0)"),  # T4 above, V100 here
    (None, "cuda", (8, 0), torch.bfloat16, None),  # A100
    (None, "cuda", (9, 0), torch.bfloat16, None),  # H100
    (None, "cpu", None, torch.bfloat16, None),
    ("bf16", "cuda", (7, 5), torch.bfloat16, "emulates bfloat16"),  # asked for: kept, with a warning
    ("bf16", "cuda", (8, 6), torch.bfloat16, None),
    ("fp16", "cuda", (9, 0), torch.float16, None),
    ("fp16", "cpu", None, torch.float16, None),
])
def test_amp_dtype_falls_back_to_float16_on_gpus_without_fast_bfloat16(requested, device_type, capability, dtype,
                                                                         note):
    from ssd_support.training_run import choose_amp_dtype

    chosen, message = choose_amp_dtype(requested, device_type, capability)
    assert chosen == dtype
    if note is None:
        assert message is None
    else:
        assert "\n" not in message and message.startswith("train.py:")
        assert note in message
    assert train.parse_args(["--data-folder", "x"]).amp_dtype is None  # the default picks
