"""Study membership (robustxai.studies) and the aggregation's split by study: on a constructed run with
an explainer model and the ``explainer`` method, the first study's tables, analyses and findings hold
only its own models and methods, and the second study's rows go to explainer_explainability.csv."""
import copy
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from robustxai.aggregation.tables import MetricTable
from robustxai.config import resolve_attribution
from robustxai.integrity import read_table
from robustxai.pipeline.aggregate import analysis_job, explainability_job, findings_job
from robustxai.pipeline.metrics import write_table
from robustxai.studies import method_study, model_studies, pair_studies
from workflow_runs import SMOKE

#: energy in box of each (model, method); per image these +- OFFSETS, so the means are these values
ENERGY = {("r-vanilla", "gradcam"): 0.6, ("r-vanilla", "rise"): 0.5, ("r-vanilla", "gradient"): 0.4,
          ("r-pgd", "gradcam"): 0.4, ("r-pgd", "rise"): 0.7, ("r-pgd", "gradient"): 0.5,
          ("r-explainer", "gradient"): 0.2, ("r-explainer", "explainer"): 0.9}
OFFSETS = np.array([-0.03, -0.01, 0.01, 0.03])
METHODS = {"gradcam": {}, "rise": {"masks": 50, "cells": 4}, "gradient": {}, "explainer": {}}
FIRST = {pair for pair in ENERGY if pair[0] != "r-explainer"}
SECOND = {("r-explainer", "gradient"), ("r-explainer", "explainer")}


def test_method_studies_follow_family_and_needed_models():
    assert method_study("gradcam", {}) == "A" and method_study("random", {}) == "A"
    assert method_study("explainer", {}) == "B"  # family "learned"
    assert method_study("robust_attribution", {"method": "robust_counterpart", "counterpart": "twin",
                                               "base": "smoothgrad"}) == "B"  # runs another model
    assert method_study("borrowed", {"method": "explainer", "explainer": "ex"}) == "B"


def test_model_studies_put_explainers_and_their_unattributed_twins_in_the_second_study():
    config = yaml.safe_load(SMOKE.read_text())
    methods = resolve_attribution(config)["methods"]
    # both twins (vgg-pgd_l2, vgg-vanilla) are explained by first-study methods
    assert model_studies(config, methods) == {"vgg-vanilla": "A", "vgg-pgd_l2": "A", "vgg-advprop": "A",
                                              "vgg-explainer": "B", "vgg-explainer_posthoc": "B"}
    unattributed = copy.deepcopy(config)
    unattributed["attribution"]["models"] = ["vgg-vanilla"]
    del unattributed["attribution"]["methods"]["smoothgrad_of_robust"]  # names vgg-pgd_l2; only study B's
    studies = model_studies(unattributed, resolve_attribution(unattributed)["methods"])
    assert studies["vgg-pgd_l2"] == "B" and studies["vgg-vanilla"] == "A"  # a twin only the explainer uses
    assert model_studies(config, {})["vgg-pgd_l2"] == "B"  # no attribution section: nothing attributed


def test_a_pair_is_in_the_first_study_only_when_model_and_method_are():
    models = pd.Series(["a", "a", "b", "b", "unknown"])
    methods = pd.Series(["m", "learned", "m", "learned", "m"])
    studies = pair_studies(models, methods, {"a": "A", "b": "B"}, {"m": "A", "learned": "B"})
    assert studies.tolist() == ["A", "B", "B", "B", "B"]


@pytest.fixture
def constructed_run(tmp_path):
    """Per-image energy-in-box tables of two first-study models and an explainer model, models.csv
    and the aggregation's tables, analyses and findings computed from them."""
    tables = []
    for (model, method), mean in ENERGY.items():
        frame = pd.DataFrame({"image": np.arange(4), "target": 0, "predicted": 0,
                              "confidence": [0.6, 0.7, 0.8, 0.9], "degenerate": False,
                              "energy_in_box": mean + OFFSETS})
        path = tmp_path / "metrics" / model / method / "energy_in_box.parquet"
        path.parent.mkdir(parents=True)
        write_table(frame, path)
        tables.append(MetricTable(model, method, "energy_in_box", str(path)))
    models = pd.DataFrame({"model": ["r-vanilla", "r-pgd", "r-explainer"], "study": ["A", "A", "B"],
                           "arch": "r", "algorithm": ["vanilla", "adversarial", "explainer"],
                           "clean_accuracy": [0.90, 0.85, 0.95], "ood_accuracy": [0.7, 0.72, 0.8],
                           "confidence_mean": [0.9, 0.8, 0.95]})
    out = {name: str(tmp_path / f"{name}.csv") for name in
           ("models", "explainability", "explainer_explainability", "methods", "across_models", "within_models",
            "method_ranking", "ranking_agreement", "group_comparisons", "model_scores")}
    models.to_csv(out["models"], index=False)
    per_image = str(tmp_path / "per_image.parquet")
    explainability_job(tables, out["models"], METHODS, out["explainability"], out["explainer_explainability"],
                       per_image, out["methods"], resamples=20)
    analysis_job(per_image, out["explainability"], out["models"], out["methods"], ["energy_in_box"],
                 {key: out[key] for key in ("across_models", "within_models", "method_ranking", "ranking_agreement",
                                            "group_comparisons", "model_scores")})
    findings = str(tmp_path / "findings.md")
    study = {"alignments": {"r-explainer": "robust"}, "methods": {"gradient": {}, "explainer": {}},
             "last_block_metrics": [], "roar": None, "latency": None, "per_image": per_image}
    findings_job(out["models"], out["methods"], out["group_comparisons"], out["method_ranking"],
                 out["within_models"], out["model_scores"], findings, "Constructed run.", study)
    return {key: pd.read_csv(path) for key, path in out.items()}, read_table(per_image), open(findings).read()


