"""Boundary alignment (Wang et al. 2022): how well a map points along the direction to the closest
decision boundary.

The closest boundary point x' is searched as for BSM (L2 PGD over an eps list plus a CW-style
attack, the closer successful one). The value is the cosine between the map (N, H, W) and the
channel-summed direction x - x' (away from the boundary, so a map that raises the target's evidence
the way the boundary's normal does scores +1). Images whose boundary was not found get NaN, and
``boundary_found`` is 0 for them.
"""
from __future__ import annotations

import inspect

import torch

from robustxai.attribution.boundary import closest_boundary
from robustxai.metrics.base import Metric, MetricBatch, finite_maps


class BoundaryAlignment(Metric):
    """Cosine between each map and the direction away from its closest boundary point; settings
    are ``closest_boundary``'s (``eps``, ``pgd_steps``, ``use_cw``, ``cw_steps``, ``cw_lr``, ``cw_constants``)."""

    higher_is_better = {"boundary_alignment": True}

    needs_model = True

    def __init__(self, **search_settings) -> None:
        inspect.signature(closest_boundary).bind(None, None, None, **search_settings)  # unknown keys: TypeError
        self.search_settings = search_settings

    def __call__(self, model, batch: MetricBatch):
        points, found = closest_boundary(model, batch.images, batch.targets, **self.search_settings)
        direction = (batch.images - points.detach()).sum(1).flatten(1)
        maps = finite_maps(batch.maps).flatten(1)
        cosine = torch.nn.functional.cosine_similarity(maps, direction, dim=1, eps=1e-12)
        distance = (points.detach() - batch.images).flatten(1).norm(dim=1)
        return {"boundary_alignment": torch.where(found, cosine, torch.full_like(cosine, float("nan"))),
                "boundary_distance": distance.float(), "boundary_found": found.float()}
