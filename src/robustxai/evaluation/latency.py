"""Explanation latency: wall milliseconds per explanation at batch 1 and batched, and the same cost in
forward-pass units (ms per explanation / ms per forward pass), which compares across machines.

Mirrors Table 3 of Zeng et al. 2021 (ms per explanation on CPU, ResNet-18 at 32 px). Methods are
timed through ``explain`` exactly as the workflow calls them, so a method built with
``batch_size="auto"`` is tuned on its first call and keeps that batch size for every later call.
The forward passes of the unit are timed in the same rounds as the method's calls, alternating with
them in blocks about as long as one explanation, so that a ratio never divides a time taken under one
load of the machine by one taken under another.

After ``COLUMNS``' timing columns come four that say how far the machine let the measurement run
alone (``LOAD_COLUMNS``):

- ``load_before``, ``load_after``: the machine's 1-minute load average (``os.getloadavg()[0]``,
  runnable processes) just before and just after the measurement; above the torch threads used,
  other processes competed for the cores;
- ``cpu_seconds``, ``wall_seconds``: the process's CPU seconds (all its threads) and the wall seconds
  the measurement took; CPU well below wall times the threads means the process waited for cores.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from robustxai.attribution.base import AttributionMethod  # noqa: E402
from robustxai.tuning import synchronise  # noqa: E402

#: the columns of the machine's load and the measurement's CPU and wall time (module docstring)
LOAD_COLUMNS = ("load_before", "load_after", "cpu_seconds", "wall_seconds")
#: latency_table's columns, in order (extra keys of the rows follow them)
COLUMNS = ("model", "method", "family", "device", "threads", "batch_size", "images_per_call", "ms_batch1",
           "ms_batched", "forward_ms_batch1", "forward_ms_batched", "ratio_batch1", "ratio_batched",
           *LOAD_COLUMNS)


def _timed_ms(call: Callable[[], object], device: torch.device) -> float:
    """Wall milliseconds of ``call()``, CUDA work waited for before and after it."""
    synchronise(device)
    started = time.perf_counter()
    call()
    synchronise(device)
    return 1000 * (time.perf_counter() - started)


def _interleaved_best_ms(forward: Callable[[int], object], explain: Callable[[int], object], repeats: int,
                         device: torch.device) -> tuple[float, float]:
    """Fewest wall milliseconds of one ``forward(j)`` and of one ``explain(i)``, timed in alternating
    rounds. A warm-up ``explain(0)``, ``forward(0)`` comes first, then a sizing round whose times are
    not counted: k = ms of ``explain(0)`` / ms of ``forward(0)``, rounded, at least 1. Each of the
    ``repeats`` rounds then times a block of k passes ``forward(0)`` ... ``forward(k - 1)`` (divided
    by k), then ``explain(i)``.

    The minimum, as ``timeit`` takes: on a shared machine the slower calls measure the other
    processes, so the median of a busy machine drifts with its load and the minimum does not. Both
    minima come from the same stretch of time, and from calls about as long: a lone pass of a
    millisecond fits between the other processes' time slices, an explanation of many passes does
    not, so a lone pass would make a loaded machine's ratio too high."""
    explain(0)
    forward(0)
    explain_ms, forward_ms = _timed_ms(lambda: explain(0), device), _timed_ms(lambda: forward(0), device)
    passes = max(1, round(explain_ms / forward_ms))

    def forward_block() -> None:
        for j in range(passes):
            forward(j)

    forward_ms, explain_ms = [], []
    for i in range(1, repeats + 1):
        forward_ms.append(_timed_ms(forward_block, device) / passes)
        explain_ms.append(_timed_ms(lambda: explain(i), device))
    return min(forward_ms), min(explain_ms)


