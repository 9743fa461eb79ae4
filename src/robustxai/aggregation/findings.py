"""The paper's five findings (Nourelahi et al. 2022, see ../shared/reference/paper-protocols.md 1.2)
checked against one run's tables, each with a verdict and the numbers that decide it.

Verdicts: "reproduced", "not reproduced", or "inconclusive" (the run lacks what the finding needs,
e.g. no AdvProp models). Group differences count at p < 0.05 (Wilcoxon signed-rank, paired by
architecture, method and image; not corrected for multiple comparisons); "a majority" means more
than half.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
#: registered methods that count as Grad-CAM for finding 3
GRADCAM_METHODS = ("gradcam", "gradcam_plus_plus")


@dataclass
class Finding:
    """One finding: its number, the paper's claim, this run's verdict and the deciding numbers."""

    number: int
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"


def _wins(comparisons: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The comparison rows of algorithms ``a`` vs ``b`` (either order, normalised so ``a`` is group_a)."""
    rows = comparisons[((comparisons["group_a"] == a) & (comparisons["group_b"] == b))
                       | ((comparisons["group_a"] == b) & (comparisons["group_b"] == a))].copy()
    flipped = rows["group_a"] == b
    rows.loc[flipped, "better"] = rows.loc[flipped, "better"].map({"a": "b", "b": "a", "neither": "neither"})
    rows.loc[flipped, ["mean_a", "mean_b"]] = rows.loc[flipped, ["mean_b", "mean_a"]].to_numpy()
    return rows


def _describe(rows: pd.DataFrame, a: str, b: str) -> list[str]:
    return [f"{r.family} / {r.column}: {a} {_fmt(r.mean_a)} vs {b} {_fmt(r.mean_b)}, p = {r.p_value:.2g} "
            f"(n = {r.n}) -> better: {dict(a=a, b=b).get(r.better, 'neither')}" for r in rows.itertuples()]


def _majority(rows: pd.DataFrame, side: str) -> bool:
    return len(rows) > 0 and (rows["better"] == side).sum() > len(rows) / 2


def robust_gradient_finding(comparisons: pd.DataFrame) -> Finding:
    """Finding 1: robust models are more explainable with gradient-based methods, not CAM- or
    perturbation-based ones. Per family, robust wins when it is better on a majority of score columns."""
    finding = Finding(1, "Robust CNNs are more explainable than vanilla ones with gradient-based methods, "
                         "but not with CAM-based or perturbation-based methods.", INCONCLUSIVE)
    rows = _wins(comparisons, "vanilla", "adversarial")
    if len(rows) == 0 or "gradient" not in set(rows["family"]):
        finding.evidence.append("needs vanilla and adversarial models and a gradient-based method")
        return finding
    robust_wins = {family: _majority(rows[rows["family"] == family], "b") for family in rows["family"].unique()}
    finding.evidence += _describe(rows, "vanilla", "adversarial")
    finding.evidence.append("robust better on a majority of columns: "
                            + ", ".join(f"{f} {'yes' if w else 'no'}" for f, w in robust_wins.items()))
    others = [w for f, w in robust_wins.items() if f in ("cam", "perturbation")]
    finding.verdict = REPRODUCED if robust_wins["gradient"] and not any(others) else NOT_REPRODUCED
    return finding


def advprop_finding(models: pd.DataFrame, comparisons: pd.DataFrame) -> Finding:
    """Finding 2: AdvProp models are the most accurate (highest clean accuracy among an
    architecture's algorithms, in a majority of architectures) but not more explainable than vanilla
    ones (not better on a majority of (family, column) comparisons)."""
    finding = Finding(2, "AdvProp CNNs are the most accurate, but not more explainable.", INCONCLUSIVE)
    per_arch = models.groupby(["arch", "algorithm"])["clean_accuracy"].mean().unstack("algorithm")
    if "advprop" not in per_arch.columns or "vanilla" not in per_arch.columns:
        finding.evidence.append("needs AdvProp and vanilla models")
        return finding
    most_accurate = per_arch.idxmax(axis=1) == "advprop"
    for arch, row in per_arch.iterrows():
        finding.evidence.append(f"{arch} clean accuracy: " + ", ".join(f"{a} {_fmt(v)}" for a, v in row.items()))
    rows = _wins(comparisons, "vanilla", "advprop")
    if len(rows) == 0:
        finding.evidence.append("needs explainability metrics of AdvProp and vanilla models")
        return finding
    finding.evidence += _describe(rows, "vanilla", "advprop")
    more_explainable = _majority(rows, "b")
    finding.evidence.append(f"AdvProp most accurate in {int(most_accurate.sum())} of {len(most_accurate)} "
                            f"architectures; better explained than vanilla on "
                            f"{int((rows['better'] == 'b').sum())} of {len(rows)} comparisons")
    accurate = most_accurate.sum() > len(most_accurate) / 2
    finding.verdict = REPRODUCED if accurate and not more_explainable else NOT_REPRODUCED
    return finding


