"""Model cost: parameter count and multiply-accumulates (MACs) per image."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass on a single (C, H, W) image.

    Counted by torch's FlopCounterMode (convolutions, matrix products), which reports 2 FLOPs per MAC;
    element-wise work (normalisation, activations, BN in eval mode) is not counted, as is usual.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *image_shape), device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
