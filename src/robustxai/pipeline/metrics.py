"""Score one (model, method)'s attribution maps with one metric; write per-image values as Parquet."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from robustxai.attribution.shards import read_shard
from robustxai.config import METRIC_ENTRY_KEYS
from robustxai.files import atomic_output
from robustxai.integrity import ABOUT_KEY, arrow_metadata, read_arrow_table, stamp_table
from robustxai.data.splits import load_split
from robustxai.metrics import MetricBatch, degenerate_maps, make_metric, metric_class
from robustxai.metrics.base import has_box
from robustxai.provenance import provenance
from robustxai.tuning import current_mode

if TYPE_CHECKING:  # pandas (and the pyarrow it loads) is imported where a table is made: not by importing a job
    import pandas as pd

log = logging.getLogger(__name__)


def read_shards(paths: list[str], limit: int | None = None) -> dict[str, np.ndarray]:
    """The shards' maps (N, H, W), index, target, predicted and probs (N, K), concatenated in shard
    order and cut to the first ``limit`` images."""
    shards = [read_shard(path) for path in paths]
    columns = {name: np.concatenate([getattr(s, name) for s in shards]) for name in
               ("maps", "index", "target", "predicted", "probs")}
    return {name: values[:limit] for name, values in columns.items()}


def write_table(table: pd.DataFrame, path: str | os.PathLike, about: dict | None = None) -> None:
    """Write ``table`` as Parquet via a temporary name, so a half-written table is never read, with its
    content checksum (``integrity.read_table`` verifies it); ``about`` (JSON-able: the metric, its
    settings, provenance) goes into the file's metadata under "robustxai" (``table_metadata`` reads it back)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if about is not None:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               ABOUT_KEY: json.dumps(about, default=str).encode()})
    with atomic_output(path) as tmp:
        pq.write_table(stamp_table(arrow), tmp)


def table_metadata(path: str | os.PathLike) -> dict:
    """What ``write_table`` stored about a metric table (empty for tables written without it); the
    table is read and verified, so a damaged one raises ``CorruptFileError`` naming it."""
    return arrow_metadata(read_arrow_table(path))


@dataclass
class MetricInputs:
    """What the metrics of one (model, method) read, loaded once: the shards' columns (``read_shards``),
    the split's images of those shards (N, C, H, W) in [0, 1] with their boxes and masks, the model
    (None when no metric runs it) on ``device``, and the recomputing method (None when none needs it)."""

    data: dict[str, np.ndarray]
    split: object
    images: torch.Tensor
    model: torch.nn.Module | None
    device: torch.device
    method: object | None


def load_metric_inputs(metric_names: list[str], shard_paths: list[str], split_path: str,
                       checkpoint_path: str | None = None, method_name: str | None = None,
                       method_settings: dict | None = None) -> MetricInputs:
    """The inputs of ``metric_names`` (registered metrics) for one (model, method): the model is loaded
    when one of them runs it (``needs_model``), the method built when one recomputes maps (``needs_method``)."""
    classes = [metric_class(name) for name in metric_names]
    data = read_shards(shard_paths)
    split = load_split(split_path, data["index"])  # only the images of these shards, in the shards' order
    images, _ = split.tensors()
    model = method = None
    device = torch.device("cpu")
    if any(cls.needs_model for cls in classes):
        from robustxai.models.checkpoint import load_checkpoint
        from robustxai.models.inference import default_device

        device = default_device()
        model = load_checkpoint(checkpoint_path)[0].to(device).eval()
    if any(cls.needs_method for cls in classes):
        from robustxai.pipeline.attribute import configured_method

        _, method = configured_method(method_name, method_settings)
    return MetricInputs(data, split, images, model, device, method)


def metric_job(metric_name: str, settings: dict, shard_paths: list[str], split_path: str, output_path: str,
               checkpoint_path: str | None = None, method_name: str | None = None,
               method_settings: dict | None = None, images_per_batch: int = 64) -> pd.DataFrame:
    """Per-image table of one metric (``score_metric``) of one (model, method)'s maps, written to
    ``output_path``; ``checkpoint_path`` is needed by metrics that run the model, ``method_name`` and
    ``method_settings`` by those that recompute maps."""
    inputs = load_metric_inputs([metric_name], shard_paths, split_path, checkpoint_path, method_name, method_settings)
    return score_metric(metric_name, settings, inputs, output_path, method_name, images_per_batch)


