"""Boundary attributions (Wang, Fredrikson & Datta, ICML 2022): explain x through its closest
decision-boundary point x'.

The search follows the authors' code: untargeted L2 PGD for each eps of an increasing list, keeping
per image the first (smallest) eps that flips the class; an L2 Carlini-Wagner-style attack; and per
image the closer of the two successful points. Where neither succeeds, the smallest-eps PGD point is
kept and the image counts as a failure. Unlike foolbox's PGD, ours starts at x rather than at a random
point of the ball, so a map does not depend on which batch its image is in. eps are in [0, 1] pixel units (the authors' are in
ImageNet-normalised units, about 4.4x larger).

- BSM(x) = d logit_y / dx evaluated at x' (channels summed);
- BIG(x) = integrated gradients of logit_y from baseline x' to x (channels summed).
Both record per image the boundary distance ||x' - x||_2 and whether the class flipped.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustxai.attribution.base import AttributionMethod, input_gradients
from robustxai.attribution.gradients import IntegratedGradients
from robustxai.training.attacks import pgd_attack

DEFAULT_EPS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.1, 1.5, 2.0)


def _flipped(model: nn.Module, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(points).argmax(1) != targets


def pgd_boundary(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, eps_list, steps: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the L2 PGD point of the smallest eps that flips ``targets`` (else of the smallest eps).

    Returns points (N, C, H, W) and success (N,) bool.
    """
    points, success = None, torch.zeros(len(images), dtype=torch.bool, device=images.device)
    for eps in sorted(eps_list):
        candidate = pgd_attack(model, images, targets, eps=eps, steps=steps, norm="l2", random_init=False)
        flipped = _flipped(model, candidate, targets)
        take = flipped & ~success if points is not None else torch.ones_like(success)
        points = candidate if points is None else torch.where(take.view(-1, 1, 1, 1), candidate, points)
        success |= flipped
        if success.all():
            break
    return points, success


def cw_boundary(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, lr: float,
                constants) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 Carlini-Wagner-style search: minimise ||x' - x||^2 + c * max(z_y - max_{j != y} z_j, 0) over
    x' = (tanh(w) + 1) / 2 with Adam, for each c in ``constants``; keep per image the closest point
    that flips the class. Returns points (N, C, H, W) (the images where none flipped) and success (N,)."""
    best = images.clone()
    best_distance = torch.full((len(images),), float("inf"), device=images.device)
    start = torch.atanh((images * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    for constant in constants:
        w = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            points = (torch.tanh(w) + 1) / 2
            logits = model(points)
            target_logit = logits.gather(1, targets.view(-1, 1)).squeeze(1)
            other = logits.masked_fill(F.one_hot(targets, logits.shape[1]).bool(), float("-inf")).amax(1)
            distance = (points - images).flatten(1).pow(2).sum(1)
            loss = (distance + constant * (target_logit - other).clamp_min(0)).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                better = (other > target_logit) & (distance.sqrt() < best_distance)
                best[better] = points[better].detach()
                best_distance[better] = distance.sqrt()[better]
    return best.detach(), torch.isfinite(best_distance)


def closest_boundary(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, eps=DEFAULT_EPS,
                     pgd_steps: int = 20, use_cw: bool = True, cw_steps: int = 100, cw_lr: float = 0.01,
                     cw_constants=(0.1, 1.0, 10.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """The closest point found across the boundary of each image's ``targets`` class, (N, C, H, W),
    and whether one was found (N,) bool: the PGD point over the eps list, or the CW point when that
    one succeeded and is closer (or PGD failed)."""
    points, success = pgd_boundary(model, images, targets, eps, pgd_steps)
    if use_cw:
        cw_points, cw_success = cw_boundary(model, images, targets, cw_steps, cw_lr, cw_constants)
        pgd_distance = (points - images).flatten(1).norm(dim=1)
        cw_distance = (cw_points - images).flatten(1).norm(dim=1)
        take_cw = cw_success & (~success | (cw_distance < pgd_distance))
        points = torch.where(take_cw.view(-1, 1, 1, 1), cw_points, points)
        success = success | cw_success
    return points, success


class BoundaryMethod(AttributionMethod):
    """Shared boundary search and bookkeeping of BSM and BIG."""

    family = "boundary"

    def __init__(self, eps: tuple[float, ...] = DEFAULT_EPS, pgd_steps: int = 20, cw_steps: int = 100,
                 cw_lr: float = 0.01, cw_constants: tuple[float, ...] = (0.1, 1.0, 10.0), use_cw: bool = True,
                 batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.eps, self.pgd_steps, self.use_cw = tuple(eps), pgd_steps, use_cw
        self.cw_steps, self.cw_lr, self.cw_constants = cw_steps, cw_lr, tuple(cw_constants)
        self._distances: list[np.ndarray] = []
        self._successes: list[np.ndarray] = []

    def boundary_points(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The closest boundary point found per image (N, C, H, W); distance and success are recorded."""
        points, success = closest_boundary(model, images, targets, self.eps, self.pgd_steps, self.use_cw,
                                           self.cw_steps, self.cw_lr, self.cw_constants)
        self._distances.append((points - images).flatten(1).norm(dim=1).detach().cpu().numpy())
        self._successes.append(success.cpu().numpy())
        return points

    def per_image_extras(self) -> dict[str, np.ndarray]:
        """Boundary distance (L2, pixel units) and success of every image explained so far, in order."""
        if not self._distances:
            return {}
        return {"boundary_distance": np.concatenate(self._distances),
                "boundary_success": np.concatenate(self._successes)}


class BoundarySaliency(BoundaryMethod):
    """BSM: the gradient of the target logit at the closest boundary point."""

    def compute(self, model, images, targets):
        points = self.boundary_points(model, images, targets)
        return input_gradients(model, points, targets, self.batch_size).sum(1)


class BoundaryIntegratedGradients(BoundaryMethod):
    """BIG: integrated gradients from the closest boundary point to the image (``steps`` intervals)."""

    def __init__(self, steps: int = 20, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps = steps

    def compute(self, model, images, targets):
        points = self.boundary_points(model, images, targets)
        integrator = IntegratedGradients(steps=self.steps, batch_size=self.batch_size)
        return integrator.attribute(model, images, targets, baseline=points).sum(1)
