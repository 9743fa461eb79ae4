"""Score one (model, method)'s attribution maps with one metric; write per-image values as Parquet."""
from __future__ import annotations

import json
import logging
import os
import time
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


def metric_job(metric_name: str, settings: dict, shard_paths: list[str], split_path: str, output_path: str,
               checkpoint_path: str | None = None, method_name: str | None = None,
               method_settings: dict | None = None, images_per_batch: int = 64) -> pd.DataFrame:
    """Per-image table of one metric: columns image (id in the split), target, predicted, confidence
    (the model's probability of the target on the clean image), degenerate (constant or non-finite
    map), then the metric's own columns. ``checkpoint_path`` is needed by metrics that run the model;
    ``method_name`` and ``method_settings`` by those that recompute maps. ``metric_name`` is the
    registered metric. The table's metadata holds the metric, its ``settings`` and, for metrics that
    rescale maps, the protocol used (``rescale``: as given, e.g. resolved for the method by
    ``robustxai.metrics.settings_for_method``; "auto" left to the job means per map)."""
    cls = metric_class(metric_name)
    metric = make_metric(metric_name, **{k: v for k, v in settings.items() if k not in METRIC_ENTRY_KEYS})
    data = read_shards(shard_paths, settings.get("images"))
    index = data["index"]
    split = load_split(split_path, index)  # only the images of these shards, in the shards' order
    images, _ = split.tensors()
    model = method = None
    device = torch.device("cpu")
    if cls.needs_model:
        from robustxai.models.checkpoint import load_checkpoint
        from robustxai.models.inference import default_device
        from robustxai.tuning import adopt_fastest_layout

        device = default_device()
        model = load_checkpoint(checkpoint_path)[0].to(device).eval()
        expected_inputs = len(index) * metric.inputs_per_image(tuple(images.shape[1:]))
        layout = adopt_fastest_layout(model, tuple(images.shape[1:]), "forward", device,
                                      expected_inputs=expected_inputs,
                                      inputs_in_model_layout=cls.inputs_in_model_layout)
        metric.tune(model, tuple(images.shape[1:]), device, len(index))
        log.info("model memory layout: %s; tuning %s", layout, current_mode())
    if cls.needs_method:
        from robustxai.pipeline.attribute import configured_method

        _, method = configured_method(method_name, method_settings)
    maps = torch.from_numpy(data["maps"].astype(np.float32))
    targets = torch.from_numpy(data["target"])
    boxes = torch.from_numpy(split.boxes.astype(np.int64))
    masks = torch.from_numpy(split.masks) if split.masks is not None else None
    columns: dict[str, list[np.ndarray]] = {}
    started = time.time()
    with tqdm(total=len(index), desc=metric_name, unit="img", mininterval=5.0) as bar:
        for start in range(0, len(index), images_per_batch):
            part = slice(start, start + images_per_batch)
            batch = MetricBatch(images[part].to(device), maps[part].to(device), targets[part].to(device),
                                boxes[part].to(device), None if masks is None else masks[part].to(device), method)
            for name, values in metric(model, batch).items():
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
