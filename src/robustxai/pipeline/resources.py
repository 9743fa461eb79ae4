"""Memory requests (``mem_mb``) of attribute and metric jobs, from what drives their peak.

Measured on the CPU (``benchmarks/job_memory.py``, docs/scaling.md, "Running at scale"), a job's peak resident
memory is: what it holds before any work (Python with torch and the package imported, the model), plus
its images as float with their maps (images x S² pixels), plus one model pass: per input (S² pixels)
the activations a gradient pass keeps for the backward pass, or those a forward pass holds at once,
times the inputs of a pass. A pass has ``images_per_batch`` inputs or, for methods and metrics that
expand an image into many inputs (IG's path points, SmoothGrad's noisy copies, insertion's steps), their
batch of inputs: tuning's CPU default (``robustxai.tuning.DEFAULT_BATCH_SIZES``) unless a ``batch_size``
is configured. The per-pixel costs are a ResNet-50's with headroom, so that EfficientNet-B0..B2 and
Inception-v3 fit and smaller models get more than they need; a heavier model (WideResNet-50-2) or a
batch that tuning made larger than its default may need ``resources.<stage>.mem_mb`` set by hand, and a
job whose peak exceeds its request says so in its log (``robustxai.workflow_io.job_logging``).

On a GPU the activations live in GPU memory and a job's host memory is about 1.3-1.6 GB at 32 and at
224 px (the CUDA context), so no request is below ``MIN_MIB``. Pure functions of numbers in the config:
the workflow computes them when it plans, without importing torch.
"""
from __future__ import annotations

import math

#: never request less (the former fixed default, above a GPU job's host memory)
MIN_MIB = 4000
#: MiB a CPU job holds before any work (measured 1,032 MiB with a ResNet-18, 1,138 with a ResNet-50), with slack
BASE_MIB = 1536
#: bytes per pixel of each image a job holds: float RGB (12 B), its float32 map (4 B), and the copies
#: made while reading and writing them
IMAGE_BYTES_PER_PIXEL = 24
#: bytes per pixel of one model input in a gradient pass (the activations autograd keeps): measured
#: 2,000 on a ResNet-50 at 224 px (700 on a ResNet-18), with headroom
GRADIENT_BYTES_PER_PIXEL = 2600
#: bytes per pixel of one model input in a forward-only pass, with the metric's own copies of it
FORWARD_BYTES_PER_PIXEL = 600
#: inputs per pass of a method or metric whose batch size is "auto": tuning's CPU defaults
INPUTS_PER_PASS = {"gradient": 32, "forward": 64}
_BYTES_PER_INPUT_PIXEL = {"gradient": GRADIENT_BYTES_PER_PIXEL, "forward": FORWARD_BYTES_PER_PIXEL}
#: requests are rounded up to a multiple of this
ROUND_MIB = 256


def _request(image_size: int, images: int, inputs: int, bytes_per_input_pixel: int) -> int:
    pixels = image_size * image_size
    need = BASE_MIB + (images * pixels * IMAGE_BYTES_PER_PIXEL + inputs * pixels * bytes_per_input_pixel) / 2**20
    return max(MIN_MIB, int(math.ceil(need / ROUND_MIB) * ROUND_MIB))


def _inputs_per_pass(pass_kind: str, batch_size: int | str, images_per_batch: int = 0) -> int:
    return max(images_per_batch, INPUTS_PER_PASS[pass_kind] if batch_size == "auto" else int(batch_size))


def attribute_mem_mb(image_size: int, images_per_batch: int, images_per_shard: int,
                     batch_size: int | str = "auto", pass_kind: str = "gradient") -> int:
    """``mem_mb`` of an attribute job: ``images_per_shard`` images of ``image_size`` px explained
    ``images_per_batch`` at a time, in passes of the method's ``pass_kind`` ("gradient" or "forward")
    of up to max(``images_per_batch``, its ``batch_size``) inputs; e.g. 4,000 at 32 px and 5,888 at
    224 px for a gradient method on 100 images in batches of 16."""
    inputs = _inputs_per_pass(pass_kind, batch_size, images_per_batch)
    return _request(image_size, images_per_shard, inputs, _BYTES_PER_INPUT_PIXEL[pass_kind])


def metric_mem_mb(image_size: int, images: int, pass_kind: str | None, batch_size: int | str = "auto") -> int:
    """``mem_mb`` of a metric job scoring ``images`` images of ``image_size`` px: their images and maps,
    plus a model pass of ``batch_size`` inputs of ``pass_kind`` ("forward", "gradient", or None for a
    metric that does not run the model)."""
    if pass_kind is None:
        return _request(image_size, images, 0, 0)
    return _request(image_size, images, _inputs_per_pass(pass_kind, batch_size), _BYTES_PER_INPUT_PIXEL[pass_kind])
