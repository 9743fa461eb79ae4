"""Batch size and memory layout of a job's model passes: fixed defaults, or tuned where tuning pays.

Attribution methods and causal metrics spend nearly all their time in forward passes (perturbation
methods, insertion/deletion) or forward + input-gradient passes (gradient methods) over many model
inputs; the fastest batch size and layout (NCHW or channels-last) depend on the model, the image size
and the device, so in mode "auto" they are measured, under three rules that keep tuning from ever
costing more than it saves:

- **Bounded.** Measuring costs at most ``TUNING_SHARE`` of the job's expected pass time (its model
  inputs x the default batch's seconds per input); a job smaller than ``MIN_BATCHES_TO_TUNE`` default
  batches is not tuned at all.
- **Robust to load.** Candidates are timed in interleaved rounds (default, 2x, 4x, ..., default,
  2x, ...) and ranked by their median, so a load spike hits every candidate alike; a candidate
  replaces the default only when it is ``MIN_GAIN`` faster.
- **Once per machine.** Results are cached per (host, device, threads, architecture, input shape,
  pass kind, layout) in memory and, when a cache folder is set (``tuning_mode``), in files that every
  job of a run on the same machine reads.

Candidates are capped by memory: a batch's activations (measured per input, kept for the backward
pass of gradient passes) must fit in a quarter of the memory available (on a CPU, within the job's
memory request, e.g. SLURM's mem_mb, when ``tuning_mode`` is given it). Methods that expand an image
into many inputs (IG's path points, SmoothGrad's noisy copies) build those inputs one batch at a time,
so the batch size bounds their memory too.

Mode "off" uses the fixed defaults and NCHW, measuring nothing, so the numbers of a run do not depend
on the machine or its load (bit-identical on CPU).
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import socket
import statistics
import tempfile
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

MODES = ("auto", "off")
#: pass kinds with a default batch size (and tuned batch sizes): attribution and metric passes
PASS_KINDS = ("forward", "gradient")
#: pass kinds whose memory layout is tuned: those, and "train" (forward + backward to the parameters)
LAYOUT_PASS_KINDS = PASS_KINDS + ("train",)
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
#: batch sizes of mode "off" and the starting point of mode "auto", per device type and pass kind
DEFAULT_BATCH_SIZES = {"cpu": {"forward": 64, "gradient": 32}, "cuda": {"forward": 256, "gradient": 128}}
#: candidates tried beside the default, as multiples of it, in this order: larger and smaller alternate,
#: since smaller can win by far (occlusion / LIME at 224 px on a CPU: batches of 4-8 cost 18-29 % less
#: per image than 32-64, issue 23)
CANDIDATE_FACTORS = (2, 0.5, 4, 0.125, 8, 0.25)
TUNING_SHARE = 0.05
MIN_BATCHES_TO_TUNE = 40
MIN_GAIN = 0.05
ROUNDS = 3
MEMORY_SHARE = 0.25

_settings = {"mode": "auto", "cache_dir": None, "memory_mb": None}
_memory_cache: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@contextmanager
def tuning_mode(mode: str, cache_dir: str | os.PathLike | None = None, memory_mb: float | None = None
                ) -> Iterator[None]:
    """Inside the block, tuning runs in ``mode`` ("auto" or "off"), caches its results as files under
    ``cache_dir`` (None: in memory only), and on a CPU counts at most ``memory_mb`` MiB (the job's
    memory request, e.g. SLURM's) less what the process already holds as available memory."""
    if mode not in MODES:
        raise ValueError(f"tuning must be one of {MODES}, got {mode!r}")
    saved = dict(_settings)
    _settings.update(mode=mode, cache_dir=None if cache_dir is None else str(cache_dir), memory_mb=memory_mb)
    try:
        yield
    finally:
        _settings.update(saved)


def current_mode() -> str:
    """The tuning mode in force ("auto" or "off"); shards and metric tables record it."""
    return _settings["mode"]


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


def default_batch_size(kind: str, device: torch.device) -> int:
    """The fixed batch size of a ``kind`` pass on ``device`` (``DEFAULT_BATCH_SIZES``)."""
    _check_kind(kind)
    return DEFAULT_BATCH_SIZES["cuda" if device.type == "cuda" else "cpu"][kind]


def _check_kind(kind: str, kinds: tuple[str, ...] = PASS_KINDS) -> None:
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got '{kind}'")


def _layout_name(model: nn.Module) -> str:
    return "channels_last" if model_memory_format(model) == torch.channels_last else "contiguous"


def _cache_key(model: nn.Module, image_shape: tuple[int, ...], what: str, device: torch.device) -> str:
    """Where a tuning result holds: this machine, device and thread count, and the architecture (parameter
    shapes, not values: every model of one architecture runs at the same speed)."""
    shapes = ",".join(f"{tuple(p.shape)}{p.dtype}" for p in model.parameters())
    architecture = hashlib.sha256(f"{type(model).__name__}|{shapes}".encode()).hexdigest()[:16]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (f"{socket.gethostname()}|{device_name}|{torch.get_num_threads()}|{architecture}|"
            f"{tuple(image_shape)}|{what}")


def _cached(model: nn.Module, key: str, valid: Callable[[object], bool] = lambda value: True):
    """A cached tuning result (memory, then the cache folder), or None. A file record whose value fails
    ``valid`` (edited or damaged) is ignored with a warning naming the file, and tuning runs again."""
    if key in _memory_cache.get(model, {}):
        return _memory_cache[model][key]
    if _settings["cache_dir"]:
        path = Path(_settings["cache_dir"]) / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") == key:
            if not valid(record.get("value")):
                log.warning("%s: ignoring a tuning record whose value %r is not a valid result (edited or damaged); "
                            "tuning again", path, record.get("value"))
                return None
            _memory_cache.setdefault(model, {})[key] = record["value"]
            return record["value"]
    return None


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _store(model: nn.Module, key: str, value, detail: dict) -> None:
    """Cache ``value`` in memory and, atomically (concurrent jobs may write the same key), as a file."""
    _memory_cache.setdefault(model, {})[key] = value
    if _settings["cache_dir"]:
        folder = Path(_settings["cache_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump({"key": key, "value": value, **detail}, file)
        os.replace(tmp, folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json"))


def random_inputs(model: nn.Module, image_shape: tuple[int, ...], batch_size: int, device: torch.device,
                  inputs_in_model_layout: bool = False) -> torch.Tensor:
    """(batch_size, *image_shape) uniform inputs, stored like the model if ``inputs_in_model_layout``."""
    inputs = torch.rand(batch_size, *image_shape, device=device)
    if inputs_in_model_layout and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=model_memory_format(model))
    return inputs


def pass_seconds(model: nn.Module, inputs: torch.Tensor, kind: str) -> float:
    """Wall seconds of one ``kind`` pass ("forward"; "gradient": forward + input gradient; "train": forward
    + backward to the parameters, which accumulates into their ``.grad``) over ``inputs``."""
    synchronise(inputs.device)
    started = time.perf_counter()
    if kind == "forward":
        with torch.no_grad():
            model(inputs)
    elif kind == "train":
        model(inputs).float().sum().backward()
    else:
        x = inputs.detach().requires_grad_(True)
        torch.autograd.grad(model(x)[:, 0].sum(), x)
    synchronise(inputs.device)
    return time.perf_counter() - started


def bytes_per_input(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device) -> int:
    """Memory one model input takes in a ``kind`` pass, from one forward pass of one input: the sum of
    every module output (kept for the backward pass) for "gradient", twice the largest for "forward"."""
    sizes: list[int] = []
    hooks = [module.register_forward_hook(
        lambda m, i, o: sizes.append(o.numel() * o.element_size()) if isinstance(o, torch.Tensor) else None)
        for module in model.modules() if not list(module.children())]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *image_shape), device=device))
    finally:
        for hook in hooks:
            hook.remove()
    input_bytes = 4 * int(torch.tensor(image_shape).prod())
    if not sizes:
        return 2 * input_bytes
    return 2 * (sum(sizes) if kind == "gradient" else max(sizes)) + 2 * input_bytes


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's free memory; else the host's MemAvailable (8 GiB if unknown),
    and at most the job's request (``tuning_mode``'s ``memory_mb``) less the process's resident memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    fields = {}
    for name in ("/proc/meminfo", "/proc/self/status"):
        try:
            fields.update(line.split(":", 1) for line in Path(name).read_text().splitlines() if ":" in line)
        except OSError:
            pass
    kib = {key: int(fields[key].split()[0]) * 1024 for key in ("MemAvailable", "VmRSS") if key in fields}
    free = kib.get("MemAvailable", 8 << 30)
    if _settings["memory_mb"] is not None:
        free = min(free, int(_settings["memory_mb"] * 2**20) - kib.get("VmRSS", 0))
    return max(free, 0)


