"""The study's analyses on the tables: correlations, method ranking, rank agreement, group
comparisons of training algorithms, and a per-model explainability score.

``scores`` maps each explainability score column (e.g. insertion, deletion, energy_in_box) to
whether higher is better; the metric classes declare it (``Metric.higher_is_better``).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from robustxai.aggregation.statistics import CORRELATIONS, correlation_with_ci, kendalls_w, paired_test
from robustxai.aggregation.tables import score_means

#: model-level criteria correlated with explainability across models, when present
MODEL_CRITERIA = ("clean_accuracy", "ood_accuracy", "confidence_mean")
#: the training algorithms compared, in this order (others, e.g. explainer, follow in the order seen)
ALGORITHMS = ("vanilla", "adversarial", "advprop")
COMPARISON_COLUMNS = ["family", "column", "group_a", "group_b", "mean_a", "mean_b", "mean_difference", "statistic",
                      "p_value", "n", "better"]
#: method families whose means enter the "all methods" averages and the explainability score
EXCLUDED_FAMILIES = ("baseline",)


def model_criteria(models: pd.DataFrame) -> list[str]:
    """Accuracy-like columns of models.csv: clean, OOD, each robust accuracy, mean confidence."""
    robust = [c for c in models.columns if c.startswith("robust_accuracy_")]
    return [c for c in (*MODEL_CRITERIA[:2], *robust, MODEL_CRITERIA[2]) if c in models.columns]


def across_model_correlations(explainability: pd.DataFrame, models: pd.DataFrame, scores: dict[str, bool],
                              families: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Correlations across models (one point per model): between the model criteria, and between
    each criterion and each score column, per method and for the mean over methods (method "all",
    baseline methods left out). Rows: method, x, y, kind, r, ci_low, ci_high, p_value, n."""
    criteria = model_criteria(models)
    means = score_means(explainability, scores)
    real = means[means["method"].map(lambda m: families.get(m, "") not in EXCLUDED_FAMILIES)]
    averaged = real.groupby(["model", "column"], sort=False)["mean"].mean().reset_index().assign(method="all")
    rows = []

    def add(method: str, x_name: str, x: np.ndarray, y_name: str, y: np.ndarray) -> None:
        for kind in CORRELATIONS:
            rows.append({"method": method, "x": x_name, "y": y_name, "kind": kind,
                         **correlation_with_ci(x, y, kind, seed=seed)})

    indexed = models.set_index("model")
    for x_name, y_name in itertools.combinations(criteria, 2):
        add("-", x_name, indexed[x_name].to_numpy(), y_name, indexed[y_name].to_numpy())
    for (method, column), group in pd.concat([means, averaged]).groupby(["method", "column"], sort=False):
        joined = group.join(indexed, on="model")
        for x_name in criteria:
            add(method, x_name, joined[x_name].to_numpy(), column, joined["mean"].to_numpy())
    return pd.DataFrame(rows)


def within_model_correlations(long: pd.DataFrame, scores: dict[str, bool], seed: int = 0) -> pd.DataFrame:
    """Per-image correlations of each score column with the image's confidence, per (model, method)
    and pooled over models (model "all"). Rows: model, method, x ("confidence"), y, kind, r, ci_low,
    ci_high, p_value, n."""
    values = long[long["column"].isin(list(scores))]
    rows = []
    groups = [(key, group) for key, group in values.groupby(["model", "method", "column"], sort=False)]
    groups += [(("all", method, column), group)
               for (method, column), group in values.groupby(["method", "column"], sort=False)]
    for (model, method, column), group in groups:
        for kind in CORRELATIONS:
            rows.append({"model": model, "method": method, "x": "confidence", "y": column, "kind": kind,
                         **correlation_with_ci(group["confidence"].to_numpy(), group["value"].to_numpy(), kind,
                                               seed=seed)})
    return pd.DataFrame(rows)


def method_ranks(explainability: pd.DataFrame, scores: dict[str, bool]) -> pd.DataFrame:
    """Rank of each method (1 = best, ties averaged) within each (model, score column):
    rows model, column, method, rank."""
    means = score_means(explainability, scores).dropna(subset=["oriented"])
    means["rank"] = means.groupby(["model", "column"])["oriented"].rank(ascending=False, method="average")
    return means[["model", "column", "method", "rank"]]


