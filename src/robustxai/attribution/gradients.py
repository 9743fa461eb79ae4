"""Gradient-family attributions: gradient, input x gradient, integrated gradients, SmoothGrad,
GradientSHAP. All take the gradient of the target class's logit and sum the channels of their
(N, C, H, W) attribution into the (N, H, W) map (signed; completeness is kept).

Random draws (noise, noise baselines, path points) are drawn once per call from the method's seed
and shared by all images, so an image's map does not depend on which batch it is explained in."""
from __future__ import annotations

import torch
from torch import nn

from robustxai.attribution.base import AttributionMethod, input_gradients, summed_input_gradients

BASELINES = ("black", "white", "grey", "noise")


def make_baseline(images: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A baseline image per input, shaped like ``images``: black (0), white (1), grey (0.5) or uniform noise."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "white":
        return torch.ones_like(images)
    if kind == "grey":
        return torch.full_like(images, 0.5)
    if kind == "noise":  # one noise image, shared by all inputs (batch-independent maps)
        return torch.rand(images.shape[1:], generator=generator, dtype=images.dtype).to(images.device).expand_as(images)
    raise ValueError(f"unknown baseline '{kind}', expected one of {BASELINES}")


class Gradient(AttributionMethod):
    """Vanilla gradient (Simonyan et al. 2014): d logit / d x, channels summed (signed)."""

    family = "gradient"

    def compute(self, model, images, targets):
        return input_gradients(model, images, targets, self.batch_size).sum(1)


class InputXGradient(AttributionMethod):
    """x * d logit / d x (Shrikumar et al. 2016), channels summed."""

    family = "gradient"

    def compute(self, model, images, targets):
        return (images * input_gradients(model, images, targets, self.batch_size)).sum(1)


class IntegratedGradients(AttributionMethod):
    """Integrated gradients (Sundararajan et al. 2017), channels summed.

    (x - b) * integral_0^1 grad(b + a (x - b)) da by the trapezoid rule over ``steps`` intervals
    (steps + 1 gradient evaluations). ``baseline`` is black, white, grey or noise; with noise the map
    is averaged over ``trials`` baselines (seeded).
    """

    family = "gradient"

    def __init__(self, steps: int = 50, baseline: str = "black", trials: int = 1, seed: int = 0,
                 batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        if steps < 1 or trials < 1:
            raise ValueError(f"steps and trials must be >= 1, got {steps}, {trials}")
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline '{baseline}', expected one of {BASELINES}")
        self.steps, self.baseline, self.trials, self.seed = steps, baseline, trials, seed

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return (self.steps + 1) * (self.trials if self.baseline == "noise" else 1)

    def attribute(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                  baseline: torch.Tensor) -> torch.Tensor:
        """Per-channel IG (N, C, H, W) against a given baseline (N, C, H, W); the path points are built
        one batch at a time (``summed_input_gradients``)."""
        alphas = torch.linspace(0, 1, self.steps + 1, device=images.device, dtype=images.dtype)
        weights = torch.full_like(alphas, 1.0 / self.steps)
        weights[[0, -1]] /= 2
        difference = images - baseline
        average = summed_input_gradients(
            model, images, targets, len(alphas),
            lambda rows, draws: baseline[rows] + alphas[draws].view(-1, 1, 1, 1) * difference[rows],
            self.batch_size, weigh=lambda grads, rows, draws: grads * weights[draws].view(-1, 1, 1, 1))
        return difference * average

    def compute(self, model, images, targets):
        generator = torch.Generator().manual_seed(self.seed)
        total = torch.zeros(images.shape[0], *images.shape[2:], device=images.device, dtype=images.dtype)
        trials = self.trials if self.baseline == "noise" else 1
        for _ in range(trials):
            total += self.attribute(model, images, targets, make_baseline(images, self.baseline, generator)).sum(1)
        return total / trials


class SmoothGrad(AttributionMethod):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies, channels
    summed. Noise std = ``noise`` x (max - min) of each image (0.15 as in the lab's reference code)."""

    family = "gradient"

    def __init__(self, samples: int = 50, noise: float = 0.15, seed: int = 0, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.samples, self.noise, self.seed = samples, noise, seed

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.samples

    def channel_attributions(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The averaged gradients per channel (N, C, H, W), before the channel rule; the noisy copies are
        built one batch at a time (``summed_input_gradients``)."""
        generator = torch.Generator().manual_seed(self.seed)
        n, s = len(images), self.samples
        spread = (images.flatten(1).amax(1) - images.flatten(1).amin(1)).view(n, 1, 1, 1) * self.noise
        noise = torch.randn((s, *images.shape[1:]), generator=generator, dtype=images.dtype).to(images.device)
        total = summed_input_gradients(model, images, targets, s,
                                       lambda rows, draws: images[rows] + noise[draws] * spread[rows],
                                       self.batch_size)
        return total / s

    def compute(self, model, images, targets):
        return self.channel_attributions(model, images, targets).sum(1)


class GradientShap(AttributionMethod):
    """GradientSHAP (Lundberg & Lee 2017; captum's estimator), channels summed: the mean over
    ``samples`` of grad(b + a (x + e - b)) * (x - b), with baseline b (black or noise), a ~ U(0, 1)
    and Gaussian input noise e of std ``noise`` (0 by default)."""

    family = "gradient"

    def __init__(self, samples: int = 50, baseline: str = "noise", noise: float = 0.0, seed: int = 0,
                 batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline '{baseline}', expected one of {BASELINES}")
        self.samples, self.baseline, self.noise, self.seed = samples, baseline, noise, seed

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.samples

    def compute(self, model, images, targets):
        generator = torch.Generator().manual_seed(self.seed)
        s = self.samples
        shape, options = (s, *images.shape[1:]), {"dtype": images.dtype}
        # s draws of (baseline, alpha, noise), shared by every image: input k of image i uses draw k.
        if self.baseline == "noise":
            baselines = torch.rand(shape, generator=generator, **options)
        else:
            baselines = make_baseline(torch.empty(shape, **options), self.baseline)
        alphas = torch.rand((s, 1, 1, 1), generator=generator, **options)
        noise = torch.randn(shape, generator=generator, **options) * self.noise
        baselines, alphas, noise = (t.to(images.device) for t in (baselines, alphas, noise))
        total = summed_input_gradients(
            model, images, targets, s,
            lambda rows, draws: baselines[draws] + alphas[draws] * (images[rows] + noise[draws] - baselines[draws]),
            self.batch_size, weigh=lambda grads, rows, draws: grads * (images[rows] - baselines[draws]))
        return (total / s).sum(1)
