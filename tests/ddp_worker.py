"""A DDP step on a toy network, for tests/test_distributed.py's 2-process gloo run: a module of its own that
imports only torch and ssd_support.cpu_layout, so that each spawned process starts fast."""

import os
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssd_support.cpu_layout import channels_last_convolutions

GRAD_STRIDES_WARNING = "Grad strides do not match bucket view strides"


class L2NormNet(nn.Module):
    """SSD's conv4_3 pattern at toy size: a convolution, L2 normalization rescaled per channel, a convolution."""

    def __init__(self):
        super().__init__()
        self.conv_a, self.conv_b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
        self.rescale_factors = nn.Parameter(torch.full((1, 8, 1, 1), 20.0))

    def forward(self, images):
        """:param images: (N, 3, H, W) -> (N, 4, H, W)"""
        return self.conv_b(F.normalize(self.conv_a(images), dim=1) * self.rescale_factors)


def warnings_of_one_step(convert):
    """The warnings one DDP forward/backward raises after ``convert(model)`` laid the weights out."""
    torch.manual_seed(0)
    model = L2NormNet()
    convert(model)
    ddp = nn.parallel.DistributedDataParallel(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ddp(torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)).sum().backward()
    return [str(warning.message) for warning in caught]


def ddp_steps(rank, store, out_folder):
    """Rank ``rank`` of 2 (gloo): one step with train.py's layout, then one with ``module.to(channels_last)`` (in
    this order: the C++ warning may be issued once per process); the warnings go to out_folder/<layout><rank>.txt."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    layouts = (("training", channels_last_convolutions),
               ("module_to", lambda model: model.to(memory_format=torch.channels_last)))
    for name, convert in layouts:
        with open(os.path.join(out_folder, f"{name}{rank}.txt"), "w") as file:
            file.write("\n".join(warnings_of_one_step(convert)))
    dist.destroy_process_group()
