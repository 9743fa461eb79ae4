"""Modified-backpropagation attributions, through captum: DeepLIFT (rescale rule; Shrikumar et al.
2017) and guided backpropagation (Springenberg et al. 2015). Channels are summed.

captum's hooks need the inputs of activation layers intact, so in-place activations are switched
off for the duration of a call (and restored). DeepLIFT's summation-to-delta is exact for networks
of linear layers and ReLUs; captum's max-pool rule makes it approximate where max-pooling is used.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from torch import nn

from robustxai.attribution.base import AttributionMethod
from robustxai.attribution.gradients import BASELINES, make_baseline


@contextmanager
def out_of_place(model: nn.Module):
    """Set ``inplace=False`` on every module that has the flag, restoring each one afterwards."""
    flags = {m: m.inplace for m in model.modules() if isinstance(getattr(m, "inplace", None), bool)}
    for module in flags:
        module.inplace = False
    try:
        yield model
    finally:
        for module, flag in flags.items():
            module.inplace = flag


class DeepLift(AttributionMethod):
    """DeepLIFT with the rescale rule against a black, white, grey or noise ``baseline`` (seeded)."""

    family = "gradient"

    def __init__(self, baseline: str = "black", seed: int = 0, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline '{baseline}', expected one of {BASELINES}")
        self.baseline, self.seed = baseline, seed

    def compute(self, model, images, targets):
        baselines = make_baseline(images, self.baseline, torch.Generator().manual_seed(self.seed))
        with out_of_place(model):
            explainer = CaptumDeepLift(model)
            maps = [explainer.attribute(images[i:i + self.batch_size], baselines=baselines[i:i + self.batch_size],
                                        target=targets[i:i + self.batch_size]).detach().sum(1)
                    for i in range(0, len(images), self.batch_size)]
        return torch.cat(maps)


class GuidedBackprop(AttributionMethod):
    """Guided backpropagation: gradients through ReLUs keep only positive values where the forward
    input was positive."""

    family = "gradient"

    def compute(self, model, images, targets):
        with out_of_place(model):
            explainer = CaptumGuidedBackprop(model)
            maps = [explainer.attribute(images[i:i + self.batch_size], target=targets[i:i + self.batch_size])
                    .detach().sum(1) for i in range(0, len(images), self.batch_size)]
        return torch.cat(maps)
