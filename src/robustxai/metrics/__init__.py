"""Explainability metrics: a registry from config names to metric classes.

``make_metric(name, **settings)(model, MetricBatch(...)) -> {column: (N,) tensor}``.
Adding a metric is one class plus one line in ``METRICS``. Metric modules are imported when a
metric is made, so a localisation job does not import the attribution methods.
"""
from __future__ import annotations

import importlib

from robustxai.metrics.base import Metric, MetricBatch, degenerate_maps

#: config name -> "module:Class" within this package
METRICS: dict[str, str] = {
    "insertion": "causal:Insertion",
    "deletion": "causal:Deletion",
    "pointing_game": "localisation:PointingGame",
    "energy_in_box": "localisation:EnergyInBox",
    "box_iou": "localisation:BoxIoU",
    "sanity_randomisation": "sanity:ModelRandomisation",
    "boundary_alignment": "alignment:BoundaryAlignment",
}


def metric_class(name: str) -> type[Metric]:
    """The class registered as ``name`` (imports its module); unknown names raise ValueError."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}', expected one of {sorted(METRICS)}")
    module, cls = METRICS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_metric(name: str, **settings) -> Metric:
    """Build the metric registered as ``name``; unknown names or settings raise ValueError naming them."""
    cls = metric_class(name)
    try:
        return cls(**settings)
    except TypeError as error:
        raise ValueError(f"metric '{name}': {error}") from error


__all__ = ["METRICS", "Metric", "MetricBatch", "degenerate_maps", "make_metric", "metric_class"]
