"""The study's tables: per-image metric values in one long table, and the per (model, method) summary.

The long table has one row per (model, method, metric, column, image): ``value`` is the metric
column's value for that image, next to the image's ``confidence`` (the model's probability of the
explained class on the clean image) and whether its map was ``degenerate``; ``rescale`` names the
protocol by which the metric made the maps' mass (box metrics, from each table's metadata; see
``robustxai.metrics.localisation``), empty for metrics that take maps as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustxai.aggregation.statistics import mean_with_ci
from robustxai.integrity import arrow_metadata, read_arrow_table

#: columns every metric table carries that are not metric values
BOOKKEEPING = ("image", "target", "predicted", "confidence", "degenerate")
#: columns of models.csv joined into the explainability table, when present
MODEL_COLUMNS = ("arch", "algorithm", "source", "clean_accuracy", "ood_accuracy", "confidence_mean", "ece",
                 "params", "macs")


@dataclass(frozen=True)
class MetricTable:
    """Where one (model, method, metric) per-image table lies."""

    model: str
    method: str
    metric: str
    path: str


def long_metric_values(tables: list[MetricTable]) -> pd.DataFrame:
    """Every metric value of every image: columns model, method, metric, rescale (the table's map
    protocol, "" if it has none), column, image, target, predicted, confidence, degenerate, value (float)."""
    parts = []
    for table in tables:
        arrow = read_arrow_table(table.path)  # read (and verified) once for values and metadata
        frame = arrow.to_pandas()
        values = [c for c in frame.columns if c not in BOOKKEEPING]
        long = frame.melt(id_vars=list(BOOKKEEPING), value_vars=values, var_name="column", value_name="value")
        long.insert(0, "rescale", arrow_metadata(arrow).get("rescale") or "")
        long.insert(0, "metric", table.metric)
        long.insert(0, "method", table.method)
        long.insert(0, "model", table.model)
        parts.append(long)
    if not parts:
        raise ValueError("no metric tables to aggregate: the config's metrics section selects none")
    long = pd.concat(parts, ignore_index=True)
    long["value"] = long["value"].astype(float)
    return long


def explainability_table(long: pd.DataFrame, models: pd.DataFrame, families: dict[str, str],
                         resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (model, method): model columns from ``models`` (see ``MODEL_COLUMNS`` and every
    robust_accuracy_* column), the method's ``family``, ``images`` and ``degenerate_maps`` counts,
    ``box_rescale`` (``box_protocol``), then for every metric column its mean over images with a
    bootstrap 95% interval
    (``<column>``, ``<column>_ci_low``, ``<column>_ci_high``). Rows follow the models' order, then
    the methods' order in ``families``."""
    rows = []
    for (model, method), group in long.groupby(["model", "method"], sort=False):
        first = group[group["metric"] == group["metric"].iloc[0]]
        row = {"model": model, "method": method, "family": families.get(method, ""),
               "images": int(first["image"].nunique()),
               "degenerate_maps": int(first.drop_duplicates("image")["degenerate"].sum()),
               "box_rescale": box_protocol(group)}
        for column, values in group.groupby("column", sort=False)["value"]:
            mean, low, high, _ = mean_with_ci(values.to_numpy(), resamples, seed=seed)
            row.update({column: mean, f"{column}_ci_low": low, f"{column}_ci_high": high})
        rows.append(row)
    table = pd.DataFrame(rows)
    keep = [c for c in models.columns if c in MODEL_COLUMNS or c.startswith("robust_accuracy_")]
    table = table.merge(models[["model", *keep]], on="model", how="left")
    order = {name: i for i, name in enumerate(models["model"])}
    method_order = {name: i for i, name in enumerate(families)}
    table = table.sort_values(["model", "method"], key=lambda s: s.map(order if s.name == "model" else method_order))
    leading = ["model", "method", "family", *keep, "images", "degenerate_maps", "box_rescale"]
    return table[leading + [c for c in table.columns if c not in leading]].reset_index(drop=True)


def box_protocol(group: pd.DataFrame) -> str:
    """The map protocol of one (model, method)'s long rows (their ``rescale``): its name when every
    metric that has one used the same, else "metric: name" per such metric; "" when none has one (or
    the long table has no ``rescale`` column)."""
    if "rescale" not in group:
        return ""
    used = group.loc[group["rescale"] != "", ["metric", "rescale"]].drop_duplicates()
    if used["rescale"].nunique() > 1:
        return ", ".join(f"{metric}: {rescale}" for metric, rescale in used.itertuples(index=False))
    return used["rescale"].iloc[0] if len(used) else ""


def score_means(explainability: pd.DataFrame, scores: dict[str, bool]) -> pd.DataFrame:
    """Long (model, method, column, mean, oriented) rows of the score columns present: ``oriented``
    is the mean with its sign flipped where lower is better, so higher is always better."""
    present = [c for c in scores if c in explainability.columns]
    long = explainability.melt(id_vars=["model", "method"], value_vars=present, var_name="column", value_name="mean")
    long["oriented"] = np.where(long["column"].map(scores), long["mean"], -long["mean"])
    return long
