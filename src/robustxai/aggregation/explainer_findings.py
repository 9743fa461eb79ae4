"""The second study's findings (Zeng et al. 2021, see ../shared/reference/explainer-and-faithfulness.md
section 4) checked against one run's ROAR, latency and sanity tables, each with a verdict and the
numbers that decide it.

Decision rules. "The explainer" is a method of family "learned" on a model whose alignment is
robust (a), or each explainer model (c, d, e). ROAR accuracies are means over repeats of the final
epoch's test accuracy (lower = more faithful), pixels ranked by each map's magnitude; blurred controls
are left out of the orderings. A ROAR cell whose mask-only control flags leakage (``confounded``, see
tables/roar_leakage.csv) does not count, nor does one whose retraining or mask-only control had not
converged (``converged``, ``leakage_converged``: training accuracy still rising at the end, so the drop
measures the recipe): a comparison that needs it is decided by ROAD instead (mean per-image MoRF area,
``road_morf``, lower = more faithful; it needs no retraining, so masks cannot leak into it and nothing
has to converge), and the finding says so.
(a) at the largest fraction the explainer's accuracy is the lowest of every method on its model;
(b) the robust twin's SmoothGrad (``robust_counterpart``) is below the model's own saliency
(``gradient``) at every fraction above 0, on every model that has both; (c) at the largest fraction
the robust-aligned explainer's accuracy is below the standard-aligned one's; (d) the explainer's
batch-1 latency is below every other method's (but the random baseline's) on each explainer model; (e) after last-block randomisation the
explainer's maps change (mean |Spearman| with the original maps below 0.5) while every
gradient-family method's do not (at least 0.5). A finding whose inputs are missing is
"inconclusive", and so are (a) to (c) when ROAR's unmodified anchor retrains to more than 0.05 below
its model's own test accuracy (a retraining that cannot learn the task measures nothing). The spread
over repeats (sd) is shown beside each mean.
"""
from __future__ import annotations

import pandas as pd

from robustxai.aggregation.findings import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Finding, _fmt, verdict_lines

#: mean |Spearman| between original and randomised maps below which a method's maps "change"
CHANGED_BELOW = 0.5
#: how far below the explained model's own test accuracy ROAR's unmodified anchor may fall before the
#: retraining counts as too short to read drops from
ANCHOR_GAP = 0.05
#: the per-image column that decides a comparison whose ROAR cells leak (ROAD MoRF area, lower = better)
ROAD_HEADLINE = "road_morf"


def _anchor_problem(roar: pd.DataFrame | None) -> str | None:
    """Why ROAR's drops cannot be read (an anchor retrained on unmodified images more than ANCHOR_GAP
    below its model's own accuracy), or None."""
    if roar is None or "model_test_accuracy" not in roar:
        return None
    anchors = roar[(roar["fraction"] == 0) & roar["model_test_accuracy"].notna()].drop_duplicates("model")
    short = anchors[anchors["accuracy"] < anchors["model_test_accuracy"] - ANCHOR_GAP]
    if short.empty:
        return None
    return ("ROAR's retraining does not learn the task as the model did: on unmodified images it reaches " + ", ".join(
        f"{r.model} {_fmt(r.accuracy)} vs the model's own {_fmt(r.model_test_accuracy)}" for r in short.itertuples())
        + f" (more than {ANCHOR_GAP} below); retrain with the model's own recipe (no roar.training override, "
        "roar.train_images: all)")


def _not_counted(row) -> str:
    """Why a ROAR row (a tuple or Series of tables/roar.csv) does not count, or "": its mask-only control
    flags leakage, its retraining or that control had not converged (columns absent: not checked)."""
    def checked_false(column: str) -> bool:
        value = getattr(row, column, None)
        return value is not None and not pd.isna(value) and not bool(value)

    if row.confounded:
        return "mask leaks"
    if checked_false("converged"):
        return "retraining not converged"
    if checked_false("leakage_converged"):
        return "mask-only control not converged"
    return ""


def _roar_methods(roar: pd.DataFrame) -> pd.DataFrame:
    """ROAR rows of attribution methods (no blurred controls) at fractions above 0, with ``excluded``:
    why each does not count (``_not_counted``; "" where it does)."""
    rows = roar[(roar["fraction"] > 0) & ~roar["method"].str.endswith("_blurred")]
    return rows.assign(excluded=[_not_counted(row) for row in rows.itertuples()])