def candidate_sizes(default: int, largest: int) -> list[int]:
    """The default, then ``CANDIDATE_FACTORS`` x default, each at most ``largest`` (the memory cap)."""
    sizes = [min(default, largest)]
    for factor in CANDIDATE_FACTORS:
        size = max(1, min(int(default * factor), largest))
        if size not in sizes:
            sizes.append(size)
    return sizes


def choose_batch_size(per_input: dict[int, list[float]], default: int) -> int:
    """The candidate with the lowest median seconds per input (``per_input``: size -> timings; sizes
    other than the default need two timings), where it beats the default's median by ``MIN_GAIN``;
    else the default."""
    medians = {size: statistics.median(times) for size, times in per_input.items()
               if len(times) >= 2 or (size == default and times)}
    if not medians:
        return default
    best = min(medians, key=medians.get)
    if default in medians and medians[best] > (1 - MIN_GAIN) * medians[default]:
        return default
    return best


def measure_candidates(measure: Callable[[int], float], sizes: list[int], first_seconds: float, budget: float,
                       rounds: int = ROUNDS) -> dict[int, list[float]]:
    """Seconds per input of each size in interleaved rounds (``measure(size)`` -> seconds of one pass),
    starting from one timed (and warmed-up) pass of ``sizes[0]`` that took ``first_seconds``, spending at
    most ``budget`` more seconds. Each other size gets a warm-up pass before its first timing; a pass
    is skipped when it would overrun the budget (guessed from the size's last pass, else from the
    slowest seconds per input seen so far), and sizes further from ``sizes[0]`` in a direction where a
    nearer one was 10 % slower per input are not tried."""
    default = sizes[0]
    per_input: dict[int, list[float]] = {size: [] for size in sizes}
    per_input[default].append(first_seconds / default)
    last = {default: first_seconds}
    spent = 0.0

    def losing(size: int) -> bool:  # a size nearer the default, on the same side, was clearly slower
        reference = statistics.median(per_input[default])
        return any(per_input[other] and statistics.median(per_input[other]) > 1.1 * reference
                   for other in sizes[1:] if (other - default) * (size - default) > 0
                   and abs(other - default) < abs(size - default))

    for round_ in range(rounds):
        for size in sizes:
            if round_ == 0 and size == default or (size not in last and losing(size)):
                continue
            slowest = max(max(times) for times in per_input.values() if times)
            guess = last.get(size, 2 * slowest * size)
            if spent + guess > budget:
                continue
            if size not in last:
                spent += measure(size)  # warm-up
            seconds = measure(size)
            spent += seconds
            last[size] = seconds
            per_input[size].append(seconds / size)
    return {size: times for size, times in per_input.items() if times}


