"""Attribution methods: a registry from config names to method classes.

``make_method(name, **settings).explain(model, images, targets) -> maps (N, H, W)``.
Adding a method is one class plus one line in ``METHODS``. Method modules are imported when a
method is made, so a job that runs one method does not pay for the others' imports (captum,
scikit-image, torchvision).
"""
from __future__ import annotations

from robustxai.attribution.base import AttributionMethod
from robustxai.registry import build, registered_class

#: config name -> "module:Class" within this package
METHODS: dict[str, str] = {
    "gradient": "gradients:Gradient",
    "input_x_gradient": "gradients:InputXGradient",
    "integrated_gradients": "gradients:IntegratedGradients",
    "smoothgrad": "gradients:SmoothGrad",
    "gradient_shap": "gradients:GradientShap",
    "deeplift": "propagation:DeepLift",
    "guided_backprop": "propagation:GuidedBackprop",
    "gradcam": "cam:GradCAM",
    "gradcam_plus_plus": "cam:GradCAMPlusPlus",
    "occlusion": "perturbation:Occlusion",
    "rise": "perturbation:RISE",
    "lime": "lime:LIME",
    "meaningful_perturbation": "meaningful:MeaningfulPerturbation",
    "robust_counterpart": "counterpart:RobustCounterpart",
    "explainer": "explainer:LearnedExplainer",
    "alignment_target": "targets:AlignmentTarget",
    "bsm": "boundary:BoundarySaliency",
    "big": "boundary:BoundaryIntegratedGradients",
    "random": "perturbation:RandomMap",
}


def method_class(name: str) -> type[AttributionMethod]:
    """The class registered as ``name`` (imports its module); unknown names raise ValueError."""
    return registered_class(METHODS, __name__, "attribution method", name)


def make_method(name: str, **settings) -> AttributionMethod:
    """Build the method registered as ``name``; unknown names or settings raise ValueError naming them."""
    return build(method_class(name), "method", name, settings)


__all__ = ["METHODS", "AttributionMethod", "make_method", "method_class"]
