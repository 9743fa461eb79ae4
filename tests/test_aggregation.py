"""Aggregation: statistics with known answers, tables and analyses on constructed per-image values,
and the findings' verdicts on constructed runs."""
import numpy as np
import pandas as pd
import pytest

from robustxai.aggregation import analysis
from robustxai.aggregation.findings import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, advprop_finding,
                                            best_methods_finding, check_findings, findings_markdown,
                                            no_best_model_finding, robust_gradient_finding)
from robustxai.aggregation.statistics import correlation_with_ci, kendalls_w, mean_with_ci, paired_test
from robustxai.aggregation.tables import explainability_table
from robustxai.attribution import METHODS, method_class
from robustxai.metrics import METRICS, metric_class

SCORES = {"insertion": True, "deletion": False}
FAMILIES = {"gradient": "gradient", "gradcam": "cam", "random": "baseline"}


def test_mean_ci_contains_the_mean_and_ignores_non_finite_values():
    values = np.array([0.1, 0.4, 0.2, 0.9, np.nan, 0.5, np.inf])
    mean, low, high, n = mean_with_ci(values)
    assert n == 5 and mean == pytest.approx(0.42)
    assert 0.1 <= low < mean < high <= 0.9
    assert mean_with_ci(np.full(10, 0.3))[:3] == pytest.approx((0.3, 0.3, 0.3))
    assert np.isnan(mean_with_ci(np.array([np.nan]))[0])
    assert mean_with_ci(values, seed=1) == mean_with_ci(values, seed=1)  # reproducible


def test_correlations_of_known_relations():
    x = np.linspace(0, 1, 30)
    with_itself = correlation_with_ci(x, x, "pearson")
    assert with_itself["r"] == pytest.approx(1) and with_itself["ci_low"] == pytest.approx(1) and with_itself["n"] == 30
    assert correlation_with_ci(x, -x, "spearman")["r"] == pytest.approx(-1)
    monotone = x ** 4  # monotone but not linear: Spearman 1, Pearson below 1
    assert correlation_with_ci(x, monotone, "spearman")["r"] == pytest.approx(1)
    pearson = correlation_with_ci(x, monotone, "pearson")
    assert 0.8 < pearson["r"] < 0.99 and pearson["ci_low"] <= pearson["r"] <= pearson["ci_high"]
    rng = np.random.default_rng(0)
    noise = correlation_with_ci(rng.normal(size=200), rng.normal(size=200))
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["p_value"] > 0.05
    assert np.isnan(correlation_with_ci(x, np.ones(30))["r"])
    assert correlation_with_ci(np.r_[x, np.nan], np.r_[x, 1.0])["n"] == 30
    with pytest.raises(ValueError, match="kind must be"):
        correlation_with_ci(x, x, "kendall")


def test_kendalls_w_by_hand():
    assert kendalls_w(np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])) == pytest.approx(1)
    assert kendalls_w(np.array([[1, 2, 3], [3, 2, 1]])) == pytest.approx(0)
    # rank sums 2, 5, 5 (mean 4): S = 6, W = 12 S / (m^2 (n^3 - n)) = 72 / 96
    assert kendalls_w(np.array([[1, 2, 3], [1, 3, 2]])) == pytest.approx(0.75)
    assert np.isnan(kendalls_w(np.array([[1, 2, 3]])))


def test_paired_test_finds_a_constant_shift():
    a = np.linspace(0, 1, 20)
    shifted = paired_test(a, a + 0.1 + 0.01 * np.sin(np.arange(20)))
    assert shifted["mean_difference"] == pytest.approx(0.1, abs=0.01) and shifted["p_value"] < 0.001
    assert paired_test(a, a)["p_value"] == 1.0 and paired_test(a, a)["n"] == 20


