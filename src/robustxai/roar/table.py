"""The ROAR table and plot: one row per (model, method, fraction) with the mean final-epoch test
accuracy over repeats and its 95% interval, the unmodified anchor at fraction 0, and the mask-only
control next to every cell (Hooker et al. 2019, Zeng et al. 2021 Table 1 / Fig. 3).

Intervals: with two or more repeats, Student's t interval of the mean over repeats (seed noise) and
their standard deviation (``accuracy_sd``); with one, the Wilson interval of that accuracy over the
test images (test-set sampling error only), named in ``ci_kind``. ``object_removed_share``: the share
of the true objects' pixels the removal took (saturation: near 1, every ranking that finds the object
removes all of it); ``anchor_gap``: the explained model's own test accuracy minus the unmodified
retraining's (a retraining that cannot learn the task measures nothing); ``late_train_gain`` (the
largest over repeats) and ``converged``: whether every repeat's training accuracy had stopped rising
(``robustxai.roar.convergence.retraining_converged``: a retraining still learning when it stopped measures its
recipe, not the removal), ``leakage_converged`` the same of the cell's mask-only control (whose "not leaked" is no
evidence otherwise). ``retrained``: False for a confounded cell that was not retrained (``roar.leaking_cells:
skip``); its accuracy and interval are empty.

The leakage table lists every mask-only control with its role (``control``): ``positive`` (ranked by
the true objects: must be flagged), ``negative`` (random maps: must not) or ``cell`` (a method's own).
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

from robustxai.roar.convergence import converged, late_train_gain, retraining_converged  # noqa: E402
from robustxai.roar.leakage import wilson_interval  # noqa: E402

#: roar_table's columns, in order
COLUMNS = ("model", "method", "attribution_method", "fraction", "repeats", "accuracy", "accuracy_sd", "ci_low",
           "ci_high", "ci_kind", "test_images", "object_removed_share", "leakage_accuracy", "leakage_accuracy_low",
           "leakage_chance", "confounded", "retrained", "leakage_converged", "model_test_accuracy", "anchor_gap", "late_train_gain",
           "converged")
#: leakage_table's columns, in order
LEAKAGE_COLUMNS = ("model", "method", "control", "fraction", "accuracy", "accuracy_low", "accuracy_high", "chance",
                   "margin", "images", "object_removed_share", "leaked", "stopped_at_leak", "expected", "as_expected",
                   "late_train_gain", "converged")
#: what the mask-only control must say of each control row: the positive control (removal ranked by the
#: true objects) must be flagged, the negative one (random maps) must not; the cells' own rows have no
#: expected answer
EXPECTED_LEAK = {"positive": True, "negative": False}


def control_converged(control: dict) -> bool | float:
    """Whether a mask-only control (``leakage_job``'s payload) had stopped learning (``converged``); NaN where
    it carries no history, or where it stopped on purpose once its leak was established (``stopped_at_leak``:
    training on could only raise the accuracy, so the leak stands)."""
    if "history" not in control or control.get("stopped_at_leak"):
        return np.nan
    return converged(control["history"])


def _interval(accuracies: np.ndarray, test_images: int) -> tuple[float, float, str]:
    if np.isnan(accuracies).any():
        return np.nan, np.nan, ""
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
    flags = {key: value for key, value in flags.items() if value.get("control") != "positive"}
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
    own = (model_accuracy or {}).get(model, np.nan) if fraction == 0 else np.nan
    object_share = group["object_removed_share"] if "object_removed_share" in group else pd.Series([np.nan])
    histories = [h if isinstance(h, list) else [] for h in group["history"]] if "history" in group else [[]] * len(group)
    retrained = "skipped" not in group or group["skipped"].isna().all()
    plateaus = group["plateau_epoch"].tolist() if "plateau_epoch" in group else [None] * len(group)
    return {"model": model, "method": method, "attribution_method": attribution_method, "fraction": fraction,
            "repeats": len(accuracies), "accuracy": accuracies.mean(),
            "accuracy_sd": accuracies.std(ddof=1) if len(accuracies) >= 2 else np.nan, "ci_low": low, "ci_high": high,
            "ci_kind": kind, "test_images": test_images, "object_removed_share": object_share.astype(float).mean(),
            "leakage_accuracy": control.get("accuracy", np.nan),
            "leakage_accuracy_low": control.get("accuracy_low", np.nan), "leakage_chance": control.get("chance", np.nan),
            "confounded": bool(control.get("leaked", False)), "retrained": retrained,
            "leakage_converged": control_converged(control),
            "model_test_accuracy": own, "anchor_gap": own - accuracies.mean(),
            "late_train_gain": float(np.max([late_train_gain(h) for h in histories])) if retrained else np.nan,
            "converged": all(retraining_converged(h, p) for h, p in zip(histories, plateaus)) if retrained else np.nan}


def leakage_table(leakage: list[dict]) -> pd.DataFrame:
    """One row (``LEAKAGE_COLUMNS``) per mask-only control payload (``robustxai.pipeline.roar.leakage_job``),
    controls first: ``expected`` is what a control row must say (``EXPECTED_LEAK``; empty for a method's own
    cell) and ``as_expected`` whether it did. A positive control that is not flagged means the check could not
    see a leak that is there at that fraction: the cells' "not leaked" there is not evidence. ``converged``:
    whether the mask-only classifier had stopped learning (``control_converged``); ``stopped_at_leak``: the epoch
    after which it stopped because its leak was established (empty where it trained to the end)."""
    rows = []
    for payload in leakage:
        control = payload.get("control") or "cell"
        expected = EXPECTED_LEAK.get(control)
        history = payload.get("history", [])
        rows.append({**{key: payload.get(key, np.nan) for key in LEAKAGE_COLUMNS}, "control": control,
                     "leaked": bool(payload["leaked"]), "expected": expected,
                     "as_expected": None if expected is None else bool(payload["leaked"]) == expected,
                     "late_train_gain": late_train_gain(history), "converged": control_converged(payload)})
    table = pd.DataFrame(rows, columns=list(LEAKAGE_COLUMNS))
    order = table["control"].map({"positive": 0, "negative": 1}).fillna(2)
    return (table.assign(_order=order).sort_values(["model", "_order", "method", "fraction"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def plot_roar(table: pd.DataFrame, png_path: str) -> None:
    """Test accuracy after retraining against the fraction removed, one line per method (random dashed,
    confounded cells crossed, retrainings that had not converged ringed in red), one panel per model; the
    explained model's own accuracy as a dotted line. A cell not retrained (its mask-only control leaks) shows
    that control's accuracy as a filled X in its method's colour, off the line."""
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
            skipped = rows[~rows["retrained"].astype(bool)]
            ax.plot(skipped["fraction"], skipped["leakage_accuracy"], "X", color=line.get_color(), markersize=8,
                    markeredgecolor="black", linestyle="none")
            short = rows[~rows["converged"].astype(bool)]
            ax.plot(short["fraction"], short["accuracy"], "o", markerfacecolor="none", color="red", markersize=12)
        own = part["model_test_accuracy"].dropna()
        if len(own):
            ax.axhline(own.iloc[0], color="grey", linestyle=":", label="explained model")
        ax.set_title(model)
        if (~part["retrained"].astype(bool)).any():
            ax.plot([], [], "X", color="white", markeredgecolor="black", label="mask-only accuracy (not retrained)")
        ax.set_xlabel("fraction of pixels removed")
        ax.set_ylabel("test accuracy after retraining")
        ax.legend(fontsize=8)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
