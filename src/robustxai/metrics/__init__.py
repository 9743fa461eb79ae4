"""Explainability metrics: a registry from config names to metric classes.

``make_metric(name, **settings)(model, MetricBatch(...)) -> {column: (N,) tensor}``.
Adding a metric is one class plus one line in ``METRICS``.
"""
from __future__ import annotations

from robustxai.metrics.alignment import BoundaryAlignment
from robustxai.metrics.base import Metric, MetricBatch, degenerate_maps
from robustxai.metrics.causal import Deletion, Insertion
from robustxai.metrics.localisation import BoxIoU, EnergyInBox, PointingGame
from robustxai.metrics.sanity import ModelRandomisation

METRICS: dict[str, type[Metric]] = {
    "insertion": Insertion,
    "deletion": Deletion,
    "pointing_game": PointingGame,
    "energy_in_box": EnergyInBox,
    "box_iou": BoxIoU,
    "sanity_randomisation": ModelRandomisation,
    "boundary_alignment": BoundaryAlignment,
}


def make_metric(name: str, **settings) -> Metric:
    """Build the metric registered as ``name``; unknown names or settings raise ValueError naming them."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}', expected one of {sorted(METRICS)}")
    try:
        return METRICS[name](**settings)
    except TypeError as error:
        raise ValueError(f"metric '{name}': {error}") from error


__all__ = ["METRICS", "Metric", "MetricBatch", "degenerate_maps", "make_metric"]
