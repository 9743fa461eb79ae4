"""Confidence and calibration of softmax outputs (pure functions on tensors)."""
from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows of (N, K) logits whose argmax equals the (N,) label; NaN for N = 0."""
    if len(labels) == 0:
        return float("nan")
    return (logits.argmax(1) == labels).float().mean().item()


def confidences(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the predicted class, (N,) in (0, 1]."""
    return logits.float().softmax(1).max(1).values


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): sum over equal-width confidence bins of |accuracy - mean confidence|,
    weighted by the share of samples in the bin. Bins are (lo, hi]; the first also takes 0."""
    conf = confidences(logits)
    correct = (logits.argmax(1) == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        in_bin = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.float().mean() * (correct[in_bin].mean() - conf[in_bin].mean()).abs()
    return ece.item()
