"""Projected gradient descent (Madry et al. 2018), untargeted, on [0, 1] images.

The attack neither changes the model's train/eval mode nor accumulates parameter gradients: callers
choose the mode (adversarial training crafts in eval mode, see :func:`eval_mode`).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("linf", "l2")


def _per_sample_l2(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample of (N, ...) as (N, 1, ..., 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project perturbations (N, C, H, W) onto the ``norm`` ball of radius ``eps`` (per sample)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        return delta * (eps / _per_sample_l2(delta).clamp_min(1e-12)).clamp(max=1.0)
    raise ValueError(f"unknown norm '{norm}', expected one of {NORMS}")


def random_start(images: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """A random perturbation uniform in the Linf ball, or uniform in the L2 ball, shaped like ``images``."""
    if norm == "linf":
        u = torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        return (2 * u - 1) * eps
    if norm == "l2":
        direction = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        direction = direction / _per_sample_l2(direction).clamp_min(1e-12)
        dims = images[0].numel()
        radius = torch.rand((len(images),) + (1,) * (images.dim() - 1), generator=generator,
                            device=images.device, dtype=images.dtype) ** (1.0 / dims)
        return direction * radius * eps
    raise ValueError(f"unknown norm '{norm}', expected one of {NORMS}")


def pgd_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
               step_size: float | None = None, norm: str = "linf", random_init: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Untargeted PGD that maximises the cross-entropy of ``labels``.

    Args:
        model: maps (N, C, H, W) images in [0, 1] to (N, K) logits.
        images: (N, C, H, W) in [0, 1]; labels: (N,) int64.
        eps: radius of the ``norm`` ball, in [0, 1] pixel units (e.g. 8/255 for Linf).
        steps: number of gradient steps (0 returns the random start, or the images).
        step_size: per-step length; default 2.5 * eps / steps (Madry et al.).
        norm: "linf" (signed-gradient steps) or "l2" (L2-normalised gradient steps).
        random_init: start from a uniform random point of the ball.
    Returns:
        adversarial images (N, C, H, W), detached, inside the eps ball around ``images`` and in [0, 1].
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm '{norm}', expected one of {NORMS}")
    if eps < 0 or steps < 0:
        raise ValueError(f"eps and steps must be >= 0, got eps={eps}, steps={steps}")
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    clean = images.detach()
    delta = random_start(clean, eps, norm, generator) if random_init else torch.zeros_like(clean)
    delta = (clean + project(delta, eps, norm)).clamp(0, 1) - clean
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(clean + delta), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / _per_sample_l2(grad).clamp_min(1e-12)
            delta = project(delta + step_size * step, eps, norm)
            # Clipping to [0, 1] moves every coordinate towards 0, so it stays inside the ball.
            delta = (clean + delta).clamp(0, 1) - clean
    return (clean + delta).clamp(0, 1).detach()


@contextmanager
def eval_mode(model: nn.Module):
    """Put every sub-module in eval mode inside the block and restore each one's own flag after."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags.items():
            module.train(flag)
