"""Attribution methods: a registry from config names to method classes.

``make_method(name, **settings).explain(model, images, targets) -> maps (N, H, W)``.
Adding a method is one class plus one line in ``METHODS``.
"""
from __future__ import annotations

from robustxai.attribution.base import AttributionMethod
from robustxai.attribution.boundary import BoundaryIntegratedGradients, BoundarySaliency
from robustxai.attribution.cam import GradCAM, GradCAMPlusPlus
from robustxai.attribution.counterpart import RobustCounterpart
from robustxai.attribution.lime import LIME
from robustxai.attribution.meaningful import MeaningfulPerturbation
from robustxai.attribution.gradients import Gradient, GradientShap, InputXGradient, IntegratedGradients, SmoothGrad
from robustxai.attribution.perturbation import RISE, Occlusion, RandomMap
from robustxai.attribution.propagation import DeepLift, GuidedBackprop

METHODS: dict[str, type[AttributionMethod]] = {
    "gradient": Gradient,
    "input_x_gradient": InputXGradient,
    "integrated_gradients": IntegratedGradients,
    "smoothgrad": SmoothGrad,
    "gradient_shap": GradientShap,
    "deeplift": DeepLift,
    "guided_backprop": GuidedBackprop,
    "gradcam": GradCAM,
    "gradcam_plus_plus": GradCAMPlusPlus,
    "occlusion": Occlusion,
    "rise": RISE,
    "lime": LIME,
    "meaningful_perturbation": MeaningfulPerturbation,
    "robust_counterpart": RobustCounterpart,
    "bsm": BoundarySaliency,
    "big": BoundaryIntegratedGradients,
    "random": RandomMap,
}


def make_method(name: str, **settings) -> AttributionMethod:
    """Build the method registered as ``name``; unknown names or settings raise ValueError naming them."""
    if name not in METHODS:
        raise ValueError(f"unknown attribution method '{name}', expected one of {sorted(METHODS)}")
    try:
        return METHODS[name](**settings)
    except TypeError as error:
        raise ValueError(f"method '{name}': {error}") from error


__all__ = ["METHODS", "AttributionMethod", "make_method"]
