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


def settings_for_method(metric: str, settings: dict, method: str, method_settings: dict) -> dict:
    """The settings of the metric registered as ``metric`` for scoring the maps of the attribution
    method registered as ``method`` with ``method_settings``: what the metric leaves to the maps (box
    metrics' ``rescale: auto``, also when not given) decided by whether the method declares signed maps
    (``AttributionMethod.maps_signed``); every other setting as in ``settings``. A new dict, so the
    protocol is known, and recorded, before the job runs."""
    from robustxai.attribution import method_class  # imports the method's module, not the others'

    return metric_class(metric).settings_for_maps(settings, method_class(method).maps_signed(method_settings))


__all__ = ["METRICS", "Metric", "MetricBatch", "degenerate_maps", "make_metric", "metric_class",
           "settings_for_method"]
