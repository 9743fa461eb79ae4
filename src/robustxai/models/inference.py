"""Batched inference helpers shared by training, evaluation and later stages."""
from __future__ import annotations

import torch
from torch import nn


def default_device() -> torch.device:
    """The job's device: a free GPU claimed from the pool (``robustxai.devices``), else the CPU."""
    from robustxai.devices import claim_device

    return claim_device()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits (N, K) on the CPU for images (N, C, H, W) in [0, 1], in eval mode, ``batch_size`` at a time."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outputs = [model(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)
