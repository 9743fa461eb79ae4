"""Whether a retraining (a ROAR cell, its anchor or a mask-only control) had converged when it stopped.

A ROAR cell reads "information removed" from a low final accuracy; a retraining that was still
learning when its schedule ended reads the same, so its drop measures the recipe, not the removal.
The anchor cannot show this: unmodified images are learnt early, modified ones late (on the default
study's digits, gradient at 0.05: 0.56 after 12 epochs, 0.91 after 24, same lr and batch). The check
reads the history every retraining already records: the gain in training accuracy over the last
quarter of its epochs. A cosine schedule flattens every curve near its end, so the quarter (not the
last epoch) is what is compared.
"""
from __future__ import annotations

import math

#: the largest gain in training accuracy over the last quarter of the epochs of a converged retraining
#: (default study, 24-epoch recipe: anchor 0.02, gradient at 0.05 0.03; 12 epochs: gradient 0.12)
CONVERGED_GAIN = 0.05
#: the share of the epochs, at the end, over which the gain is measured
LATE_SHARE = 0.25


def late_train_gain(history: list[dict], share: float = LATE_SHARE) -> float:
    """Final training accuracy minus the training accuracy at the start of the last ``share`` of the epochs
    (the epoch ``ceil(share * epochs)`` before the last; accuracies in [0, 1]) of one retraining's
    ``history`` (rows with ``train_accuracy``, in epoch order). NaN for an empty history; with one epoch,
    that epoch's accuracy minus chance is unknown, so the gain is the accuracy itself (never converged)."""
    if not history:
        return math.nan
    accuracies = [row["train_accuracy"] for row in history]
    back = max(1, math.ceil(share * len(accuracies)))
    start = accuracies[-1 - back] if back < len(accuracies) else 0.0
    return accuracies[-1] - start


def converged(history: list[dict], max_gain: float = CONVERGED_GAIN) -> bool:
    """Whether a retraining's training accuracy rose by at most ``max_gain`` over its last quarter
    (``late_train_gain``); False for an empty history."""
    gain = late_train_gain(history)
    return not math.isnan(gain) and gain <= max_gain
