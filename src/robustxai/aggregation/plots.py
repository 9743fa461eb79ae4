"""The study's plots (seaborn). Every plot function writes a PNG and the data drawn in it (CSV, or
NPZ for maps), so each figure can be redrawn or checked without rerunning anything."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from robustxai.aggregation.tables import score_means  # noqa: E402

ACCURACY_KINDS = {"clean_accuracy": "clean", "ood_accuracy": "OOD (mean)"}
#: a sanity-check column: "<similarity>@<step>_<block>"
SANITY_COLUMN = re.compile(r"^(?P<similarity>[a-z_]+)@(?P<step>\d+)_(?P<block>.+)$")


def _save(fig: plt.Figure, png_path: str) -> None:
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png_path, dpi=130)
    plt.close(fig)


def _write_data(data: pd.DataFrame, data_path: str) -> None:
    Path(data_path).parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(data_path, index=False)


def accuracy_long_form(models: pd.DataFrame) -> pd.DataFrame:
    """(model, algorithm, kind, accuracy) rows: clean, mean OOD, and each robust accuracy column."""
    kinds = dict(ACCURACY_KINDS)
    kinds.update({c: "robust " + c.removeprefix("robust_accuracy_") for c in models.columns
                  if c.startswith("robust_accuracy_")})
    present = [c for c in kinds if c in models.columns]
    long = models.melt(id_vars=["model", "algorithm"], value_vars=present, var_name="kind", value_name="accuracy")
    long["kind"] = long["kind"].map(kinds)
    return long


def plot_accuracies(models: pd.DataFrame, png_path: str, data_path: str) -> None:
    """Bars of clean, OOD and robust accuracy per model."""
    long = accuracy_long_form(models)
    _write_data(long, data_path)
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(models)), 4))
    sns.barplot(data=long, x="model", y="accuracy", hue="kind", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(title="", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, png_path)


#: heatmap panels per row: wider figures are shrunk by the report until their numbers cannot be read
HEATMAP_PANELS_PER_ROW = 3


def plot_metric_heatmap(explainability: pd.DataFrame, scores: dict[str, bool], png_path: str, data_path: str) -> None:
    """One heatmap per score column: models (rows) x methods (columns), cells = mean over images; panels
    wrap after ``HEATMAP_PANELS_PER_ROW`` so the figure keeps a readable width."""
    long = score_means(explainability, scores).drop(columns="oriented")
    _write_data(long, data_path)
    columns = list(dict.fromkeys(long["column"]))
    models, methods = list(dict.fromkeys(long["model"])), list(dict.fromkeys(long["method"]))
    across = max(1, min(HEATMAP_PANELS_PER_ROW, len(columns)))
    down = max(1, -(-len(columns) // across))
    fig, axes = plt.subplots(down, across, figsize=(across * (2.5 + 0.8 * len(methods)), down * (0.45 * len(models) + 2)),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(columns):
            ax.axis("off")
            continue
        column = columns[index]
        grid = long[long["column"] == column].pivot(index="model", columns="method", values="mean")
        grid = grid.reindex(index=models, columns=methods)
        sns.heatmap(grid, annot=True, fmt=".2f", cmap="viridis" if scores[column] else "viridis_r", cbar=False,
                    ax=ax, yticklabels=index % across == 0, annot_kws={"fontsize": 8})
        ax.set_title(f"{column} ({'higher' if scores[column] else 'lower'} is better)", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
    _save(fig, png_path)


def plot_confidence_scatter(long: pd.DataFrame, models: pd.DataFrame, png_path: str, data_path: str) -> None:
    """Per-image insertion and deletion AUC against the model's confidence, coloured by algorithm: one row of
    panels per method (methods' AUCs live on different scales, so they are never pooled)."""
    data = long[long["column"].isin(["insertion", "deletion"])]
    data = data.join(models.set_index("model")[["algorithm"]], on="model")[
        ["model", "algorithm", "method", "column", "image", "confidence", "value"]]
    _write_data(data, data_path)
    columns = [c for c in ("insertion", "deletion") if c in set(data["column"])]
    methods = list(dict.fromkeys(data["method"])) or [None]
    fig, axes = plt.subplots(len(methods), max(len(columns), 1), figsize=(5 * max(len(columns), 1), 3.2 * len(methods)),
                             squeeze=False)
    for row, method in zip(axes, methods):
        for ax, column in zip(row, columns):
            part = data[(data["column"] == column) & (data["method"] == method)]
            sns.scatterplot(data=part, x="confidence", y="value", hue="algorithm", s=12, alpha=0.5, linewidth=0, ax=ax,
                            legend=ax is axes[0][-1])
            ax.set_title(f"{method}: {column}", fontsize=9)
            ax.set_ylabel(f"{column} AUC")
            ax.set_xlabel("confidence (probability of the explained class)")
    _save(fig, png_path)


def plot_tradeoff(models: pd.DataFrame, explainability_scores: pd.Series, png_path: str, data_path: str) -> None:
    """Explainability score against clean and OOD accuracy; marker size = MACs. Points carry numbers, named
    in a key beside the plot (model names next to the points overlapped)."""
    data = models.set_index("model")[["arch", "algorithm", "clean_accuracy", "ood_accuracy", "macs"]].join(
        explainability_scores, how="inner").reset_index()
    _write_data(data, data_path)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, x in zip(axes, ("clean_accuracy", "ood_accuracy")):
        sns.scatterplot(data=data, x=x, y="explainability_score", hue="algorithm", style="arch", size="macs",
                        sizes=(40, 240), ax=ax, legend=ax is axes[-1])
        points: dict[tuple[float, float], list[str]] = {}  # models at one point share one label: "1, 6"
        for number, row in enumerate(data.itertuples(), start=1):
            points.setdefault((getattr(row, x), row.explainability_score), []).append(str(number))
        for point, numbers in points.items():
            ax.annotate(", ".join(numbers), point, fontsize=8, xytext=(6, 4), textcoords="offset points")
        ax.set_ylim(-0.05, 1.05)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    key = "\n".join(f"{number:>2}  {model}" for number, model in enumerate(data["model"], start=1))
    axes[-1].text(1.02, 0.0, key, transform=axes[-1].transAxes, ha="left", va="bottom", fontsize=7, family="monospace")
    _save(fig, png_path)


def sanity_long_form(long: pd.DataFrame) -> pd.DataFrame:
    """Mean similarity per (model, method, similarity, step, block) of the sanity-check columns."""
    sanity = long[long["metric"] == "sanity_randomisation"]
    parts = sanity["column"].str.extract(SANITY_COLUMN)
    sanity = sanity.assign(similarity=parts["similarity"], step=parts["step"].astype(int), block=parts["block"])
    return (sanity.groupby(["model", "method", "similarity", "step", "block"], sort=False)["value"].mean()
            .rename("mean_similarity").reset_index())


def plot_sanity_curves(long: pd.DataFrame, png_path: str, data_path: str) -> None:
    """Cascading randomisation: mean similarity to the original maps after randomising the top k
    blocks (from the logits down), per similarity measure; one line per (method, model)."""
    data = sanity_long_form(long)
    _write_data(data, data_path)
    similarities = list(dict.fromkeys(data["similarity"]))
    fig, axes = plt.subplots(1, max(len(similarities), 1), figsize=(4.2 * max(len(similarities), 1), 4), squeeze=False)
    for ax, similarity in zip(axes[0], similarities):
        part = data[data["similarity"] == similarity]
        sns.lineplot(data=part, x="step", y="mean_similarity", hue="method", style="model", marker="o", ax=ax,
                     legend=ax is axes[0][-1])
        ax.set_title(similarity)
        ax.set_xlabel("blocks randomised (from the logits down)")
        ax.set_ylim(-0.1, 1.05)
    if similarities:
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    _save(fig, png_path)


def plot_map_grid(model: str, images: np.ndarray, image_ids: np.ndarray, maps: dict[str, np.ndarray],
                  png_path: str, data_path: str) -> None:
    """Rows = images (k, C, H, W) in [0, 1]; columns = the image, then each method's map (k, H, W),
    drawn with a diverging scale symmetric about 0 per map (maps are not rescaled). Data: NPZ of the
    images, their ids and every map."""
    Path(data_path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(data_path, images=images, image_ids=image_ids, **{f"map_{m}": v for m, v in maps.items()})
    k, methods = len(images), list(maps)
    fig, axes = plt.subplots(k, len(methods) + 1, figsize=(1.5 * (len(methods) + 1), 1.5 * k + 0.4), squeeze=False)
    for row in range(k):
        axes[row][0].imshow(np.clip(images[row].transpose(1, 2, 0), 0, 1))
        axes[row][0].set_ylabel(f"#{image_ids[row]}", fontsize=8)
        for col, method in enumerate(methods, start=1):
            heat = maps[method][row]
            bound = float(np.nanmax(np.abs(heat))) or 1.0
            axes[row][col].imshow(heat, cmap="RdBu_r", vmin=-bound, vmax=bound)
    for col, title in enumerate(["image", *methods]):
        axes[0][col].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(model, fontsize=10)
    _save(fig, png_path)
