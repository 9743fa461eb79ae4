"""Pick the batch size at which a model's passes are cheapest per image, on the device at hand.

Attribution methods spend nearly all their time in forward passes (perturbation methods) or
forward + input-gradient passes (gradient methods) over many copies of the images; the fastest
batch size depends on the model, the image size and the device (small batches can win on a CPU,
large ones on a GPU), so it is measured rather than guessed.
"""
from __future__ import annotations

import time
import weakref

import torch
from torch import nn

PASS_KINDS = ("forward", "gradient")
CANDIDATES = (8, 16, 32, 64, 128, 256, 512)
_cache: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_image(model: nn.Module, image_shape: tuple[int, ...], kind: str, batch_size: int,
                      device: torch.device, repeats: int = 2) -> float:
    """Best wall seconds per image of one ``kind`` pass over a batch of ``batch_size`` random images
    (C, H, W) = ``image_shape``, after one warm-up pass."""
    inputs = torch.rand(batch_size, *image_shape, device=device)

    def one_pass():
        if kind == "forward":
            with torch.no_grad():
                model(inputs)
        else:
            x = inputs.clone().requires_grad_(True)
            torch.autograd.grad(model(x)[:, 0].sum(), x)

    one_pass()
    best = float("inf")
    for _ in range(repeats):
        _synchronise(device)
        started = time.perf_counter()
        one_pass()
        _synchronise(device)
        best = min(best, time.perf_counter() - started)
    return best / batch_size


def fastest_batch_size(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device,
                       candidates: tuple[int, ...] = CANDIDATES) -> int:
    """The candidate batch size with the lowest seconds per image of a ``kind`` pass ("forward" or
    "gradient"). Candidates are tried in increasing order until one is 10% slower per image than the
    best so far or runs out of memory; results are cached per (model, shape, kind, device)."""
    if kind not in PASS_KINDS:
        raise ValueError(f"kind must be one of {PASS_KINDS}, got '{kind}'")
    key = (tuple(image_shape), kind, str(device))
    cached = _cache.setdefault(model, {})
    if key not in cached:
        best_size, best_time = candidates[0], float("inf")
        for size in candidates:
            try:
                per_image = seconds_per_image(model, image_shape, kind, size, device)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            if per_image < best_time:
                best_size, best_time = size, per_image
            elif per_image > 1.1 * best_time:
                break
        cached[key] = best_size
    return cached[key]