def method_ranking(explainability: pd.DataFrame, scores: dict[str, bool], families: dict[str, str]) -> pd.DataFrame:
    """One row per method, best first: family, mean_rank over all (model, score column) pairs, the
    mean rank per score column (``rank_<column>``) and how many (model, column) pairs it was ranked in."""
    ranks = method_ranks(explainability, scores)
    table = ranks.groupby("method", sort=False)["rank"].agg(mean_rank="mean", rankings="count")
    per_column = ranks.pivot_table(index="method", columns="column", values="rank", aggfunc="mean")
    table = table.join(per_column.add_prefix("rank_"))
    table.insert(0, "family", [families.get(m, "") for m in table.index])
    return table.sort_values("mean_rank").reset_index()


def ranking_agreement(explainability: pd.DataFrame, scores: dict[str, bool]) -> pd.DataFrame:
    """Kendall's W of the score columns (raters) ranking the methods (items): per model, and over all
    models (each column's ranking = its methods' mean rank over models, re-ranked). Rows: model,
    kendalls_w, metrics (raters), methods (items)."""
    ranks = method_ranks(explainability, scores)
    rows = []

    def add(model: str, matrix: pd.DataFrame) -> None:
        matrix = matrix.dropna(axis=1)  # methods every column ranked
        ranked = matrix.rank(axis=1).to_numpy()
        rows.append({"model": model, "kendalls_w": kendalls_w(ranked), "metrics": matrix.shape[0],
                     "methods": matrix.shape[1]})

    for model, group in ranks.groupby("model", sort=False):
        add(model, group.pivot(index="column", columns="method", values="rank"))
    add("all", ranks.pivot_table(index="column", columns="method", values="rank", aggfunc="mean"))
    return pd.DataFrame(rows)


def group_comparisons(long: pd.DataFrame, models: pd.DataFrame, scores: dict[str, bool],
                      families: dict[str, str]) -> pd.DataFrame:
    """Training algorithms compared per method family and score column, paired by (architecture,
    method, image): every pair of algorithms present (vanilla, adversarial, advprop, then any other);
    models of the same (architecture, algorithm) are averaged per image first. Rows: family, column, group_a,
    group_b, n (pairs), mean_a, mean_b, mean_difference (b - a), statistic, p_value (Wilcoxon
    signed-rank), better ("a", "b" or "neither" at p < 0.05, by the column's direction)."""
    values = long[long["column"].isin(list(scores))].join(models.set_index("model")[["arch", "algorithm"]],
                                                          on="model")
    values = values.assign(family=values["method"].map(lambda m: families.get(m, "")))
    values = values[~values["family"].isin(EXCLUDED_FAMILIES)]
    cells = values.groupby(["family", "column", "arch", "method", "image", "algorithm"], sort=False)["value"].mean()
    wide = cells.unstack("algorithm")
    present = [a for a in ALGORITHMS if a in wide.columns] + [a for a in wide.columns if a not in ALGORITHMS]
    rows = []
    for (family, column), group in wide.groupby(level=["family", "column"], sort=False):
        for a, b in itertools.combinations(present, 2):
            result = paired_test(group[a].to_numpy(), group[b].to_numpy())
            if result["n"] == 0:
                continue
            gain = result["mean_difference"] if scores[column] else -result["mean_difference"]
            significant = result["p_value"] < 0.05
            better = ("b" if gain > 0 else "a") if significant and gain != 0 else "neither"
            rows.append({"family": family, "column": column, "group_a": a, "group_b": b, **result, "better": better})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def explainability_scores(explainability: pd.DataFrame, scores: dict[str, bool],
                          families: dict[str, str]) -> pd.Series:
    """Per model, a score in [0, 1]: 1 - (mean rank - 1) / (models - 1), where the mean rank is the
    model's rank among models (1 = best) averaged over every (method, score column) pair, baseline
    methods left out. 1 = best of all models on every pair. Indexed by model."""
    means = score_means(explainability, scores).dropna(subset=["oriented"])
    means = means[means["method"].map(lambda m: families.get(m, "") not in EXCLUDED_FAMILIES)]
    means["rank"] = means.groupby(["method", "column"])["oriented"].rank(ascending=False, method="average")
    models = means["model"].nunique()
    mean_rank = means.groupby("model", sort=False)["rank"].mean()
    return (1 - (mean_rank - 1) / max(models - 1, 1)).rename("explainability_score")

