"""Pick the batch size and memory layout at which a model's passes are cheapest per image, on the
device at hand.

Attribution methods and causal metrics spend nearly all their time in forward passes (perturbation
methods, insertion/deletion) or forward + input-gradient passes (gradient methods) over many copies
of the images; the fastest batch size and layout (NCHW or channels-last) depend on the model, the
image size and the device (small batches can win on a CPU, large ones on a GPU; channels-last
convolutions are ~1.5-2x faster on x86 CPUs), so they are measured rather than guessed.
"""
from __future__ import annotations

import logging
import time
import weakref

import torch
from torch import nn

log = logging.getLogger(__name__)

PASS_KINDS = ("forward", "gradient")
CANDIDATES = (8, 16, 32, 64, 128, 256, 512)
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
_cache: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def synchronise(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; a no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_memory_format(model: nn.Module) -> torch.memory_format:
    """torch.channels_last when the model's first 4-d weight is stored channels-last, else contiguous."""
    for parameter in model.parameters():
        if parameter.dim() == 4:
            if not parameter.is_contiguous() and parameter.is_contiguous(memory_format=torch.channels_last):
                return torch.channels_last
            break
    return torch.contiguous_format


def seconds_per_image(model: nn.Module, image_shape: tuple[int, ...], kind: str, batch_size: int,
                      device: torch.device, repeats: int = 2, inputs_in_model_layout: bool = False,
                      min_seconds: float = 0.02) -> float:
    """Best wall seconds per image of one ``kind`` pass over a batch of ``batch_size`` random images
    (C, H, W) = ``image_shape``, after one warm-up pass: of ``repeats`` measurements, each of as many
    passes as fill ``min_seconds`` (a single millisecond pass is too noisy to rank batch sizes by).
    Inputs are NCHW, or stored like the model (``model_memory_format``) if ``inputs_in_model_layout``."""
    inputs = torch.rand(batch_size, *image_shape, device=device)
    if inputs_in_model_layout and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=model_memory_format(model))

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
        synchronise(device)
        started, passes = time.perf_counter(), 0
        while passes == 0 or time.perf_counter() - started < min_seconds:
            one_pass()
            passes += 1
            synchronise(device)
        best = min(best, (time.perf_counter() - started) / passes)
    return best / batch_size


def fastest_batch_size(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device,
                       candidates: tuple[int, ...] = CANDIDATES, inputs_in_model_layout: bool = False) -> int:
    """The candidate batch size with the lowest seconds per image of a ``kind`` pass ("forward" or
    "gradient"). Candidates are tried in increasing order until two in a row are 10% slower per image
    than the best so far (one can be a timing blip) or one runs out of memory; results are cached per
    (model, shape, kind, device, input layout; see ``seconds_per_image``)."""
    if kind not in PASS_KINDS:
        raise ValueError(f"kind must be one of {PASS_KINDS}, got '{kind}'")
    key = (tuple(image_shape), kind, str(device), inputs_in_model_layout)
    cached = _cache.setdefault(model, {})
    if key not in cached:
        best_size, best_time, slower = candidates[0], float("inf"), 0
        for size in candidates:
            try:
                per_image = seconds_per_image(model, image_shape, kind, size, device,
                                              inputs_in_model_layout=inputs_in_model_layout)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            if per_image < best_time:
                best_size, best_time = size, per_image
            slower = slower + 1 if per_image > 1.1 * best_time else 0
            if slower == 2:
                break
        cached[key] = best_size
        log.info("fastest batch size for a %s pass on %s: %d (%.3g ms per image)", kind, device, best_size,
                 1000 * best_time)
    return cached[key]


def adopt_fastest_layout(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device,
                         batch_size: int = 64, inputs_in_model_layout: bool = False) -> str:
    """Convert ``model`` in place to the memory layout ("contiguous" or "channels_last") whose
    ``kind`` pass over ``batch_size`` images (C, H, W) = ``image_shape`` takes the fewest seconds per
    image, and return its name. Outputs do not change beyond float rounding; only speed does.
    ``inputs_in_model_layout``: the caller feeds inputs stored like the model (else NCHW)."""
    if kind not in PASS_KINDS:
        raise ValueError(f"kind must be one of {PASS_KINDS}, got '{kind}'")
    if len(image_shape) != 3:
        return "contiguous"
    timings = {}
    for name, layout in LAYOUTS.items():
        model.to(memory_format=layout)
        timings[name] = seconds_per_image(model, image_shape, kind, batch_size, device,
                                          inputs_in_model_layout=inputs_in_model_layout)
    fastest = min(timings, key=timings.get)
    model.to(memory_format=LAYOUTS[fastest])
    _cache.pop(model, None)  # batch sizes measured in the other layout no longer hold
    return fastest
