"""LIME for images (Ribeiro et al. 2016), batched over perturbations, as ``lime_image`` does it.

Each image is cut into SLIC superpixels (the lab's settings: 50 segments, compactness 30, sigma 3).
``samples`` binary vectors z (the first all ones) switch superpixels on or off; an off superpixel is
filled with its mean colour (``lime_image``'s default) or a constant ``fill``. The target's softmax
probability (or, with ``output: logit``, its logit) on every perturbed image is regressed on z by weighted ridge regression (alpha 1, with
intercept) with LIME's kernel sqrt(exp(-d^2 / width^2)), d the cosine distance from all-ones. Every
pixel gets its superpixel's coefficient: signed, in probability units, 2-D by construction.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.segmentation import slic

from robustxai.attribution.base import OUTPUTS, AttributionMethod, target_scores


def superpixels(image: torch.Tensor, segments: int, compactness: float, sigma: float) -> torch.Tensor:
    """SLIC labels (H, W) int64, numbered 0..S-1, of one (C, H, W) image in [0, 1]."""
    pixels = image.detach().permute(1, 2, 0).cpu().double().numpy()
    labels = slic(pixels, n_segments=segments, compactness=compactness, sigma=sigma, start_label=0,
                  channel_axis=-1 if pixels.shape[-1] > 1 else None)
    _, dense = np.unique(labels, return_inverse=True)  # SLIC may skip label numbers
    return torch.from_numpy(dense.reshape(labels.shape)).to(image.device)


def weighted_ridge(features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, alpha: float
                   ) -> torch.Tensor:
    """Coefficients (S,) of ridge regression with intercept and sample weights, as scikit-learn's
    ``Ridge(alpha).fit(features (M, S), targets (M,), sample_weight=weights (M,))`` computes them."""
    features, targets, weights = features.double(), targets.double(), weights.double()
    total = weights.sum()
    centred_x = features - (weights @ features) / total
    centred_y = targets - (weights @ targets) / total
    gram = centred_x.T @ (weights[:, None] * centred_x)
    gram += alpha * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram, centred_x.T @ (weights * centred_y))


class LIME(AttributionMethod):
    """LIME with SLIC superpixels; settings follow the lab's reference code (see the module doc).

    ``fill`` is "mean" (each superpixel's mean colour) or a number in [0, 1]. The ``samples``
    on/off draws come from ``seed`` once per call and are shared by all images (batch-independent).
    """

    family = "perturbation"

    channel_rule = "none (superpixels are switched off in all channels)"
    pass_kind = "forward"

    def __init__(self, samples: int = 1000, segments: int = 50, compactness: float = 30.0, sigma: float = 3.0,
                 kernel_width: float = 0.25, alpha: float = 1.0, fill: str | float = "mean",
                 output: str = "probability", seed: int = 0, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        if samples < 2:
            raise ValueError(f"samples must be >= 2, got {samples}")
        if fill != "mean" and not isinstance(fill, (int, float)):
            raise ValueError(f"fill must be 'mean' or a number, got {fill!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got '{output}'")
        self.samples, self.segments, self.compactness, self.sigma = samples, segments, compactness, sigma
        self.kernel_width, self.alpha, self.fill, self.output, self.seed = kernel_width, alpha, fill, output, seed

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        return self.samples

    def draws(self, count: int) -> torch.Tensor:
        """(samples, count) float on/off matrix; row 0 is all ones (the unperturbed image). The draws
        are made ``4 x segments`` wide and cut to ``count`` columns, so every image with up to that
        many superpixels sees the same rows."""
        generator = torch.Generator().manual_seed(self.seed)
        on = torch.randint(0, 2, (self.samples, max(count, 4 * self.segments)), generator=generator)[:, :count]
        on[0] = 1
        return on.float()

    def kernel(self, on: torch.Tensor) -> torch.Tensor:
        """LIME's sample weights (M,) from the cosine distance of each on/off row to all-ones."""
        cosine = on.sum(1) / (on.norm(dim=1) * on.shape[1] ** 0.5).clamp_min(1e-12)
        distance = 1 - cosine
        return torch.sqrt(torch.exp(-distance.pow(2) / self.kernel_width ** 2))

    def fill_image(self, image: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
        """(C, H, W) image of what each pixel shows when its superpixel is off."""
        if self.fill != "mean":
            return torch.full_like(image, float(self.fill))
        flat = labels.flatten()
        sums = torch.zeros(image.shape[0], count, device=image.device).index_add_(1, flat, image.flatten(1))
        sizes = torch.bincount(flat, minlength=count).clamp_min(1)
        return (sums / sizes)[:, flat].view_as(image)

    def compute(self, model, images, targets):
        maps = []
        for image, target in zip(images, targets):
            labels = superpixels(image, self.segments, self.compactness, self.sigma)
            count = int(labels.max()) + 1
            on = self.draws(count).to(image.device)
            background = self.fill_image(image, labels, count)
            scores = torch.empty(self.samples, device=image.device)
            for start in range(0, self.samples, self.batch_size):
                keep = on[start:start + self.batch_size][:, labels][:, None]  # (m, 1, H, W)
                perturbed = background + keep * (image - background)
                scores[start:start + len(keep)] = target_scores(model, perturbed, target.repeat(len(keep)),
                                                                self.output)
            coefficients = weighted_ridge(on, scores, self.kernel(on), self.alpha)
            maps.append(coefficients.to(images.dtype)[labels])
        return torch.stack(maps)
