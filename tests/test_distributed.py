"""ssd_support/distributed.py and the GPU paths of a torchrun run, tested on the CPU: the process group's timeout,
one GPU number for several processes refused in one line, the channels-last model under DDP (gloo, 2 ranks)."""

import datetime

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ddp_worker import GRAD_STRIDES_WARNING, ddp_steps

from model import SSD300
from ssd_support.checkpoints import TrainingSetupError
from ssd_support.cpu_layout import channels_last_convolutions
from ssd_support.distributed import DEFAULT_TIMEOUT_MINUTES, setup_distributed


@pytest.fixture
def torchrun_env(monkeypatch):
    """The variables torchrun sets for rank 0 of 2 processes on one machine; the process group is not joined but
    its arguments recorded (``calls``)."""
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA GPUs, as far as setup_distributed can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)


def test_the_process_group_waits_an_hour_by_default_not_nccls_ten_minutes(torchrun_env):
    """Ranks wait in a barrier while rank 0 evaluates or saves: NCCL's default 10 minutes killed longer ones."""
    setup_distributed("cpu")
    assert torchrun_env[-1] == {"backend": "gloo", "timeout": datetime.timedelta(minutes=DEFAULT_TIMEOUT_MINUTES)}
    assert DEFAULT_TIMEOUT_MINUTES == 60
    setup_distributed("cpu", timeout_minutes=90)
    assert torchrun_env[-1]["timeout"] == datetime.timedelta(minutes=90)


def test_train_py_passes_dist_timeout_minutes_and_refuses_nonsense(monkeypatch, capsys):
    import train

    seen = []
    monkeypatch.setattr(train, "setup_distributed", lambda device, minutes: seen.append(minutes) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # stops main right after the call
        train.main(["--data-folder", "nowhere", "--dist-timeout-minutes", "120"])
    assert seen == [120]
    assert train.parse_args(["--data-folder", "x"]).dist_timeout_minutes == DEFAULT_TIMEOUT_MINUTES
    with pytest.raises(SystemExit):
        train.parse_args(["--data-folder", "x", "--dist-timeout-minutes", "0"])
    assert "--dist-timeout-minutes must be positive" in capsys.readouterr().err


def test_one_gpu_number_for_several_processes_is_refused_in_one_line(torchrun_env, two_gpus):
    """--device cuda:1 under torchrun put every rank on one GPU: NCCL's "Duplicate GPU detected" from each rank."""
    with pytest.raises(TrainingSetupError, match=r"^--device cuda:1: torchrun started 2 processes on this machine, "
                                                 r"and one GPU number puts them all on that GPU; pass --device cuda"):
        setup_distributed("cuda:1")
    assert torchrun_env == []  # refused before joining the process group
    info = setup_distributed("cuda")  # each process on its LOCAL_RANK's GPU
    assert info.device == torch.device("cuda", 0) and torchrun_env[-1]["backend"] == "nccl"


def test_a_gpu_number_is_fine_with_one_process_per_machine(torchrun_env, two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # two machines, one process each
    assert setup_distributed("cuda:1").device == torch.device("cuda", 1)


def test_the_training_layout_keeps_rescale_factors_contiguous():
    """train.py's channels-last model: convolution weights NHWC, the L2Norm rescale factors as they were (their
    gradient's layout), which module.to(memory_format=...) changed to strides (512, 1, 512, 512)."""
    network = channels_last_convolutions(SSD300(3))
    assert network.rescale_factors.stride() == (512, 1, 1, 1)
    assert network.base.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    assert network.pred_convs.cl_conv4_3.weight.is_contiguous(memory_format=torch.channels_last)
    assert not network.pred_convs.cl_conv4_3.weight.is_contiguous()


def test_ddp_does_not_warn_about_grad_strides_with_the_training_layout(tmp_path):
    """Two gloo processes: train.py's layout raises no "Grad strides" warning at the first backward, the
    whole-module conversion does (so this run would see it)."""
    mp.spawn(ddp_steps, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        assert GRAD_STRIDES_WARNING not in (tmp_path / f"training{rank}.txt").read_text()
        assert GRAD_STRIDES_WARNING in (tmp_path / f"module_to{rank}.txt").read_text()