def measure_latency(model: nn.Module, method: AttributionMethod, images: torch.Tensor, targets: torch.Tensor,
                    repeats: int = 5, batch_images: int | None = None) -> dict:
    """Milliseconds per explanation of ``method`` on ``model``, and per forward pass of the model.

    ``images`` (N, C, H, W) in [0, 1] and ``targets`` (N,) int64 on the model's device; the model is
    put in eval mode. Each figure is the fastest of ``repeats`` timed calls after a warm-up call and a
    sizing call of each, blocks of forward passes (about as long as one explanation) and explanations
    alternating:

    - ``forward_ms_batch1``, ``ms_batch1``: one image per call (no_grad forward pass; ``explain``),
      the calls cycling through the N images;
    - ``forward_ms_batched``, ``ms_batched``: ``images_per_call`` (= ``batch_images`` or N; the
      images repeat when it exceeds N) images per call, divided by ``images_per_call``;
    - ``batch_size``: the method's batch size after the calls (the tuned one if it was "auto");
    - ``ratio_batch1``, ``ratio_batched``: ms per explanation / ms per forward pass (unitless);
    - ``load_before``, ``load_after``: the 1-minute load average before and after all the calls;
      ``cpu_seconds``, ``wall_seconds``: the process's CPU seconds and the wall seconds they took.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    n = len(images)
    per_call = batch_images or n
    model.eval()
    device = images.device
    batch = torch.arange(per_call, device=device) % n
    many_images, many_targets = images[batch], targets[batch]

    def forward(inputs: torch.Tensor) -> None:
        with torch.no_grad():
            model(inputs)

    load_before = os.getloadavg()[0]
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    forward_1, explain_1 = _interleaved_best_ms(
        lambda i: forward(images[i % n][None]),
        lambda i: method.explain(model, images[i % n][None], targets[i % n][None]), repeats, device)
    forward_b, explain_b = (ms / per_call for ms in _interleaved_best_ms(
        lambda i: forward(many_images), lambda i: method.explain(model, many_images, many_targets), repeats,
        device))
    cpu_seconds, wall_seconds = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return {"forward_ms_batch1": forward_1, "ms_batch1": explain_1, "images_per_call": per_call,
            "forward_ms_batched": forward_b, "ms_batched": explain_b, "batch_size": method.batch_size,
            "ratio_batch1": explain_1 / forward_1, "ratio_batched": explain_b / forward_b,
            "load_before": load_before, "load_after": os.getloadavg()[0], "cpu_seconds": cpu_seconds,
            "wall_seconds": wall_seconds}


def latency_table(rows: list[dict]) -> pd.DataFrame:
    """One row per (model, method) result of ``measure_latency`` (each dict also carrying ``model``,
    ``method``, ``family``, ``threads``, ``device``), columns in ``COLUMNS`` order, rows grouped by
    model in first-seen order and, within a model, by ``ms_batch1`` ascending."""
    table = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"latency rows lack {missing}")
    table = table[[*COLUMNS, *(c for c in table.columns if c not in COLUMNS)]]
    model_order = {m: k for k, m in enumerate(dict.fromkeys(table["model"]))}
    return (table.assign(_model_order=table["model"].map(model_order))
            .sort_values(["_model_order", "ms_batch1"], kind="stable")
            .drop(columns="_model_order").reset_index(drop=True))


def plot_latency(table: pd.DataFrame, png_path: str) -> None:
    """Horizontal bars of ms per explanation at batch 1 (log x axis), one panel per model, bars
    coloured by family and labelled with the cost in forward passes (``ratio_batch1``)."""
    models = list(dict.fromkeys(table["model"]))
    families = list(dict.fromkeys(table["family"]))
    colours = dict(zip(families, sns.color_palette(n_colors=len(families))))
    most = max(len(table[table["model"] == m]) for m in models)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 0.4 * most + 1.6), squeeze=False,
                             sharex=True)
    for ax, model in zip(axes[0], models):
        part = table[table["model"] == model]
        positions = range(len(part))
        ax.barh(positions, part["ms_batch1"], color=[colours[f] for f in part["family"]])
        for y, (ms, ratio) in enumerate(zip(part["ms_batch1"], part["ratio_batch1"])):
            ax.text(ms * 1.1, y, f"{ratio:.3g}x fwd", va="center", fontsize=8)
        ax.set_yticks(list(positions), part["method"])
        ax.invert_yaxis()  # fastest on top
        ax.set_xscale("log")
        ax.set_title(model)
        ax.set_xlabel("ms per explanation (batch 1)")
    axes[0][0].set_xlim(right=10 * table["ms_batch1"].max())  # room for the labels
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in families]
    axes[0][-1].legend(handles, families, title="family", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
