"""Meaningful perturbation (Fong & Vedaldi 2017), with the lab's reference settings.

A mask m in [0, 1] (1 keeps a pixel, 0 replaces it with a Gaussian-blurred copy of the image) is
optimised by Adam to minimise, per image,

    l1 * sum |1 - m|  +  tv * sum |grad m|^tv_beta  +  P_target(x * m + blur(x) * (1 - m)),

P the softmax probability, with the image and its blurred copy shifted by a random jitter at every
step. The map is 1 - m, upsampled (nearest) to the image size: in [0, 1], high where deleting the
pixels destroys the class evidence. It is 2-D by construction.

Images are optimised together in batches: the loss is a sum over images and Adam is element-wise,
so each image's mask evolves exactly as if it were optimised alone; jitter offsets come from
``seed`` and are shared, so maps do not depend on batching.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from robustxai.attribution.base import AttributionMethod, target_scores

#: radii (as fractions of a 224-pixel mask, the reference code's grid 0, 5, ..., 170) tried by "circular"
CIRCLE_RADII = tuple(r / 224 for r in range(0, 175, 5))
INITS = ("circular", "ones")


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) images with std ``sigma`` pixels (reflect padding; the kernel is
    cut to fit the image, at most 2 min(H, W) - 1 wide). ``sigma <= 0`` returns the images."""
    if sigma <= 0:
        return images
    size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)
    size -= 1 - size % 2
    return gaussian_blur(images, [size, size], [sigma, sigma])


def total_variation(masks: torch.Tensor, beta: float) -> torch.Tensor:
    """sum |m[i+1, j] - m[i, j]|^beta + |m[i, j+1] - m[i, j]|^beta per mask: (N,) for (N, 1, h, w)."""
    rows = (masks[..., 1:, :] - masks[..., :-1, :]).abs().pow(beta).flatten(1).sum(1)
    cols = (masks[..., :, 1:] - masks[..., :, :-1]).abs().pow(beta).flatten(1).sum(1)
    return rows + cols


def blurred_disks(size: int, radii: torch.Tensor, sigma: float) -> torch.Tensor:
    """(R, 1, size, size) centred disks of the given radii (pixels), blurred with std ``sigma``."""
    centre = size // 2
    yy, xx = torch.meshgrid(torch.arange(size) - centre, torch.arange(size) - centre, indexing="ij")
    disks = ((xx ** 2 + yy ** 2)[None] <= radii.view(-1, 1, 1) ** 2).float()[:, None]
    return blur(disks, sigma)


class MeaningfulPerturbation(AttributionMethod):
    """Meaningful perturbation; see the module doc for the objective.

    ``mask_size`` is the side of the optimised mask (None: the image's size, as in the reference
    code at 224 px); ``blur_sigma`` and ``jitter`` are in image pixels. ``init`` "ones" starts from
    keeping everything; "circular" (the reference default) starts from the smallest blurred central
    hole whose deletion removes 99% of the score drop a full-size hole causes.
    """

    family = "perturbation"

    channel_rule = "none (the mask covers all channels)"
    signed_maps = False  # 1 - m, the mask m clamped to [0, 1]

    def __init__(self, iterations: int = 300, lr: float = 0.1, l1: float = 1e-4, tv: float = 1e-2,
                 tv_beta: float = 3.0, blur_sigma: float = 10.0, jitter: int = 4, mask_size: int | None = None,
                 init: str = "circular", seed: int = 0, batch_size: int | str = 64) -> None:
        super().__init__(batch_size)
        if init not in INITS:
            raise ValueError(f"unknown init '{init}', expected one of {INITS}")
        if iterations < 1 or jitter < 0:
            raise ValueError(f"iterations must be >= 1 and jitter >= 0, got {iterations}, {jitter}")
        self.iterations, self.lr, self.l1, self.tv, self.tv_beta = iterations, lr, l1, tv, tv_beta
        self.blur_sigma, self.jitter, self.mask_size, self.init, self.seed = blur_sigma, jitter, mask_size, init, seed

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.iterations

    def blend(self, images: torch.Tensor, blurred: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """images * M + blurred * (1 - M), M = ``masks`` (N, 1, h, w) upsampled (nearest) to the images."""
        keep = F.interpolate(masks, size=images.shape[-2:], mode="nearest")
        return blurred + keep * (images - blurred)

    def initial_masks(self, model, images, blurred, targets, size: int) -> torch.Tensor:
        """(N, 1, size, size) starting masks."""
        if self.init == "ones":
            return torch.ones(len(images), 1, size, size, device=images.device)
        holes = 1 - blurred_disks(size, torch.tensor(CIRCLE_RADII) * size, 10 * size / 224).to(images.device)
        n, r = len(images), len(holes)
        scores = torch.cat([
            target_scores(model, self.blend(images[i:i + 1].expand(r, -1, -1, -1),
                                            blurred[i:i + 1].expand(r, -1, -1, -1), holes),
                          targets[i].repeat(r), "probability")[None] for i in range(n)])
        clean = target_scores(model, images, targets, "probability")
        drop = (scores - scores[:, -1:]) / (clean - scores[:, -1]).view(-1, 1)
        below = drop < 1e-2
        first = torch.where(below.any(1), below.float().argmax(1), torch.full_like(clean, r - 1).long())
        return holes[first].clone()

    def compute(self, model, images, targets):
        maps = []
        for start in range(0, len(images), self.batch_size):
            maps.append(self.optimise(model, images[start:start + self.batch_size],
                                      targets[start:start + self.batch_size]))
        return torch.cat(maps)

    def optimise(self, model, images, targets):
        """Maps (n, H, W) of one batch of images."""
        generator = torch.Generator().manual_seed(self.seed)
        height, width = images.shape[-2:]
        size = self.mask_size or height
        blurred = blur(images, self.blur_sigma)
        pad = (0, self.jitter, 0, self.jitter)
        padded, padded_blur = (F.pad(t, pad, mode="replicate") for t in (images, blurred))
        masks = self.initial_masks(model, images, blurred, targets, size).requires_grad_(True)
        optimiser = torch.optim.Adam([masks], lr=self.lr)
        for _ in range(self.iterations):
            dy, dx = (torch.randint(0, self.jitter, (2,), generator=generator) if self.jitter else (0, 0))
            crop = (slice(None), slice(None), slice(int(dy), int(dy) + height), slice(int(dx), int(dx) + width))
            probs = model(self.blend(padded[crop], padded_blur[crop], masks)).softmax(1)
            loss = (self.l1 * (1 - masks).abs().flatten(1).sum(1) + self.tv * total_variation(masks, self.tv_beta)
                    + probs.gather(1, targets.view(-1, 1)).squeeze(1)).sum()
            (masks.grad,) = torch.autograd.grad(loss, masks)
            optimiser.step()
            with torch.no_grad():
                masks.clamp_(0, 1)
        return 1 - F.interpolate(masks.detach(), size=(height, width), mode="nearest")[:, 0]
