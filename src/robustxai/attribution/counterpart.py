"""Robust-counterpart attributions (Zeng et al. 2021): the map of one model's prediction taken from
another model, typically its adversarially trained twin (e.g. SmoothGrad of the robust model).

The counterpart model is declared by the ``counterpart`` setting and bound by the caller (the workflow
loads it from its checkpoint); the explained model only supplies the targets. The channel rule is the
base method's.
"""
from __future__ import annotations

from robustxai.attribution.base import AttributionMethod


#: the base method when the settings name none
DEFAULT_BASE = "smoothgrad"


class RobustCounterpart(AttributionMethod):
    """``base`` (a registered method name, with ``base_settings``) applied to the bound counterpart model;
    its maps are signed where the base method's are."""

    model_settings = ("counterpart",)

    def __init__(self, counterpart: str, base: str = DEFAULT_BASE, base_settings: dict | None = None,
                 batch_size: int | str = 256) -> None:
        from robustxai.attribution import make_method  # the registry imports this module

        if base == "robust_counterpart":
            raise ValueError("robust_counterpart cannot use itself as its base method")
        self.counterpart, self.base, self.base_settings = counterpart, base, dict(base_settings or {})
        self._base = make_method(base, **{"batch_size": batch_size, **self.base_settings})
        super().__init__(batch_size)  # sets (and checks) the base method's batch size
        self.channel_rule, self.pass_kind, self.family = self._base.channel_rule, self._base.pass_kind, self._base.family
        self.signed_maps = self._base.maps_signed(self.base_settings)

    @classmethod
    def maps_signed(cls, settings):
        """The base method's answer for its ``base_settings``."""
        from robustxai.attribution import method_class

        return method_class(settings.get("base", DEFAULT_BASE)).maps_signed(settings.get("base_settings") or {})

    @property
    def batch_size(self) -> int | str:
        """The base method's batch size (tuned and halved there)."""
        return self._base.batch_size

    @batch_size.setter
    def batch_size(self, value: int | str) -> None:
        self._base.batch_size = value

    def explain(self, model, images, targets):
        """The base method's maps on the counterpart model (which it tunes its batch size on)."""
        return self.compute(model, images, targets)

    def compute(self, model, images, targets):
        return self._base.explain(self.bound_model("counterpart"), images, targets)

    def per_image_extras(self):
        return self._base.per_image_extras()