def best_methods_finding(ranking: pd.DataFrame, registered: dict[str, str]) -> Finding:
    """Finding 3: Grad-CAM and RISE are the best methods: the two best mean ranks are a Grad-CAM
    method and RISE."""
    finding = Finding(3, "Grad-CAM and RISE are consistently the best attribution methods.", INCONCLUSIVE)
    kinds = ranking["method"].map(lambda m: registered.get(m, m))
    if not kinds.isin(GRADCAM_METHODS).any() or not (kinds == "rise").any():
        finding.evidence.append("needs a Grad-CAM method and RISE in the study")
        return finding
    finding.evidence.append("mean rank over models and metrics (1 = best): "
                            + ", ".join(f"{r.method} {r.mean_rank:.2f}" for r in ranking.itertuples()))
    top = set(kinds.iloc[:2])
    finding.verdict = REPRODUCED if top & set(GRADCAM_METHODS) and "rise" in top else NOT_REPRODUCED
    return finding


def confidence_finding(models: pd.DataFrame, comparisons: pd.DataFrame, within: pd.DataFrame) -> Finding:
    """Finding 4: insertion favours vanilla and deletion robust models, because both follow
    confidence. Reproduced when (a) per-image Spearman correlations with confidence are positive for
    both insertion and deletion (median over (model, method) > 0 and a majority with the 95% CI above
    0), and (b) vanilla is better on insertion and robust better on deletion in a majority of families."""
    finding = Finding(4, "Insertion is biased towards vanilla models and Deletion towards robust models, "
                         "because both correlate with the model's confidence.", INCONCLUSIVE)
    spearman = within[(within["kind"] == "spearman") & (within["model"] != "all")]
    rows = _wins(comparisons, "vanilla", "adversarial")
    needed = {"insertion", "deletion"}
    if not needed <= set(spearman["y"]) or not needed <= set(rows["column"]):
        finding.evidence.append("needs insertion and deletion, and vanilla and adversarial models")
        return finding
    follows = {}
    for column in ("insertion", "deletion"):
        r = spearman[spearman["y"] == column]
        positive = (r["ci_low"] > 0).sum()
        follows[column] = r["r"].median() > 0 and positive > len(r) / 2
        finding.evidence.append(f"{column} vs confidence, per-image Spearman over {len(r)} (model, method) pairs: "
                                f"median r = {_fmt(r['r'].median())}, CI above 0 in {positive}")
    confidence = models.groupby("algorithm")["confidence_mean"].mean()
    finding.evidence.append("mean confidence: " + ", ".join(f"{a} {_fmt(v)}" for a, v in confidence.items()))
    insertion, deletion = rows[rows["column"] == "insertion"], rows[rows["column"] == "deletion"]
    finding.evidence += _describe(pd.concat([insertion, deletion]), "vanilla", "adversarial")
    biased = _majority(insertion, "a") and _majority(deletion, "b")
    finding.evidence.append(f"vanilla better on insertion in {(insertion['better'] == 'a').sum()} of {len(insertion)} "
                            f"families; robust better on deletion in {(deletion['better'] == 'b').sum()} of "
                            f"{len(deletion)}")
    finding.verdict = REPRODUCED if all(follows.values()) and biased else NOT_REPRODUCED
    return finding