def tuned_batch_size(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device,
                     expected_inputs: int, inputs_in_model_layout: bool = False) -> int:
    """Batch size of a job's ``kind`` passes over ``expected_inputs`` model inputs (C, H, W) = ``image_shape``.

    Mode "off", or a job of fewer than ``MIN_BATCHES_TO_TUNE`` default batches: the default
    (``default_batch_size``). Otherwise the fastest candidate measured within ``TUNING_SHARE`` of the
    job's expected time (see the module docstring), cached per machine and architecture."""
    _check_kind(kind)
    default = default_batch_size(kind, device)
    if current_mode() == "off" or expected_inputs < MIN_BATCHES_TO_TUNE * default:
        return default
    key = _cache_key(model, image_shape, f"batch|{kind}|{_layout_name(model)}|{inputs_in_model_layout}", device)
    if (cached := _cached(model, key, _positive_int)) is not None:
        return int(cached)
    started = time.perf_counter()
    largest = max(1, int(MEMORY_SHARE * available_bytes(device) / bytes_per_input(model, image_shape, kind, device)))
    sizes = candidate_sizes(default, largest)
    inputs = {size: random_inputs(model, image_shape, size, device, inputs_in_model_layout) for size in sizes}

    def measure(size: int) -> float:
        return pass_seconds(model, inputs[size], kind)

    warm_up = measure(sizes[0])
    first = measure(sizes[0])  # the default's pass: the job's expected time, and the tuning budget
    budget = TUNING_SHARE * expected_inputs * first / sizes[0] - warm_up - first
    per_input = measure_candidates(measure, sizes, first, budget)
    chosen = choose_batch_size(per_input, sizes[0])
    medians = {size: round(1000 * statistics.median(t), 4) for size, t in per_input.items()}
    _store(model, key, chosen, {"ms_per_input": medians, "tuning_seconds": time.perf_counter() - started})
    log.info("batch size for %s passes on %s: %d (median ms per input by size: %s; tuned in %.2f s)",
             kind, device, chosen, medians, time.perf_counter() - started)
    return chosen


