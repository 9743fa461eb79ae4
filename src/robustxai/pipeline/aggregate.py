"""Aggregate per-model evaluation rows into the models table and the accuracy plot."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

ACCURACY_KINDS = {"clean_accuracy": "clean", "ood_accuracy": "OOD (mean)"}


def models_table(evaluation_paths: list[str]) -> pd.DataFrame:
    """One row per model from the evaluation JSON files, in the given order."""
    return pd.DataFrame([json.loads(Path(p).read_text()) for p in evaluation_paths])


def accuracy_long_form(table: pd.DataFrame) -> pd.DataFrame:
    """(model, algorithm, kind, accuracy) rows: clean, mean OOD, and each robust accuracy column."""
    kinds = dict(ACCURACY_KINDS)
    kinds.update({c: "robust " + c.removeprefix("robust_accuracy_") for c in table.columns
                  if c.startswith("robust_accuracy_")})
    present = [c for c in kinds if c in table.columns]
    long = table.melt(id_vars=["model", "algorithm"], value_vars=present, var_name="kind", value_name="accuracy")
    long["kind"] = long["kind"].map(kinds)
    return long


def plot_accuracies(table: pd.DataFrame, png_path: str, data_path: str) -> None:
    """Bar plot of clean vs OOD vs robust accuracy per model; the plotted data goes to ``data_path``."""
    long = accuracy_long_form(table)
    long.to_csv(data_path, index=False)
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(table)), 4))
    sns.barplot(data=long, x="model", y="accuracy", hue="kind", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.set_ylabel("accuracy")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(title="", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(png_path, dpi=150)
    plt.close(fig)


def aggregate_models_job(evaluation_paths: list[str], table_path: str, png_path: str, data_path: str) -> pd.DataFrame:
    """Write ``tables/models.csv`` and the accuracy plot (with its data) for all models."""
    table = models_table(evaluation_paths)
    Path(table_path).parent.mkdir(parents=True, exist_ok=True)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(table_path, index=False)
    plot_accuracies(table, png_path, data_path)
    return table
