"""Whether a retraining (a ROAR cell, its anchor or a mask-only control) had converged when it stopped.

A ROAR cell reads "information removed" from a low final accuracy; a retraining that was still
learning when its schedule ended reads the same, so its drop measures the recipe, not the removal.
The anchor cannot show this: unmodified images are learnt early, modified ones late (on the default
study's digits, gradient at 0.05: 0.56 after 12 epochs, 0.91 after 24, same lr and batch). The check
reads the history every retraining already records: the gain in training accuracy over the last
quarter of its epochs. A cosine schedule flattens every curve near its end, so the quarter (not the
last epoch) is what is compared. A run that never left the plateau climbs slowly all the way (default
study, smoothgrad at 0.1, one seed of three at 24 epochs: training accuracy 0.10 -> 0.19, test 0.105,
the other seeds 0.69-0.72): its late gain is small in absolute terms but as large as its average, so
a late gain above ``NOISE_GAIN`` that has not slowed down counts as still learning too.

A retraining under the plateau schedule (``robustxai.training.loop``) that stopped because its training
accuracy levelled off (its ``plateau_epoch``) converged by that schedule's own, stricter rule: its final
decay adds the jump that annealing always gives (random at 0.1: +0.053 over the last quarter of 20 epochs),
which is not the climb this check looks for.
"""
from __future__ import annotations

import math

#: the largest gain in training accuracy over the last quarter of the epochs of a converged retraining
#: (default study, 24-epoch recipe: anchor 0.02, gradient at 0.05 0.03; 12 epochs: gradient 0.12)
CONVERGED_GAIN = 0.05
#: the share of the epochs, at the end, over which the gain is measured
LATE_SHARE = 0.25
#: late gains up to this are noise (a classifier of random masks creeps up by ~0.015 memorising them)
NOISE_GAIN = 0.02


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


def converged(history: list[dict], max_gain: float = CONVERGED_GAIN, noise_gain: float = NOISE_GAIN) -> bool:
    """Whether a retraining had stopped learning: its training accuracy rose by at most ``max_gain`` over its
    last quarter (``late_train_gain``) and, where that rise exceeds ``noise_gain``, more slowly than its average
    over as many epochs (a curve that never slowed down, e.g. one crawling up from chance, is still learning);
    False for an empty history."""
    gain = late_train_gain(history)
    if math.isnan(gain) or gain > max_gain:
        return False
    if gain <= noise_gain or len(history) < 2:
        return True
    back = max(1, math.ceil(LATE_SHARE * len(history)))
    average = (history[-1]["train_accuracy"] - history[0]["train_accuracy"]) / (len(history) - 1) * back
    return gain < average


def retraining_converged(history: list[dict], plateau_epoch: int | None = None) -> bool:
    """Whether one retraining had converged: True where the plateau schedule found its plateau
    (``plateau_epoch``, an epoch count; None or NaN where it did not or another schedule ran), else
    ``converged`` of its ``history``."""
    if plateau_epoch is not None and not (isinstance(plateau_epoch, float) and math.isnan(plateau_epoch)):
        return True
    return converged(history)