def constructed_long(models=("m-vanilla", "m-robust"), images=20):
    """Per-image insertion/deletion of methods gradient, gradcam, random on two models: gradcam is
    best, random worst; the robust model is better with gradient only; confidence drives insertion."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        confidence = rng.uniform(0.5, 1.0, images)
        for method, quality in (("gradient", 0.5), ("gradcam", 0.8), ("random", 0.2)):
            boost = 0.2 if (model.endswith("robust") and method == "gradient") else 0.0
            for column, sign in (("insertion", 1), ("deletion", -1)):
                value = 0.5 + sign * (quality + boost - 0.5) * 0.5 + 0.3 * (confidence - 0.75) \
                    + rng.normal(0, 0.01, images)
                rows += [{"model": model, "method": method, "metric": column, "column": column, "image": i,
                          "target": 0, "predicted": 0, "confidence": confidence[i], "degenerate": False,
                          "value": value[i]} for i in range(images)]
    return pd.DataFrame(rows)


MODELS = pd.DataFrame({"model": ["m-vanilla", "m-robust"], "arch": ["a", "a"], "algorithm": ["vanilla", "adversarial"],
                       "clean_accuracy": [0.9, 0.8], "ood_accuracy": [0.6, 0.7], "confidence_mean": [0.9, 0.7],
                       "macs": [100, 100], "robust_accuracy_linf_8": [0.1, 0.5]})


def test_explainability_table_means_cis_and_model_columns():
    long = constructed_long()
    table = explainability_table(long, MODELS, FAMILIES, resamples=200)
    assert table[["model", "method"]].values.tolist() == [[m, k] for m in MODELS["model"] for k in FAMILIES]
    assert (table["images"] == 20).all() and (table["degenerate_maps"] == 0).all()
    expected = long[(long["model"] == "m-robust") & (long["method"] == "gradcam") & (long["column"] == "insertion")]
    row = table[(table["model"] == "m-robust") & (table["method"] == "gradcam")].iloc[0]
    assert row["insertion"] == pytest.approx(expected["value"].mean())
    assert (table["insertion_ci_low"] <= table["insertion"]).all()
    assert (table["insertion"] <= table["insertion_ci_high"]).all()
    assert row["family"] == "cam" and row["clean_accuracy"] == 0.8 and row["robust_accuracy_linf_8"] == 0.5


def test_ranking_agreement_and_group_comparisons_on_constructed_values():
    long = constructed_long()
    table = explainability_table(long, MODELS, FAMILIES, resamples=100)
    ranking = analysis.method_ranking(table, SCORES, FAMILIES)
    assert ranking["method"].tolist() == ["gradcam", "gradient", "random"]
    assert ranking["mean_rank"].tolist() == [1.0, 2.0, 3.0] and (ranking["rankings"] == 4).all()
    agreement = analysis.ranking_agreement(table, SCORES)
    assert agreement["kendalls_w"].to_numpy() == pytest.approx(1.0)  # both metrics order the methods alike
    comparisons = analysis.group_comparisons(long, MODELS, SCORES, FAMILIES).set_index(["family", "column"])
    assert set(comparisons.index) == {("gradient", "insertion"), ("gradient", "deletion"), ("cam", "insertion"),
                                      ("cam", "deletion")}  # the random baseline is not compared
    assert comparisons.loc[("gradient", "insertion"), "better"] == "b"  # robust better with gradients
    assert comparisons.loc[("gradient", "deletion"), "better"] == "b"
    assert comparisons.loc[("gradient", "insertion"), "n"] == 20


def test_correlations_recover_confidence_dependence():
    long = constructed_long(images=40)
    within = analysis.within_model_correlations(long, SCORES)
    pooled = within[(within["model"] == "all") & (within["kind"] == "spearman")].set_index(["method", "y"])
    assert pooled.loc[("gradcam", "insertion"), "r"] > 0.9 and pooled.loc[("gradcam", "insertion"), "n"] == 80
    table = explainability_table(long, MODELS, FAMILIES, resamples=100)
    across = analysis.across_model_correlations(table, MODELS, SCORES, FAMILIES)
    criteria = across[across["method"] == "-"]
    assert set(criteria["x"]) == {"clean_accuracy", "ood_accuracy", "robust_accuracy_linf_8"}
    assert (across["n"] == 2).all() and across["r"].isna().all()  # two models: too few points for a correlation
    assert set(across["method"]) == {"-", "gradient", "gradcam", "random", "all"}


def test_findings_verdicts_on_a_constructed_run():
    long = constructed_long()
    table = explainability_table(long, MODELS, FAMILIES, resamples=100)
    comparisons = analysis.group_comparisons(long, MODELS, SCORES, FAMILIES)
    first = robust_gradient_finding(comparisons)
    assert first.verdict == REPRODUCED  # robust wins with gradients, not with Grad-CAM
    ranking = analysis.method_ranking(table, SCORES, FAMILIES)
    registered = {"gradient": "gradient", "gradcam": "gradcam", "random": "random"}
    assert best_methods_finding(ranking, registered).verdict == INCONCLUSIVE  # no RISE in this run
    with_rise = best_methods_finding(ranking.replace({"method": {"gradient": "rise"}}), {**registered, "rise": "rise"})
    assert with_rise.verdict == REPRODUCED
    scores = analysis.explainability_scores(table, SCORES, FAMILIES)
    assert no_best_model_finding(MODELS, scores).verdict == REPRODUCED  # vanilla most accurate, robust best OOD
    best_everywhere = MODELS.assign(ood_accuracy=[0.8, 0.7])
    vanilla_best = pd.Series({"m-vanilla": 1.0, "m-robust": 0.0})
    assert no_best_model_finding(best_everywhere, vanilla_best).verdict == NOT_REPRODUCED
    with_advprop = pd.concat([MODELS, MODELS.iloc[[0]].assign(model="m-advprop", algorithm="advprop",
                                                               clean_accuracy=0.95)])
    assert advprop_finding(with_advprop, comparisons).verdict == INCONCLUSIVE  # AdvProp's maps were not scored
    within = analysis.within_model_correlations(long, SCORES)
    findings = check_findings(MODELS, comparisons, ranking, within, scores, registered)
    assert [f.number for f in findings] == [1, 2, 3, 4, 5] and findings[1].verdict == INCONCLUSIVE  # no AdvProp
    text = findings_markdown(findings, "constructed run")
    assert text.count("**reproduced**") + text.count("**not reproduced**") + text.count("**inconclusive**") == 10


def test_a_model_at_chance_is_named_in_a_warning_and_a_trained_one_is_not():
    from robustxai.aggregation.findings import chance_warning, models_at_chance

    models = pd.DataFrame({"model": ["stuck", "weak", "good"], "clean_accuracy": [0.086, 0.19, 0.957],
                           "test_images": [1000, 1000, 1000]})
    classes = {"stuck": 10, "weak": 10, "good": 10}
    assert models_at_chance(models, classes) == ["stuck"]  # 0.19 of 1000 is above 0.1 + 0.05 beyond noise
    assert "`stuck` (0.086 against 1/10)" in chance_warning(models, classes)
    assert chance_warning(models.iloc[1:], classes) is None
    assert models_at_chance(models, {"stuck": 2}) == ["stuck"] and models_at_chance(models, {}) == []


def test_every_method_has_a_family_and_every_metric_says_which_way_is_better():
    for name in METHODS:
        if name != "robust_counterpart":  # takes its base method's family
            assert method_class(name).family in ("gradient", "perturbation", "cam", "boundary", "learned",
                                                 "baseline"), name
    for name in METRICS:
        directions = metric_class(name).higher_is_better
        assert bool(directions) == (name != "sanity_randomisation"), name
    assert metric_class("deletion").higher_is_better == {"deletion": False}