def adopt_fastest_layout(model: nn.Module, image_shape: tuple[int, ...], kind: str, device: torch.device,
                         batch_size: int = 64, expected_inputs: int | None = None,
                         inputs_in_model_layout: bool = False) -> str:
    """Convert ``model`` in place to the memory layout ("contiguous" or "channels_last") whose ``kind``
    pass over ``batch_size`` inputs (C, H, W) = ``image_shape`` takes the fewest median seconds, and
    return its name. Outputs do not change beyond float rounding; only speed does. "train" passes are
    timed on a copy in training mode, so the model's batch-norm statistics and gradients stay untouched;
    they run under whatever autocast the caller has entered (training's precision).

    Mode "off", non-image inputs, or a job whose ``expected_inputs`` (None: always tune) would spend
    more than ``TUNING_SHARE`` of its passes timing the layouts keep NCHW without measuring; the timing
    rounds are interleaved and ranked by median, and the result is cached per machine."""
    _check_kind(kind, LAYOUT_PASS_KINDS)
    layout_passes = 2 * (ROUNDS + 1)  # both layouts: a warm-up and ROUNDS timed passes each
    small = expected_inputs is not None and TUNING_SHARE * expected_inputs < layout_passes * batch_size
    if current_mode() == "off" or len(image_shape) != 3 or small:
        model.to(memory_format=torch.contiguous_format)
        return "contiguous"
    autocast = (str(torch.get_autocast_dtype(device.type)).removeprefix("torch.")
                if torch.is_autocast_enabled(device.type) else "none")
    key = _cache_key(model, image_shape, f"layout|{kind}|{batch_size}|{inputs_in_model_layout}|{autocast}", device)
    chosen = _cached(model, key, lambda value: value in LAYOUTS)
    if chosen is None:
        started = time.perf_counter()
        timed = copy.deepcopy(model).train() if kind == "train" else model
        timings: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        for round_ in range(ROUNDS):
            for name, layout in LAYOUTS.items():
                timed.to(memory_format=layout)
                inputs = random_inputs(timed, image_shape, batch_size, device, inputs_in_model_layout)
                if round_ == 0:
                    pass_seconds(timed, inputs, kind)  # warm-up
                timings[name].append(pass_seconds(timed, inputs, kind))
        medians = {name: statistics.median(times) for name, times in timings.items()}
        chosen = min(medians, key=medians.get)
        _store(model, key, chosen, {"median_seconds": medians, "tuning_seconds": time.perf_counter() - started})
    model.to(memory_format=LAYOUTS[chosen])
    return chosen
