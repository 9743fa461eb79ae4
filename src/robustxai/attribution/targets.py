"""Target maps of explainer models (Zeng et al. 2021, Eq. 4-5): the "robust attribution" g(f', x),
SmoothGrad of a model (the robust twin f', or a standard model for the paper's ablation) for the
true label, kept as a magnitude map that the explainer branch's non-negative output can match.

Our reading (ambiguity A5 in shared/reference/explainer-and-faithfulness.md): |SmoothGrad| reduced
over channels, then normalised per image so that lambda = 0.35 weighs an O(1) map. The reduction and
the normaliser are settings, recorded with the method's settings in every shard.
"""
from __future__ import annotations

import torch

from robustxai.attribution.gradients import SmoothGrad

#: (N, C, H, W) per-channel attributions -> (N, H, W) magnitude
REDUCTIONS = {
    "abs_mean": lambda a: a.abs().mean(1),
    "abs_sum": lambda a: a.abs().sum(1),
    "abs_max": lambda a: a.abs().amax(1),
    "square_mean": lambda a: a.pow(2).mean(1),
}
NORMALISERS = ("max", "minmax", "none")


def normalise_per_image(maps: torch.Tensor, normaliser: str) -> torch.Tensor:
    """(N, H, W) maps scaled per image: "max" divides by the map's maximum, "minmax" maps [min, max]
    to [0, 1], "none" keeps them; a constant map (nothing to scale) becomes zeros under both scalings."""
    if normaliser == "none":
        return maps
    if normaliser not in NORMALISERS:
        raise ValueError(f"normaliser must be one of {NORMALISERS}, got '{normaliser}'")
    flat = maps.flatten(1)
    low = flat.amin(1) if normaliser == "minmax" else torch.zeros(len(maps), dtype=maps.dtype, device=maps.device)
    span = (flat.amax(1) - low).view(-1, 1, 1)
    return torch.where(span > 0, (maps - low.view(-1, 1, 1)) / span.clamp_min(torch.finfo(maps.dtype).tiny),
                       torch.zeros_like(maps))


class AlignmentTarget(SmoothGrad):
    """SmoothGrad (``samples`` noisy copies, noise std ``noise`` x the image's value range) reduced over
    channels by ``reduction`` (abs_mean, abs_sum, abs_max, square_mean) and scaled per image by
    ``normaliser`` (max, minmax, none). Paper settings: 50 samples, 0.15."""

    signed_maps = False  # a magnitude, scaled by a positive factor

    def __init__(self, samples: int = 50, noise: float = 0.15, reduction: str = "abs_mean", normaliser: str = "max",
                 seed: int = 0, batch_size: int | str = 256) -> None:
        super().__init__(samples=samples, noise=noise, seed=seed, batch_size=batch_size)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {sorted(REDUCTIONS)}, got '{reduction}'")
        if normaliser not in NORMALISERS:
            raise ValueError(f"normaliser must be one of {NORMALISERS}, got '{normaliser}'")
        self.reduction, self.normaliser = reduction, normaliser
        self.channel_rule = f"{reduction} over channels, then per-image {normaliser} scaling"

    def compute(self, model, images, targets):
        magnitude = REDUCTIONS[self.reduction](self.channel_attributions(model, images, targets))
        return normalise_per_image(magnitude, self.normaliser)
