"""Perturbation attributions: occlusion (Zeiler & Fergus 2014) and RISE (Petsiuk et al. 2018).

Both are 2-D by construction (whole pixels are perturbed across all channels) and batched over
perturbations.
"""
from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F

from robustxai.attribution.base import OUTPUTS, AttributionMethod, target_scores


class Occlusion(AttributionMethod):
    """Slide a ``window`` x ``window`` patch of value ``fill`` with ``stride``; a pixel's attribution is
    the mean, over the windows covering it, of f(x) - f(occluded x), f = target ``output``
    (logit or probability). Pixels no window covers get 0 (as in captum)."""

    family = "perturbation"

    channel_rule = "none (pixels are occluded in all channels)"
    pass_kind = "forward"

    def __init__(self, window: int = 8, stride: int = 4, fill: float = 0.0, output: str = "logit",
                 batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got '{output}'")
        self.window, self.stride, self.fill, self.output = window, stride, fill, output

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        height, width = image_shape[-2:]
        return (len(range(0, height - self.window + 1, self.stride)) * len(range(0, width - self.window + 1, self.stride))
                + 1)

    def window_masks(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(P, H, W) float masks, 1 inside each window position."""
        rows = range(0, height - self.window + 1, self.stride)
        cols = range(0, width - self.window + 1, self.stride)
        masks = torch.zeros(len(rows) * len(cols), height, width, device=device)
        for k, (r, c) in enumerate((r, c) for r in rows for c in cols):
            masks[k, r:r + self.window, c:c + self.window] = 1
        return masks

    def compute(self, model, images, targets):
        n, _, h, w = images.shape
        masks = self.window_masks(h, w, images.device)
        p = len(masks)
        clean = target_scores(model, images, targets, self.output)
        drops = torch.empty(n, p, device=images.device)
        flat = [(i, k) for i in range(n) for k in range(p)]
        for start in range(0, len(flat), self.batch_size):
            index = torch.tensor(flat[start:start + self.batch_size], device=images.device)
            image_idx, mask_idx = index[:, 0], index[:, 1]
            m = masks[mask_idx][:, None]
            occluded = images[image_idx] * (1 - m) + self.fill * m
            drops[image_idx, mask_idx] = clean[image_idx] - target_scores(model, occluded, targets[image_idx], self.output)
        coverage = masks.sum(0)
        total = torch.einsum("np,phw->nhw", drops, masks)
        return torch.where(coverage > 0, total / coverage.clamp_min(1), torch.zeros_like(total))


def rise_masks(count: int, cells: int, p_keep: float, height: int, width: int, seed: int) -> torch.Tensor:
    """RISE masks (count, H, W) in [0, 1], as in the paper's code: a Bernoulli(p_keep) grid of
    cells x cells, bilinearly upsampled to (cells + 1) * cell size, randomly shifted by up to one cell."""
    generator = torch.Generator().manual_seed(seed)
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    grid = (torch.rand(count, 1, cells, cells, generator=generator) < p_keep).float()
    up = F.interpolate(grid, size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear",
                       align_corners=False)
    dy = torch.randint(0, cell_h, (count,), generator=generator)
    dx = torch.randint(0, cell_w, (count,), generator=generator)
    masks = torch.stack([up[i, 0, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(count)])
    return masks.clamp_(0, 1)  # bilinear rounding can overshoot 1 by an ulp


class RISE(AttributionMethod):
    """RISE: sum_i P_target(x * M_i) M_i / (N p_keep), P = softmax, with N seeded masks generated once
    per image size and reused for every image and batch."""

    family = "perturbation"

    channel_rule = "none (masks cover all channels)"
    pass_kind = "forward"
    signed_maps = False  # probabilities times masks in [0, 1]

    def __init__(self, masks: int = 4000, cells: int = 7, p_keep: float = 0.5, seed: int = 0,
                 batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.masks, self.cells, self.p_keep, self.seed = masks, cells, p_keep, seed
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.masks

    def mask_set(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The method's (N, H, W) masks for this image size (generated on first use)."""
        if (height, width) not in self._cache:
            self._cache[(height, width)] = rise_masks(self.masks, self.cells, self.p_keep, height, width, self.seed)
        return self._cache[(height, width)].to(device)

    def compute(self, model, images, targets):
        masks = self.mask_set(*images.shape[-2:], images.device)
        saliency = torch.zeros(images.shape[0], *images.shape[-2:], device=images.device)
        for i, (image, target) in enumerate(zip(images, targets)):
            for start in range(0, len(masks), self.batch_size):
                m = masks[start:start + self.batch_size]
                probs = target_scores(model, image[None] * m[:, None], target.repeat(len(m)), "probability")
                saliency[i] += torch.einsum("m,mhw->hw", probs, m)
        return saliency / (len(masks) * self.p_keep)


class RandomMap(AttributionMethod):
    """Baseline: i.i.d. uniform [0, 1) values from a generator seeded by ``seed`` and the image's
    content, so an image gets the same map in any batch."""

    family = "baseline"

    channel_rule = "none"
    pass_kind = "forward"
    signed_maps = False  # uniform [0, 1)

    def __init__(self, seed: int = 0, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.seed = seed

    def compute(self, model, images, targets):
        maps = []
        for image in images:
            digest = zlib.crc32(image.detach().cpu().numpy().tobytes(), self.seed & 0xFFFFFFFF)
            generator = torch.Generator().manual_seed(digest)
            maps.append(torch.rand(image.shape[-2:], generator=generator))
        return torch.stack(maps).to(images.device)