def metrics_job(metrics: dict[str, dict], shard_paths: list[str], split_path: str, output_folder: str,
                checkpoint_path: str | None = None, method_name: str | None = None,
                method_settings: dict | None = None, images_per_batch: int = 64) -> dict[str, pd.DataFrame]:
    """Every metric of one (model, method) in one process (issue 23: one start-up, one read of the maps
    and the split, one model load): ``metrics`` maps each table name to {"metric": the registered
    metric, "settings": its settings}; each table (``score_metric``) is written to
    ``<output_folder>/<name>.parquet``. Returns the tables by name."""
    inputs = load_metric_inputs([entry["metric"] for entry in metrics.values()], shard_paths, split_path,
                                checkpoint_path, method_name, method_settings)
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    return {name: score_metric(entry["metric"], entry["settings"], inputs, Path(output_folder) / f"{name}.parquet",
                               method_name, images_per_batch) for name, entry in metrics.items()}


def score_metric(metric_name: str, settings: dict, inputs: MetricInputs, output_path: str | os.PathLike,
                 method_name: str | None = None, images_per_batch: int = 64) -> pd.DataFrame:
    """Per-image table of one metric, written to ``output_path``: columns image (id in the split), target,
    predicted, confidence (the model's probability of the target on the clean image), degenerate (constant
    or non-finite map), then the metric's own columns, for the first ``settings["images"]`` images (all
    without it). ``metric_name`` is the registered metric. The table's metadata holds the metric, its
    ``settings`` and, for metrics that rescale maps, the protocol used (``rescale``: as given, e.g. resolved
    for the method by ``robustxai.metrics.settings_for_method``; "auto" left to the job means per map)."""
    cls = metric_class(metric_name)
    metric = make_metric(metric_name, **{k: v for k, v in settings.items() if k not in METRIC_ENTRY_KEYS})
    limit = settings.get("images")
    data = {name: values[:limit] for name, values in inputs.data.items()}
    index = data["index"]
    images = inputs.images[:limit]
    model, device = inputs.model, inputs.device
    if cls.needs_model:
        from robustxai.tuning import adopt_fastest_layout

        expected_inputs = len(index) * metric.inputs_per_image(tuple(images.shape[1:]))
        layout = adopt_fastest_layout(model, tuple(images.shape[1:]), "forward", device,
                                      expected_inputs=expected_inputs,
                                      inputs_in_model_layout=cls.inputs_in_model_layout)
        metric.tune(model, tuple(images.shape[1:]), device, len(index))
        log.info("%s: model memory layout %s; tuning %s", metric_name, layout, current_mode())
    method = inputs.method if cls.needs_method else None
    split = inputs.split
    maps = torch.from_numpy(data["maps"].astype(np.float32))
    targets = torch.from_numpy(data["target"])
    boxes = torch.from_numpy(split.boxes[:limit].astype(np.int64))
    masks = torch.from_numpy(split.masks[:limit]) if split.masks is not None else None
    columns: dict[str, list[np.ndarray]] = {}
    started = time.time()
    with tqdm(total=len(index), desc=metric_name, unit="img", mininterval=5.0) as bar:
        for start in range(0, len(index), images_per_batch):
            part = slice(start, start + images_per_batch)
            batch = MetricBatch(images[part].to(device), maps[part].to(device), targets[part].to(device),
                                boxes[part].to(device), None if masks is None else masks[part].to(device), method)
            for name, values in metric(model if cls.needs_model else None, batch).items():
                columns.setdefault(name, []).append(values.detach().float().cpu().numpy())
            bar.update(len(batch.maps))
    wall = time.time() - started
    import pandas as pd

    table = pd.DataFrame({
        "image": index, "target": data["target"], "predicted": data["predicted"],
        "confidence": data["probs"][np.arange(len(index)), data["target"]],
        "degenerate": degenerate_maps(maps).numpy(),
        **{name: np.concatenate(parts) for name, parts in columns.items()}})
    ranking = getattr(metric, "ranking", None)
    about = {"metric": metric_name, "settings": settings, "method": method_name,
             "ranking": ranking.as_dict() if ranking is not None else None, "tuning": current_mode(),
             "wall_seconds": wall, **provenance()}
    if metric.rescale is not None:
        about["rescale"] = metric.rescale
    if cls.needs_boxes:
        about["images_without_box"] = int((~has_box(boxes)).sum())
        if about["images_without_box"]:
            log.warning("%d of %d images have no ground-truth box: their %s values are NaN, left out of every "
                        "mean and statistic", about["images_without_box"], len(index), metric_name)
    write_table(table, output_path, about)
    log.info("%s: %d images in %.2f s (%.1f images/s); %d degenerate maps", metric_name, len(index), wall,
             len(index) / wall if wall > 0 else float("inf"), int(table["degenerate"].sum()))
    return table
