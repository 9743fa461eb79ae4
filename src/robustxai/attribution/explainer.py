"""The learned explainer's maps (Zeng et al. 2021): the explainer branch's output for the image, one
forward pass and no backward. The branch is the explained model's own, or, with the ``explainer``
setting, that of another (explainer) model, as robust_counterpart borrows a twin's maps.
"""
from __future__ import annotations

import torch

from robustxai.attribution.base import AttributionMethod

EXPLAINER_ALGORITHM = "explainer"


class LearnedExplainer(AttributionMethod):
    """The branch's map (N, H, W): class-agnostic (targets are ignored) and non-negative; a branch
    with several output channels is summed over them."""

    family = "learned"
    channel_rule = "none (the branch's one-channel map; several channels are summed)"
    pass_kind = "forward"
    model_settings = ("explainer",)
    signed_maps = False  # the branch ends in a ReLU

    def __init__(self, explainer: str | None = None, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.explainer = explainer

    @classmethod
    def check_models(cls, settings, explained, needed):
        owners = needed if settings.get("explainer") else explained
        lacking = sorted(name for name, entry in owners.items() if entry.get("algorithm") != EXPLAINER_ALGORITHM)
        if lacking:
            raise ValueError(f"{lacking} have no explainer branch (algorithm: {EXPLAINER_ALGORITHM}); "
                             "restrict the method with 'models:' or name an explainer model with 'explainer:'")

    def compute(self, model, images, targets):
        owner = self.bound_model("explainer") if self.explainer else model
        with torch.no_grad():
            maps = [owner.explain(images[start:start + self.batch_size]).sum(1)
                    for start in range(0, len(images), self.batch_size)]
        return torch.cat(maps)
