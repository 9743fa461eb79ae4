"""The ROAR table and plot: one row per (model, method, fraction) with the mean final-epoch test
accuracy over repeats and its 95% interval, the unmodified anchor at fraction 0, and the mask-only
control next to every cell (Hooker et al. 2019, Zeng et al. 2021 Table 1 / Fig. 3).

Intervals: with two or more repeats, Student's t interval of the mean over repeats (seed noise);
with one, the Wilson interval of that accuracy over the test images (test-set sampling error only),
named in ``ci_kind``.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from robustxai.roar.leakage import wilson_interval  # noqa: E402

#: roar_table's columns, in order
COLUMNS = ("model", "method", "attribution_method", "fraction", "repeats", "accuracy", "ci_low", "ci_high",
           "ci_kind", "test_images", "leakage_accuracy", "leakage_accuracy_low", "leakage_chance", "confounded",
           "model_test_accuracy")


def _interval(accuracies: np.ndarray, test_images: int) -> tuple[float, float, str]:
    if len(accuracies) >= 2:
        half = stats.t.ppf(0.975, len(accuracies) - 1) * accuracies.std(ddof=1) / math.sqrt(len(accuracies))
        return accuracies.mean() - half, accuracies.mean() + half, "t over repeats"
    low, high = wilson_interval(round(accuracies[0] * test_images), test_images)
    return low, high, "wilson over test images"


def roar_table(cells: list[dict], leakage: list[dict], anchors: str = "unmodified",
               model_accuracy: dict[str, float] | None = None) -> pd.DataFrame:
    """Rows (``COLUMNS``) from the ROAR JSON payloads ``cells`` (``robustxai.pipeline.roar.roar_job``)
    and the mask-only payloads ``leakage``. The anchor cells (method ``anchors``, fraction 0) become
    each method's fraction-0 row; ``model_accuracy`` (model -> the explained model's own test accuracy)
    is shown beside them. ``confounded``: the mask-only control flags leakage for that cell."""
    frame = pd.DataFrame(cells)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    flags = {(d["model"], d["method"], d["fraction"]): d for d in leakage}
    rows = []
    methods = frame[frame["method"] != anchors][["model", "method", "attribution_method"]].drop_duplicates()
    for (model, method, fraction), group in frame.groupby(["model", "method", "fraction"], sort=False):
        if method == anchors:
            continue
        rows.append(_row(model, method, group["attribution_method"].iloc[0], fraction, group, flags, model_accuracy))
    for row in methods.itertuples():
        anchor = frame[(frame["model"] == row.model) & (frame["method"] == anchors)]
        if len(anchor):
            rows.append(_row(row.model, row.method, row.attribution_method, 0.0, anchor, flags, model_accuracy))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.sort_values(["model", "method", "fraction"], kind="stable").reset_index(drop=True)


def _row(model, method, attribution_method, fraction, group, flags, model_accuracy) -> dict:
    accuracies = group["accuracy"].to_numpy(float)
    test_images = int(group["test_images"].iloc[0])
    low, high, kind = _interval(accuracies, test_images)
    control = flags.get((model, method, fraction), {})
    return {"model": model, "method": method, "attribution_method": attribution_method, "fraction": fraction,
            "repeats": len(accuracies), "accuracy": accuracies.mean(), "ci_low": low, "ci_high": high,
            "ci_kind": kind, "test_images": test_images, "leakage_accuracy": control.get("accuracy", np.nan),
            "leakage_accuracy_low": control.get("accuracy_low", np.nan), "leakage_chance": control.get("chance", np.nan),
            "confounded": bool(control.get("leaked", False)),
            "model_test_accuracy": (model_accuracy or {}).get(model, np.nan) if fraction == 0 else np.nan}


def plot_roar(table: pd.DataFrame, png_path: str) -> None:
    """Test accuracy after retraining against the fraction removed, one line per method (random dashed,
    confounded cells crossed), one panel per model; the explained model's own accuracy as a dotted line."""
    models = list(dict.fromkeys(table["model"]))
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.5 * max(1, len(models)), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = table[table["model"] == model]
        for method, rows in part.groupby("method", sort=False):
            style = "--" if (rows["attribution_method"] == "random").all() else "-"
            line, = ax.plot(rows["fraction"], rows["accuracy"], style, marker="o", label=method)
            ax.fill_between(rows["fraction"], rows["ci_low"], rows["ci_high"], color=line.get_color(), alpha=0.15)
            bad = rows[rows["confounded"]]
            ax.plot(bad["fraction"], bad["accuracy"], "x", color="black", markersize=10)
        own = part["model_test_accuracy"].dropna()
        if len(own):
            ax.axhline(own.iloc[0], color="grey", linestyle=":", label="explained model")
        ax.set_title(model)
        ax.set_xlabel("fraction of pixels removed")
        ax.set_ylabel("test accuracy after retraining")
        ax.legend(fontsize=8)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
