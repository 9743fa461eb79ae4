"""One ranking of map positions for every removal protocol: insertion, deletion, ROAD and ROAR.

Policies (the metric and ROAR settings ``ranking``, ``reduction``, ``tie_break_seed``, recorded with
their results):

* ``ranking: pixel`` (default): one score per pixel. Maps with channels (N, C, H, W) are reduced by
  ``reduction``: ``sum`` (signed; ROAD's rule, and for the stored one-channel maps the map itself),
  ``abs_sum`` (magnitude) or ``square_sum`` (squared magnitude). The most salient pixel is the largest
  score, so with ``sum`` strongly negative evidence comes last.
* ``ranking: element`` (Hooker et al. 2019, ROAR's reference code): every (channel, pixel) element is
  ranked by its square over the flattened (C, H, W) map. Maps stored by the attribution stage are
  already reduced to (N, H, W); they are repeated over the image's channels, so the channels of one
  pixel tie and only the last pixel removed may lose part of its channels.

Ties keep index order (a stable sort, the same on every device) unless ``tie_break_seed`` is set:
then tied positions come in a random order fixed by the seed, the same for every image (ROAD's fixed
tie-break field, without changing the order of positions that differ).
Non-finite map values count as 0 (``robustxai.metrics.base.finite_maps``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

RANKINGS = ("pixel", "element")
REDUCTIONS = ("sum", "abs_sum", "square_sum")


@dataclass(frozen=True)
class RankingPolicy:
    """How maps rank positions (see the module docstring); ``asdict`` goes into provenance."""

    ranking: str = "pixel"
    reduction: str = "sum"
    tie_break_seed: int | None = None

    def __post_init__(self) -> None:
        if self.ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got '{self.ranking}'")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got '{self.reduction}'")

    def as_dict(self) -> dict:
        """The policy as plain settings."""
        return asdict(self)


def pixel_scores(maps: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """(N, H, W) float32 score per pixel of maps (N, H, W) or (N, C, H, W), channels reduced by
    ``reduction`` (one of REDUCTIONS; on one-channel maps ``sum`` is the map itself)."""
    from robustxai.metrics.base import finite_maps

    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got '{reduction}'")
    values = finite_maps(maps)
    if values.dim() == 3:
        values = values[:, None]
    if reduction == "abs_sum":
        values = values.abs()
    elif reduction == "square_sum":
        values = values.square()
    return values.sum(1)


def rank_pixels(maps: torch.Tensor, reduction: str = "sum", tie_break_seed: int | None = None,
                ranking: str = "pixel", channels: int | None = None) -> torch.Tensor:
    """Positions from the most to the least salient, int64.

    ``ranking="pixel"``: (N, H W) pixel indices of maps (N, H, W) or (N, C, H, W) (channels reduced by
    ``reduction``). ``ranking="element"``: (N, C H W) indices into the flattened (C, H, W) elements,
    scored by their square; maps (N, H, W) are repeated over ``channels`` (the images' channels).
    """
    policy = RankingPolicy(ranking, reduction, tie_break_seed)
    if policy.ranking == "pixel":
        scores = pixel_scores(maps, policy.reduction).flatten(1)
    else:
        from robustxai.metrics.base import finite_maps

        values = finite_maps(maps)
        if values.dim() == 3:
            if channels is None:
                raise ValueError("element ranking of (N, H, W) maps needs the images' channels")
            values = values[:, None].expand(-1, channels, -1, -1)
        scores = values.square().flatten(1)
    if policy.tie_break_seed is None:
        return torch.sort(scores, dim=1, descending=True, stable=True).indices
    generator = torch.Generator().manual_seed(policy.tie_break_seed)
    shuffle = torch.randperm(scores.shape[1], generator=generator).to(scores.device)
    order = torch.sort(scores[:, shuffle], dim=1, descending=True, stable=True).indices
    return shuffle[order]


def removal_count(fraction: float, positions: int) -> int:
    """How many of ``positions`` a removal of ``fraction`` takes: round(fraction x positions), half to even."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return int(round(fraction * positions))


def top_mask(order: torch.Tensor, fraction: float, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *shape) bool, True at the first ``removal_count(fraction, P)`` positions of ``order`` (N, P),
    P = prod(shape): the positions a removal of the top ``fraction`` takes."""
    n, positions = order.shape
    count = removal_count(fraction, positions)
    mask = torch.zeros(n, positions, dtype=torch.bool, device=order.device)
    mask.scatter_(1, order[:, :count], True)
    return mask.view(n, *shape)