def pairs(table: pd.DataFrame) -> set:
    return set(zip(table["model"], table["method"]))


def test_first_study_tables_hold_only_its_models_and_methods(constructed_run):
    tables, per_image, _ = constructed_run
    assert pairs(tables["explainability"]) == FIRST
    assert pairs(tables["explainer_explainability"]) == SECOND
    assert list(tables["explainer_explainability"].columns) == list(tables["explainability"].columns)
    second = tables["explainer_explainability"].set_index(["model", "method"])
    assert second.loc[("r-explainer", "explainer"), "energy_in_box"] == pytest.approx(0.9)
    assert second.loc[("r-explainer", "explainer"), "family"] == "learned"
    # every per-image row stays (the second study's findings read them), each with its study
    assert len(per_image) == 4 * len(ENERGY)
    assert pairs(per_image[per_image["study"] == "B"]) == SECOND
    assert pairs(per_image[per_image["study"] == "A"]) == FIRST
    assert tables["methods"].set_index("method")["study"].to_dict() == {"gradcam": "A", "rise": "A", "gradient": "A",
                                                                        "explainer": "B"}


def test_first_study_analyses_are_computed_from_its_rows_only(constructed_run):
    tables, _, _ = constructed_run
    # ranks per model: r-vanilla gradcam 1, rise 2, gradient 3; r-pgd rise 1, gradient 2, gradcam 3
    # (pooled with r-explainer, the explainer would rank first at 1.00 and gradient 2.33)
    ranking = tables["method_ranking"]
    assert ranking["method"].tolist() == ["rise", "gradcam", "gradient"]
    assert ranking["mean_rank"].tolist() == pytest.approx([1.5, 2.0, 2.5]) and (ranking["rankings"] == 2).all()
    # model ranks per method: r-pgd first on rise and gradient, r-vanilla on gradcam: 1 - (mean rank - 1)
    scores = tables["model_scores"].set_index("model")["explainability_score"]
    assert scores.to_dict() == pytest.approx({"r-vanilla": 1 / 3, "r-pgd": 2 / 3})
    assert set(tables["ranking_agreement"]["model"]) == {"r-vanilla", "r-pgd", "all"}
    assert set(tables["within_models"]["model"]) == {"r-vanilla", "r-pgd", "all"}
    assert set(tables["within_models"]["method"]) == {"gradcam", "rise", "gradient"}
    assert set(tables["across_models"]["method"]) == {"-", "all", "gradcam", "rise", "gradient"}
    assert (tables["across_models"]["n"] == 2).all()  # two models per correlation, the explainer left out
    comparisons = tables["group_comparisons"]
    assert set(comparisons["group_a"]) | set(comparisons["group_b"]) == {"vanilla", "adversarial"}


def test_first_study_findings_never_mention_the_second_study(constructed_run):
    _, _, text = constructed_run
    first, second = text.split("# The second study's findings")
    assert "Models: `r-vanilla`, `r-pgd`; methods: `rise`, `gradcam`, `gradient`." in first
    assert "mean rank over models and metrics (1 = best): rise 1.50, gradcam 2.00, gradient 2.50" in first
    assert re.search(r"^\| 3 \| .* \| \*\*reproduced\*\* \|$", first, re.M)  # RISE and Grad-CAM on top
    assert "r-explainer" not in first and not re.search(r"\bexplainer\b", first)
    assert "best clean_accuracy: r-vanilla (0.900)" in first  # not the explainer model's 0.950
    assert second.split("\n\n")[1] == "Models: `r-explainer`; methods: `gradient`, `explainer`."
