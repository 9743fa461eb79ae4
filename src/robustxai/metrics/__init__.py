"""Explainability metrics: a registry from config names to metric classes.

``make_metric(name, **settings)(model, MetricBatch(...)) -> {column: (N,) tensor}``.
Adding a metric is one class plus one line in ``METRICS``. Metric modules are imported when a
metric is made, so a localisation job does not import the attribution methods.
"""
from __future__ import annotations

from robustxai.metrics.base import Metric, MetricBatch, degenerate_maps
from robustxai.registry import build, registered_class

#: config name -> "module:Class" within this package
METRICS: dict[str, str] = {
    "insertion": "causal:Insertion",
    "deletion": "causal:Deletion",
    "road": "road:ROAD",
    "pointing_game": "localisation:PointingGame",
    "energy_in_box": "localisation:EnergyInBox",
    "box_iou": "localisation:BoxIoU",
    "sanity_randomisation": "sanity:ModelRandomisation",
    "boundary_alignment": "alignment:BoundaryAlignment",
}


def metric_class(name: str) -> type[Metric]:
    """The class registered as ``name`` (imports its module); unknown names raise ValueError."""
    return registered_class(METRICS, __name__, "metric", name)


def make_metric(name: str, **settings) -> Metric:
    """Build the metric registered as ``name``; unknown names or settings raise ValueError naming them."""
    return build(metric_class(name), "metric", name, settings)


__all__ = ["METRICS", "Metric", "MetricBatch", "degenerate_maps", "make_metric", "metric_class"]
