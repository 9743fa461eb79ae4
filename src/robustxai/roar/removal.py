"""ROAR's removal: the top fraction of each image's pixels (or elements), ranked by its map, replaced
by the train split's per-channel mean; everything else left bit-identical. Pure functions on tensors."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustxai.metrics.ranking import RankingPolicy, rank_pixels, top_mask


def channel_mean(images: torch.Tensor) -> torch.Tensor:
    """(C,) mean of images (N, C, H, W) per channel: the fill of removed pixels (the train split's)."""
    return images.double().mean((0, 2, 3)).float()


def blur_maps(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Maps (N, H, W) after a Gaussian blur of ``sigma`` pixels (kernel 2 ceil(3 sigma) + 1, edges
    replicated): the blur control, which adds no information to a map (Song et al. 2023)."""
    from robustxai.metrics.base import finite_maps
    from robustxai.metrics.causal import gaussian_kernel

    radius = max(1, math.ceil(3 * sigma))
    kernel = gaussian_kernel(2 * radius + 1, sigma).to(maps.device)[None, None]
    padded = F.pad(finite_maps(maps)[:, None], (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel)[:, 0]


def object_maps(boxes: torch.Tensor, masks: torch.Tensor | None, height: int, width: int) -> torch.Tensor:
    """(N, H, W) float32 maps of the true objects: 1 on each image's object mask (N, H, W bool, where the
    split has masks), else on its (x0, y0, x1, y1) box (N, 4, exclusive ends), 0 elsewhere; an image
    without a box (negative coordinates) gets an all-zero map. Ranked like attribution maps, they remove
    the object first: the leakage check's positive control."""
    if masks is not None:
        return masks.float()
    from robustxai.metrics.localisation import box_spans

    rows, cols = box_spans(boxes, height, width)
    return rows[:, :, None] * cols[:, None, :]


def object_share_removed(removed: torch.Tensor, objects: torch.Tensor) -> float:
    """The share of the true objects' pixels that a removal takes: removed (N, C, H, W) bool (a pixel
    counts as removed when any channel is) against object maps (N, H, W) (``object_maps``), pooled over
    images; NaN without object pixels. Near 1 at a fraction, the removal has saturated: every ranking
    that finds the object removes all of it."""
    inside = objects > 0
    total = int(inside.sum())
    return float("nan") if total == 0 else int((removed.any(1) & inside).sum()) / total


def removal_masks(maps: torch.Tensor, fraction: float, policy: RankingPolicy, channels: int) -> torch.Tensor:
    """(N, C, H, W) bool: the elements a removal of ``fraction`` takes, ranked by maps (N, H, W) under
    ``policy`` (pixel ranking removes round(fraction H W) whole pixels; element ranking
    round(fraction C H W) elements)."""
    n, h, w = maps.shape
    order = rank_pixels(maps, policy.reduction, policy.tie_break_seed, policy.ranking, channels)
    if policy.ranking == "pixel":
        return top_mask(order, fraction, (h, w))[:, None].expand(n, channels, h, w)
    return top_mask(order, fraction, (channels, h, w))


def remove_top(images: torch.Tensor, maps: torch.Tensor, fraction: float, fill: torch.Tensor,
               policy: RankingPolicy = RankingPolicy()) -> tuple[torch.Tensor, torch.Tensor]:
    """(modified images, removed) for images (N, C, H, W) and maps (N, H, W): the removed elements
    (N, C, H, W bool, ``removal_masks``) set to ``fill`` (C,), the rest untouched."""
    removed = removal_masks(maps, fraction, policy, images.shape[1])
    modified = torch.where(removed, fill.to(images).view(1, -1, 1, 1), images)
    return modified, removed
