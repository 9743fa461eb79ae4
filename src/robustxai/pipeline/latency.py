"""Time every configured attribution method on one model (ms per explanation, and in forward-pass
units), and collect the models' rows into the study's latency table and plot."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from robustxai.data.splits import load_split, split_size
from robustxai.evaluation.latency import latency_table, measure_latency, plot_latency
from robustxai.files import atomic_output
from robustxai.models.checkpoint import load_checkpoint
from robustxai.models.inference import default_device, predict_logits
from robustxai.pipeline.attribute import bind_needed_models, configured_method
from robustxai.tuning import adopt_fastest_layout

log = logging.getLogger(__name__)


def latency_job(model_name: str, checkpoint_path: str, split_path: str, methods: dict[str, dict],
                model_paths: dict[str, str], output_path: str, threads: int, repeats: int = 5,
                images: int = 16) -> pd.DataFrame:
    """Time each of ``methods`` (config name -> settings) on the model at batch 1 and on ``images``
    images per call (the first ones of the split, explaining the predicted class), in the memory
    layout fastest for the method's pass kind; ``model_paths`` ("<method>:<setting>" -> checkpoint)
    are the other models methods need; ``threads`` is the torch thread count the job set (a column).
    Writes one row per method (``robustxai.evaluation.latency``), with the machine's load and the
    measurement's CPU and wall seconds, which say whether anything else competed for the cores."""
    device = default_device()
    model = load_checkpoint(checkpoint_path)[0].to(device)
    pictures = load_split(split_path, np.arange(min(images, split_size(split_path)))).tensors()[0].to(device)
    targets = predict_logits(model, pictures, device=device).argmax(1).to(device)
    rows = []
    for name, settings in tqdm(methods.items(), desc=model_name, unit="method"):
        _, method = configured_method(name, settings)
        prefix = f"{name}:"
        bind_needed_models(method, settings, {key[len(prefix):]: path for key, path in model_paths.items()
                                              if key.startswith(prefix)}, tuple(pictures.shape[1:]), device)
        adopt_fastest_layout(model, tuple(pictures.shape[1:]), method.pass_kind, device)
        result = measure_latency(model, method, pictures, targets, repeats, batch_images=len(pictures))
        log.info("%s: %.3g ms per explanation at batch 1 (%.3g forward passes); load average %.2f -> %.2f, "
                 "%.3g CPU s in %.3g wall s", name, result["ms_batch1"], result["ratio_batch1"],
                 result["load_before"], result["load_after"], result["cpu_seconds"], result["wall_seconds"])
        rows.append({"model": model_name, "method": name, "family": method.family, "device": str(device),
                     "threads": threads, **result})
    table = latency_table(rows)
    with atomic_output(output_path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def latency_table_job(paths: list[str], table_path: str, png_path: str) -> pd.DataFrame:
    """Collect the models' latency rows into ``tables/latency.csv`` and draw ``plots/latency.png``."""
    table = latency_table(pd.concat([pd.read_csv(path) for path in paths]).to_dict("records"))
    with atomic_output(table_path) as tmp:
        table.to_csv(tmp, index=False)
    plot_latency(table, png_path)
    return table