def road_scores(per_image: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """(model, method) -> mean per-image ROAD MoRF area (``ROAD_HEADLINE``, lower = more faithful); {}
    without ROAD rows."""
    if per_image is None or "column" not in per_image:
        return {}
    rows = per_image[per_image["column"] == ROAD_HEADLINE]
    return {key: float(value) for key, value in rows.groupby(["model", "method"], sort=False)["value"].mean().items()}


def _roar_text(row) -> str:
    spread = f" (sd {_fmt(row.accuracy_sd)})" if pd.notna(getattr(row, "accuracy_sd", float("nan"))) else ""
    value = f"{_fmt(row.accuracy)}{spread}" if pd.notna(row.accuracy) else "not retrained"
    return f"{row.method} {value}{f' [{row.excluded}: not counted]' if row.excluded else ''}"


def _road_lowest(finding: Finding, road: dict, model: str, methods: list[str], wanted: set[str]) -> bool | None:
    """Whether one of ``wanted`` has the lowest ROAD MoRF of ``methods`` on ``model`` (evidence added), or
    None where ROAD lacks one of them."""
    scores = {method: road.get((model, method)) for method in methods}
    if any(v is None for v in scores.values()) or not wanted & set(scores):
        finding.evidence.append(f"{model}: ROAD MoRF needed but missing for "
                                f"{sorted(m for m, v in scores.items() if v is None)}")
        return None
    ordered = sorted(scores.items(), key=lambda item: item[1])
    finding.evidence.append(f"{model}, ROAD MoRF (headline where ROAR cells do not count; lower = more faithful): " + ", ".join(
        f"{method} {_fmt(value)}" for method, value in ordered))
    return ordered[0][0] in wanted


def lowest_roar_finding(roar: pd.DataFrame | None, families: dict[str, str], alignments: dict[str, str],
                        road: dict | None = None) -> Finding:
    """(a) the robust-aligned explainer has the lowest ROAR accuracy at the largest fraction (ROAD where
    the explainer's cell leaks; leaking cells of other methods are left out)."""
    finding = Finding("a", "At the largest fraction removed, the learned explainer has the lowest ROAR accuracy, "
                           "below occlusion and the robust twin's SmoothGrad.", INCONCLUSIVE)
    rows = pd.DataFrame() if roar is None else _roar_methods(roar)
    models = [m for m in rows["model"].unique() if alignments.get(m) == "robust"] if len(rows) else []
    checked = []
    for model in models:
        part = rows[rows["model"] == model]
        last = part[part["fraction"] == part["fraction"].max()].sort_values("accuracy")
        learned = set(last.loc[last["method"].map(families).eq("learned"), "method"])
        if not learned or len(last) < 2:
            continue
        finding.evidence.append(f"{model} at {last['fraction'].iloc[0]:g}: " + ", ".join(
            _roar_text(r) for r in last.itertuples()))
        clean = last[last["excluded"] == ""]
        if learned <= set(clean["method"]) and len(clean) >= 2:
            checked.append(clean["method"].iloc[0] in learned)
        else:
            checked.append(_road_lowest(finding, road or {}, model, list(last["method"]), learned))
    checked = [c for c in checked if c is not None]
    if not checked:
        finding.evidence.append("needs ROAR of a robust-aligned explainer model with its explainer and other methods "
                                "(or, where its cells leak, their ROAD)")
        return finding
    finding.verdict = REPRODUCED if all(checked) else NOT_REPRODUCED
    return finding


def robust_attribution_finding(roar: pd.DataFrame | None, registered: dict[str, str], road: dict | None = None
                               ) -> Finding:
    """(b) the robust twin's SmoothGrad is below the model's own saliency at every fraction (fractions
    where either cell leaks are left out; ROAD decides a model where all do)."""
    finding = Finding("b", "The robust twin's SmoothGrad (robust attribution) is more faithful than the model's own "
                           "saliency at every fraction.", INCONCLUSIVE)
    rows = pd.DataFrame() if roar is None else _roar_methods(roar)
    checked = []
    for model, part in (rows.groupby("model", sort=False) if len(rows) else []):
        kinds = part["method"].map(registered)
        robust, saliency = part[kinds == "robust_counterpart"], part[kinds == "gradient"]
        if robust.empty or saliency.empty:
            continue
        both = robust.merge(saliency, on="fraction", suffixes=("_robust", "_saliency")).set_index("fraction")
        counted = 0
        for fraction, r in both.iterrows():
            excluded = "; ".join(reason for reason in (r.excluded_robust, r.excluded_saliency) if reason)
            finding.evidence.append(f"{model} at {fraction:g}: robust attribution {_fmt(r.accuracy_robust)} vs "
                                    f"saliency {_fmt(r.accuracy_saliency)}{f' [{excluded}: not counted]' if excluded else ''}")
            if not excluded:
                checked.append(r.accuracy_robust < r.accuracy_saliency)
                counted += 1
        if not counted:
            methods = [robust["method"].iloc[0], saliency["method"].iloc[0]]
            checked.append(_road_lowest(finding, road or {}, model, methods, {methods[0]}))
    checked = [c for c in checked if c is not None]
    if not checked:
        finding.evidence.append("needs ROAR rows of a robust_counterpart method and of gradient on one model")
        return finding
    finding.verdict = REPRODUCED if all(checked) else NOT_REPRODUCED
    return finding


def alignment_finding(roar: pd.DataFrame | None, families: dict[str, str], alignments: dict[str, str],
                      road: dict | None = None) -> Finding:
    """(c) robust alignment is more faithful than standard alignment at the largest fraction (ROAD of the
    explainers where a needed cell leaks)."""
    finding = Finding("c", "Robust alignment gives a more faithful explainer than standard alignment.", INCONCLUSIVE)
    rows = pd.DataFrame() if roar is None else _roar_methods(roar)
    if len(rows):
        rows = rows[rows["method"].map(families).eq("learned") & rows["model"].map(alignments).notna()]
    if rows.empty or set(rows["model"].map(alignments)) < {"robust", "standard"}:
        finding.evidence.append("needs ROAR of the explainer method on a robust-aligned and a standard-aligned model")
        return finding
    last = rows[rows["fraction"] == rows["fraction"].max()]
    finding.evidence.append(f"at {last['fraction'].iloc[0]:g}: " + ", ".join(
        f"{r.model} ({alignments[r.model]}) {_roar_text(r)}" for r in last.itertuples()))
    if (last["excluded"] == "").all():
        means = last.groupby(last["model"].map(alignments))["accuracy"].mean()
        finding.verdict = REPRODUCED if means["robust"] < means["standard"] else NOT_REPRODUCED
        return finding
    scores = {alignments[r.model]: (road or {}).get((r.model, r.method)) for r in last.itertuples()}
    if any(v is None for v in scores.values()):
        finding.evidence.append("a needed ROAR cell does not count and ROAD of the explainers is missing")
        return finding
    finding.evidence.append("ROAD MoRF of the explainers (headline where ROAR cells do not count; lower = more faithful): "
                            + ", ".join(f"{alignment} {_fmt(v)}" for alignment, v in scores.items()))
    finding.verdict = REPRODUCED if scores["robust"] < scores["standard"] else NOT_REPRODUCED
    return finding


def latency_finding(latency: pd.DataFrame | None, alignments: dict[str, str]) -> Finding:
    """(d) the explainer is the fastest method on each explainer model (batch-1 milliseconds; the random
    baseline, which explains nothing, left out)."""
    finding = Finding("d", "The learned explainer is the fastest explanation method.", INCONCLUSIVE)
    if latency is None or "learned" not in set(latency["family"]):
        finding.evidence.append("needs the latency table with the explainer method")
        return finding
    checked = []
    for model, part in latency[latency["family"] != "baseline"].groupby("model", sort=False):
        if model not in alignments or "learned" not in set(part["family"]) or len(part) < 2:
            continue
        part = part.sort_values("ms_batch1")
        finding.evidence.append(f"{model}, ms per explanation at batch 1: " + ", ".join(
            f"{r.method} {r.ms_batch1:.3g}" for r in part.itertuples()))
        checked.append(part["family"].iloc[0] == "learned")
    if not checked:
        finding.evidence.append("needs the explainer and another method timed on one model")
        return finding
    finding.verdict = REPRODUCED if all(checked) else NOT_REPRODUCED
    return finding


def last_block_finding(per_image: pd.DataFrame | None, metrics: list[str], families: dict[str, str]) -> Finding:
    """(e) last-block randomisation changes the explainer's maps but not gradient-family maps."""
    finding = Finding("e", "Randomising the last block changes the explainer's maps, while gradient, integrated "
                           "gradients and DeepLIFT maps barely change.", INCONCLUSIVE)
    if per_image is None or not metrics:
        finding.evidence.append("needs a sanity_randomisation metric with mode: last_block")
        return finding
    rows = per_image[per_image["metric"].isin(metrics) & per_image["column"].str.startswith("spearman_abs@")]
    means = rows.groupby(["model", "method"], sort=False)["value"].mean()
    learned = {key: v for key, v in means.items() if families.get(key[1]) == "learned"}
    gradient = {key: v for key, v in means.items() if families.get(key[1]) == "gradient"}
    if not learned or not gradient:
        finding.evidence.append("needs last-block sanity rows of the explainer and of a gradient-family method")
        return finding
    finding.evidence.append(f"mean |Spearman| between original and randomised maps (changed below {CHANGED_BELOW}): "
                            + ", ".join(f"{model} / {method} {_fmt(v)}" for (model, method), v in means.items()))
    changed = all(v < CHANGED_BELOW for v in learned.values())
    kept = all(v >= CHANGED_BELOW for v in gradient.values())
    finding.evidence.append(f"explainer maps changed: {'yes' if changed else 'no'}; gradient-family maps kept: "
                            f"{'yes' if kept else 'no'}")
    finding.verdict = REPRODUCED if changed and kept else NOT_REPRODUCED
    return finding


def _unseen_leaks(leakage: pd.DataFrame | None) -> str | None:
    """What the leakage check's own controls say against it (a positive control not flagged: a leak there
    would go unseen; a negative one flagged: the check flags clean masks), or None."""
    if leakage is None or "as_expected" not in leakage:
        return None
    wrong = leakage[leakage["as_expected"].eq(False)]
    if wrong.empty:
        return None
    return ("the leakage check failed its own controls (" + ", ".join(
        f"{r.control} control on {r.model} at {r.fraction:g}: leaked {r.leaked}, accuracy {_fmt(r.accuracy)} vs chance "
        f"{_fmt(r.chance)}" for r in wrong.itertuples()) + "): its verdicts there are not evidence")


def check_explainer_findings(roar: pd.DataFrame | None, latency: pd.DataFrame | None, per_image: pd.DataFrame | None,
                             catalogue: pd.DataFrame, alignments: dict[str, str], last_block_metrics: list[str],
                             leakage: pd.DataFrame | None = None) -> list[Finding]:
    """Findings (a) to (e). ``catalogue``: tables/methods.csv (method, registered, family);
    ``alignments``: explainer model -> robust / standard; ``last_block_metrics``: the metrics section's
    names of last-block sanity checks; ``leakage``: tables/roar_leakage.csv (its controls' outcomes are
    reported with the ROAR findings)."""
    families = dict(zip(catalogue["method"], catalogue["family"]))
    registered = dict(zip(catalogue["method"], catalogue["registered"]))
    road = road_scores(per_image)
    from_roar = [lowest_roar_finding(roar, families, alignments, road), robust_attribution_finding(roar, registered, road),
                 alignment_finding(roar, families, alignments, road)]
    problem = _anchor_problem(roar)
    unseen = _unseen_leaks(leakage)
    if unseen:
        for finding in from_roar:
            finding.evidence.append(unseen)
    if problem is not None:
        for finding in from_roar:
            if finding.verdict != INCONCLUSIVE:
                finding.evidence.append(f"would be {finding.verdict}, but {problem}")
                finding.verdict = INCONCLUSIVE
    return [*from_roar, latency_finding(latency, alignments), last_block_finding(per_image, last_block_metrics, families)]


def explainer_findings_markdown(findings: list[Finding], summary: str = "") -> str:
    """The second section of findings.md: ``summary`` (the models and methods the study used), the
    decision rules, a verdict table, then each finding's deciding numbers."""
    lines = ["", "# The second study's findings (learned explainer, Zeng et al. 2021)", "",
             *([summary, ""] if summary else []), __doc__.split("\n\n", 1)[1].strip(), ""]
    return "\n".join(lines + verdict_lines(findings, "({})")) + "\n"