def no_best_model_finding(models: pd.DataFrame, scores: pd.Series) -> Finding:
    """Finding 5: no model is best on all three criteria (clean accuracy, OOD accuracy,
    explainability score): the three sets of best models (ties included) share no model."""
    finding = Finding(5, "No single CNN is the best on accuracy, OOD accuracy and explainability.", INCONCLUSIVE)
    if len(models) < 2 or scores.empty:
        finding.evidence.append("needs at least two models with explainability scores")
        return finding
    criteria = models.set_index("model")[["clean_accuracy", "ood_accuracy"]]
    criteria = criteria.join(scores.rename("explainability_score"))
    best = {}
    for column in criteria.columns:
        top = criteria[column].max()
        best[column] = set(criteria.index[criteria[column] == top])
        finding.evidence.append(f"best {column}: {', '.join(sorted(best[column]))} ({_fmt(top)})")
    shared = set.intersection(*best.values())
    finding.verdict = NOT_REPRODUCED if shared else REPRODUCED
    return finding


def check_findings(models: pd.DataFrame, comparisons: pd.DataFrame, ranking: pd.DataFrame, within: pd.DataFrame,
                   scores: pd.Series, registered: dict[str, str]) -> list[Finding]:
    """All five findings, in the paper's order."""
    return [robust_gradient_finding(comparisons), advprop_finding(models, comparisons),
            best_methods_finding(ranking, registered), confidence_finding(models, comparisons, within),
            no_best_model_finding(models, scores)]


def verdict_lines(findings: list[Finding], numbering: str = "{}.") -> list[str]:
    """Markdown lines: a verdict table, then a section per finding with its deciding numbers;
    ``numbering`` formats a finding's number in its heading."""
    lines = ["| # | finding | verdict |", "|---|---|---|"]
    lines += [f"| {f.number} | {f.claim} | **{f.verdict}** |" for f in findings]
    for f in findings:
        lines += ["", f"## {numbering.format(f.number)} {f.claim}", "", f"**{f.verdict}**", ""]
        lines += [f"- {item}" for item in f.evidence]
    return lines


def study_summary(models, methods) -> str:
    """One line naming the models and methods a study's section used (iterables of names, in order)."""
    def names(values) -> str:
        return ", ".join(f"`{v}`" for v in dict.fromkeys(values)) or "none"

    return f"Models: {names(models)}; methods: {names(methods)}."


#: a model is at chance when the upper end of its clean accuracy's 95 % Wilson interval stays below
#: 1 / classes + this margin (a training run that never left chance, e.g. at too high a learning rate)
CHANCE_MARGIN = 0.05


def models_at_chance(models: pd.DataFrame, num_classes: dict[str, int]) -> list[str]:
    """The models (rows of the models table: model, clean_accuracy, test_images) whose clean test accuracy
    cannot be told from guessing among their ``num_classes`` (model -> classes; models not in it are skipped)."""
    from robustxai.roar.leakage import wilson_interval

    return [row.model for row in models.itertuples() if row.model in num_classes and
            wilson_interval(round(row.clean_accuracy * row.test_images), int(row.test_images))[1]
            < 1 / num_classes[row.model] + CHANCE_MARGIN]


def chance_warning(models: pd.DataFrame, num_classes: dict[str, int]) -> str | None:
    """A findings.md paragraph naming the models at chance (``models_at_chance``), or None."""
    stuck = models_at_chance(models, num_classes)
    if not stuck:
        return None
    accuracy = dict(zip(models["model"], models["clean_accuracy"]))
    named = ", ".join(f"`{m}` ({accuracy[m]:.3f} against 1/{num_classes[m]})" for m in stuck)
    return (f"**Warning: models at chance.** {named}: their training never left chance (see their "
            "`models/<model>.history.csv`; a lower `training.lr` is the usual fix). Every number and verdict "
            "below that uses them is not evidence.")


def findings_markdown(findings: list[Finding], run_summary: str) -> str:
    """findings.md: a verdict table, then each finding's deciding numbers."""
    lines = ["# The paper's findings, checked against this run", "", run_summary, "",
             __doc__.split("\n\n", 1)[1].strip(), ""]
    return "\n".join(lines + verdict_lines(findings)) + "\n"
