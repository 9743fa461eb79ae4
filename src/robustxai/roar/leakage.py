"""The mask-only control of ROAR (Rong et al. 2022): a classifier that sees only the binary removal
masks. If it predicts the class well above chance, the mask's shape carries class information, and a
ROAR drop of that method may come from the retrained model reading the mask rather than from the
removed evidence.

Decision rule: the control flags leakage when the lower end of the 95% Wilson interval of the
mask-only classifier's test accuracy exceeds chance (the share of the most frequent test class) plus
``margin`` (default 0.05).

Early stop: a leak is a lower bound, so a control need not train on once its test accuracy already
clears the bar. After each epoch it checks the same rule at a stricter z (Bonferroni over the run's
epochs, ``leak_established``), which keeps the chance that any look flags a mask that does not leak
within 5 %; a mask that does not leak trains to the end, where "not leaked" needs it.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import torch


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% (default ``z``) Wilson score interval of a proportion ``correct`` / ``total``."""
    if total == 0:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def chance_level(labels: torch.Tensor) -> float:
    """The accuracy of always predicting the most frequent class of (N,) labels."""
    return torch.bincount(labels).max().item() / len(labels)


def mask_inputs(removed: torch.Tensor) -> torch.Tensor:
    """The mask-only classifier's input: removed (N, C, H, W) bool as the share of each pixel's
    channels removed, repeated over C channels (N, C, H, W) float."""
    return removed.float().mean(1, keepdim=True).expand_as(removed).contiguous()


def leakage_verdict(predictions: torch.Tensor, labels: torch.Tensor, margin: float = 0.05) -> dict:
    """accuracy, its Wilson interval (accuracy_low, accuracy_high), chance, margin and ``leaked``
    (accuracy_low > chance + margin) of a mask-only classifier's (N,) predictions."""
    correct = int((predictions == labels).sum())
    low, high = wilson_interval(correct, len(labels))
    chance = chance_level(labels)
    return {"accuracy": correct / len(labels), "accuracy_low": low, "accuracy_high": high, "chance": chance,
            "margin": margin, "images": len(labels), "leaked": bool(low > chance + margin)}


def leak_established(accuracy: float, images: int, chance: float, margin: float, looks: int) -> bool:
    """Whether a mask-only classifier's test ``accuracy`` (in [0, 1], over ``images``) already flags leakage
    when it is checked after each of ``looks`` epochs: the lower end of its Wilson interval at the one-sided
    z of 0.025 / ``looks`` (Bonferroni; 0.025 is the 95 % interval's lower tail) exceeds ``chance + margin``."""
    z = NormalDist().inv_cdf(1 - 0.025 / max(1, looks))
    low, _ = wilson_interval(round(accuracy * images), images, z)
    return low > chance + margin
