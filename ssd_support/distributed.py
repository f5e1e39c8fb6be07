"""Several processes under torchrun: the process group, all-reduced numbers, SyncBatchNorm, replica digests.

torchrun starts one process per GPU and sets RANK, LOCAL_RANK and WORLD_SIZE; each process trains on its own
share of every batch and DistributedDataParallel all-reduces the gradients. A single process is the case
world_size 1 of the same code.
"""

import datetime
import hashlib
import os
from typing import NamedTuple

import torch
import torch.distributed as dist

from ssd_support.checkpoints import TrainingSetupError

# The exit status of a run stopped by SIGINT/SIGTERM after saving (128 + SIGINT, the shell's status for Ctrl-C).
STOPPED_EXIT_CODE = 130
# Set by ssd_support.launch: the folder where each rank leaves the status it exits with (report_exit_status).
EXIT_STATUS_DIR_VARIABLE = "SSD_EXIT_STATUS_DIR"
# How long a rank waits in a collective (a barrier) before the job is killed (train.py --dist-timeout-minutes):
# ranks other than 0 wait in a barrier while rank 0 evaluates (--eval-every) or saves, which on a large VAL split
# takes longer than NCCL's default 10 minutes.
DEFAULT_TIMEOUT_MINUTES = 60


class DistInfo(NamedTuple):
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        """Rank 0 writes the checkpoints and the log; the others only train."""
        return self.rank == 0


def setup_distributed(device_argument, timeout_minutes=DEFAULT_TIMEOUT_MINUTES):
    """Pick the device and, under torchrun, join the process group.

    torchrun sets RANK, LOCAL_RANK, LOCAL_WORLD_SIZE and WORLD_SIZE; NCCL is the backend for GPUs, gloo for CPUs.

    :param device_argument: the --device value (None: cuda if available, else cpu; under torchrun cuda:LOCAL_RANK)
    :param timeout_minutes: how long a collective may wait for the other ranks (--dist-timeout-minutes)
    :return: a DistInfo (rank, world_size, device, is_main)
    :raises TrainingSetupError: no GPU, a GPU number this machine lacks, or one GPU number for several processes
        of one machine (NCCL would refuse it with "Duplicate GPU detected" from every rank)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_argument is None:
        device_argument = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_argument)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError(f"--device {device_argument}: no CUDA GPU is available here (torch "
                                 f"{torch.__version__}, torch.cuda.is_available() is False); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingSetupError(f"--device {device_argument}: this machine has {torch.cuda.device_count()} "
                                 f"GPU(s), numbered from 0")
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if device.type == "cuda" and device.index is not None and processes_here > 1:
        raise TrainingSetupError(f"--device {device_argument}: torchrun started {processes_here} processes on this "
                                 f"machine, and one GPU number puts them all on that GPU; pass --device cuda (each "
                                 f"process takes cuda:LOCAL_RANK), and CUDA_VISIBLE_DEVICES to choose the GPUs")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistInfo(rank=rank, world_size=world_size, device=device)


def all_ranks_sum(values, dist_info):
    """Sum a list of floats over all processes (identity on a single process).

    :return: list of floats, the sums
    """
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist_info.world_size > 1:
        # gloo reduces CPU tensors, NCCL only CUDA ones.
        tensor = tensor.to(dist_info.device)
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def stop_requested_anywhere(request, dist_info):
    """Whether any process received SIGINT/SIGTERM, so that all of them stop after the same step.

    :param request: this process's StopRequest
    :return: bool (one all-reduce of one number under torchrun; just the flag on a single process)
    """
    if dist_info.world_size == 1:
        return request.stop
    return all_ranks_sum([float(request.stop)], dist_info)[0] > 0


def report_exit_status(status):
    """Under ssd_support.launch, leave the status this rank is about to exit with where the launcher reads it
    (torchrun itself only sees a non-zero status, and exits 1 for any). Nothing happens without the launcher.

    :param status: the exit status, an int (STOPPED_EXIT_CODE for a clean stop on a signal)
    """
    folder = os.environ.get(EXIT_STATUS_DIR_VARIABLE)
    if not folder or not os.path.isdir(folder):
        return
    path = os.path.join(folder, f"rank{int(os.environ.get('LOCAL_RANK', '0'))}")
    with open(path + ".tmp", "w") as file:
        file.write(str(status))
    os.replace(path + ".tmp", path)  # the launcher never reads half a number


def convert_sync_batchnorm(model, dist_info):
    """--sync-bn: replace the model's batch norms by ``torch.nn.SyncBatchNorm``, which under torchrun computes
    the batch statistics over the images of all processes (each GPU alone may see only 8 images).

    The parameters and buffers are kept (the same tensors), so the optimizer built before still holds them and
    checkpoints keep their keys. Nothing is converted for a single process (nothing to synchronise with) or a
    model without batch norm (vgg16); a message says so.

    :param model: the SSD, before DDP wraps it
    :param dist_info: the DistInfo of this process
    :return: the model (converted in place where there is something to convert)
    :raises TrainingSetupError: for several CPU processes: SyncBatchNorm runs on GPUs only
    """
    n_batch_norms = sum(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())
    reason = None
    if n_batch_norms == 0:
        reason = f"the {model.base_name} network has no batch norm"
    elif dist_info.world_size == 1:
        reason = "a single process has no other batch to synchronise with (run under torchrun)"
    if reason is not None:
        if dist_info.is_main:
            print(f"--sync-bn: nothing converted: {reason}.", flush=True)
        return model
    if dist_info.device.type == "cpu":
        raise TrainingSetupError("--sync-bn: SyncBatchNorm runs on GPUs only, not with --device cpu")
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if dist_info.is_main:
        print(f"--sync-bn: {n_batch_norms} batch norms synchronised over {dist_info.world_size} processes.",
              flush=True)
    return model


def weights_digest(model):
    """SHA-256 of the model's state_dict bytes (to check that DDP ranks hold identical weights)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
