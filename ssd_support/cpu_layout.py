"""Channels-last (NHWC) convolution weights: the CPU's fastest layout for inference, cuDNN's for training."""

import torch
from torch import nn


def channels_last_convolutions(model):
    """Store a network's convolution weights channels-last (NHWC), in place; every other tensor keeps its layout.

    ``model.to(memory_format=torch.channels_last)`` converts every 4-d tensor, SSD's L2Norm ``rescale_factors``
    (1, 512, 1, 1) too: its strides become (512, 1, 512, 512). Its gradient comes from a broadcast product and has
    the plain strides (512, 1, 1, 1), so under torchrun DistributedDataParallel warned on every rank at the first
    backward ("Grad strides do not match bucket view strides") and copied that gradient at every step. Only the
    convolutions' weights, whose gradients cuDNN / oneDNN return channels-last, are converted here.
    (``rescale_factors.is_contiguous()`` is True either way: it ignores the strides of size-1 dimensions.)

    :param model: any module
    :return: the same module
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)  # its weight; the bias is 1-d
    return model


def use_fast_cpu_layout(model):
    """On the CPU, store a network's convolution weights channels-last (NHWC), in place, for inference.

    oneDNN's CPU convolutions then run without reordering the activations of every layer: measured 1.25x our
    default layout's images/s with ``bench/bench_detector.py`` (2 cores, batch 4), with the same detections
    (the sums run in another order: scores move by about 1e-6). Outputs stay ordinary tensors. A model on
    another device is left as it is.

    :param model: an ``SSD`` (or any module), in eval mode
    :return: the same model
    """
    if next(model.parameters()).device.type == "cpu":
        channels_last_convolutions(model)
    return model
