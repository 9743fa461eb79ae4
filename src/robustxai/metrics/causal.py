"""Insertion and deletion (Petsiuk et al. 2018, RISE section 4.1), batched over whole curves.

Pixels are ranked by the map (``robustxai.metrics.ranking.rank_pixels``: the signed map, ties in
index order, unless the ``reduction`` / ``tie_break_seed`` settings say otherwise). Deletion starts from the image and replaces
``ceil(H W / steps)`` pixels per step, most salient first, with a substrate (the model's
normalisation mean, i.e. zero in normalised space, by default); insertion starts from a blurred copy
(RISE's own kernel, ``gkern(11, 5)``: see ``rise_kernel``; zero padding in normalised space) and puts
the image's pixels back in the same order. The score after each step is the softmax probability of
the class predicted on the clean image; the AUC is the trapezoid rule on [0, 1]: (sum - s_0 / 2 - s_n / 2) / n.
All (image, step) inputs go through the model ``batch_size`` at a time; "auto" (the default) uses
the fastest forward batch size measured on the model and device (``robustxai.tuning``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustxai.metrics.base import Metric, MetricBatch
from robustxai.metrics.ranking import RankingPolicy, rank_pixels
from robustxai.tuning import model_memory_format, tuned_batch_size


def normalisation_mean(model: nn.Module, channels: int) -> torch.Tensor:
    """(C,) the mean of the model's ``Normalize`` layer (zero in its normalised space), else 0.5."""
    for module in model.modules():
        mean = getattr(module, "mean", None)
        if isinstance(mean, torch.Tensor) and mean.numel() == channels:
            return mean.detach().flatten()
    return torch.full((channels,), 0.5)


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(size, size) Gaussian weights summing to 1, centred."""
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    weights = torch.exp(-axis.pow(2) / (2 * sigma ** 2))
    kernel = weights[:, None] * weights[None, :]
    return kernel / kernel.sum()


def rise_kernel(size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """(size, size) float32: RISE's ``gkern(size, sigma)`` (eclique/RISE evaluation.py), a centred delta
    filtered by ``scipy.ndimage.gaussian_filter(delta, sigma)``: the 1-D Gaussian truncated at 4 sigma,
    normalised, run along each axis with 'reflect' edges, so the tails that pass the kernel's edge
    fold back in and the kernel is flatter than a sampled ``size`` x ``size`` Gaussian. Built here
    with numpy, the same as scipy's to float rounding (tested), without importing scipy."""
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate=4.0
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / sigma ** 2 * offsets ** 2)
    weights /= weights.sum()
    delta = np.zeros(size)
    delta[size // 2] = 1.0
    # numpy's "symmetric" padding is scipy's "reflect" (d c b a | a b c d | d c b a), repeated as needed
    line = np.correlate(np.pad(delta, radius, mode="symmetric"), weights, mode="valid")
    return torch.from_numpy(np.outer(line, line).astype(np.float32))


def blurred_start(images: torch.Tensor, mean: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion start: each channel of (images - mean) convolved with ``rise_kernel(size,
    sigma)`` with zero padding (``size // 2``), plus mean (so padding is the mean colour, as RISE's zero
    padding of normalised images is)."""
    c = images.shape[1]
    kernel = rise_kernel(size, sigma).to(images)[None, None].expand(c, 1, size, size)
    centre = mean.to(images).view(1, c, 1, 1)
    return F.conv2d(images - centre, kernel, padding=size // 2, groups=c) + centre


def step_pixels(height: int, width: int, steps: int) -> int:
    """Pixels changed per step: ceil(H W / steps)."""
    return math.ceil(height * width / steps)


@torch.no_grad()
def causal_curves(model: nn.Module, start: torch.Tensor, finish: torch.Tensor, order: torch.Tensor,
                  targets: torch.Tensor, steps: int, batch_size: int = 256) -> torch.Tensor:
    """Scores (N, n + 1), n = ceil(H W / step_pixels): at step k the first k * step_pixels pixels of
    ``order`` (N, H W) show ``finish`` (N, C, H, W), the rest ``start``; score = softmax probability
    of ``targets`` (N,)."""
    n, c, h, w = start.shape
    per_step = step_pixels(h, w, steps)
    count = math.ceil(h * w / per_step)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))
    rank = rank.view(n, 1, h, w)
    layout = model_memory_format(model)  # inputs stored like the weights skip a conversion per layer
    pairs = torch.cartesian_prod(torch.arange(n), torch.arange(count + 1)).to(start.device)
    scores = torch.empty(n, count + 1, device=start.device)
    for first in range(0, len(pairs), batch_size):
        image, step = pairs[first:first + batch_size].unbind(1)
        shown = rank[image] < (step * per_step).view(-1, 1, 1, 1)
        inputs = torch.where(shown, finish[image], start[image]).contiguous(memory_format=layout)
        probs = model(inputs).softmax(1)
        scores[image, step] = probs.gather(1, targets[image].view(-1, 1)).squeeze(1)
    return scores


def curve_auc(scores: torch.Tensor) -> torch.Tensor:
    """(N,) trapezoid area under (N, n + 1) curves sampled evenly on [0, 1]."""
    n = scores.shape[1] - 1
    return (scores.sum(1) - scores[:, 0] / 2 - scores[:, -1] / 2) / n


class _CausalMetric(Metric):
    needs_model = True
    inputs_in_model_layout = True
    mode = ""

    def __init__(self, steps: int = 224, batch_size: int | str = "auto", blur_size: int = 11,
                 blur_sigma: float = 5.0, reduction: str = "sum", tie_break_seed: int | None = None) -> None:
        self.ranking = RankingPolicy("pixel", reduction, tie_break_seed)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not (isinstance(blur_size, int) and blur_size >= 1 and blur_size % 2 == 1):
            raise ValueError(f"blur_size must be an odd integer >= 1, got {blur_size!r}")
        if not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be > 0, got {blur_sigma!r}")
        if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch_size!r}")
        self.steps, self.batch_size, self.blur_size, self.blur_sigma = steps, batch_size, blur_size, blur_sigma

    def endpoints(self, model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(start, finish) images of the curve."""
        raise NotImplementedError

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.steps + 1

    def tune(self, model: nn.Module, image_shape: tuple[int, ...], device: torch.device, images: int) -> None:
        """Resolve ``batch_size="auto"`` for a job that scores ``images`` images ((steps + 1) forward
        passes each; ``robustxai.tuning.tuned_batch_size``); a no-op for an integer batch size."""
        if self.batch_size == "auto":
            self.batch_size = tuned_batch_size(model, image_shape, "forward", device,
                                               images * self.inputs_per_image(image_shape),
                                               inputs_in_model_layout=self.inputs_in_model_layout)

    def __call__(self, model, batch: MetricBatch):
        start, finish = self.endpoints(model, batch.images)
        self.tune(model, tuple(start.shape[1:]), start.device, len(start))
        order = rank_pixels(batch.maps, self.ranking.reduction, self.ranking.tie_break_seed)
        scores = causal_curves(model, start, finish, order, batch.targets, self.steps, self.batch_size)
        return {self.mode: curve_auc(scores), f"{self.mode}_start": scores[:, 0], f"{self.mode}_end": scores[:, -1]}


class Deletion(_CausalMetric):
    """Deletion AUC (lower = better): salient pixels first are replaced by the substrate."""

    higher_is_better = {"deletion": False}

    mode = "deletion"

    def endpoints(self, model, images):
        mean = normalisation_mean(model, images.shape[1]).to(images)
        return images, mean.view(1, -1, 1, 1).expand_as(images)


class Insertion(_CausalMetric):
    """Insertion AUC (higher = better): salient pixels first are put back into a blurred copy (RISE's
    ``gkern(blur_size, blur_sigma)``). ``insertion_start_above_clean`` is 1.0 where the model is more
    confident of the class on the blurred start than on the clean image (``insertion_start`` >
    ``insertion_end``): the curve then falls as pixels come back, and its AUC says more about the blur
    than about the map."""

    higher_is_better = {"insertion": True}

    mode = "insertion"

    def endpoints(self, model, images):
        mean = normalisation_mean(model, images.shape[1])
        return blurred_start(images, mean, self.blur_size, self.blur_sigma), images

    def __call__(self, model, batch: MetricBatch):
        values = super().__call__(model, batch)
        values["insertion_start_above_clean"] = (values["insertion_start"] > values["insertion_end"]).float()
        return values
