"""Aggregation jobs: read the per-model and per-image results, write the study's tables, analyses,
plots and findings. Each job is a function of files to files; the logic lives in
``robustxai.aggregation``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from robustxai.aggregation import analysis, plots
from robustxai.aggregation.findings import chance_warning, check_findings, findings_markdown, study_summary
from robustxai.aggregation.tables import MetricTable, explainability_table, long_metric_values
from robustxai.integrity import read_table
from robustxai.studies import STUDY_A, STUDY_B, method_study, pair_studies


def _mkdirs(*paths: str) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def models_table(evaluation_paths: list[str], studies: dict[str, str]) -> pd.DataFrame:
    """One row per model from the evaluation JSON files, in the given order: model, its ``study``
    (``studies``: model -> "A" / "B", see ``robustxai.studies``), then the files' scalar entries (the
    per-corruption-and-severity ``ood_cells`` stay in the JSON files)."""
    rows = [json.loads(Path(p).read_text()) for p in evaluation_paths]
    table = pd.DataFrame([{key: value for key, value in row.items() if not isinstance(value, dict)} for row in rows])
    table.insert(1, "study", table["model"].map(studies))
    return table


def aggregate_models_job(evaluation_paths: list[str], table_path: str, png_path: str, data_path: str,
                         studies: dict[str, str]) -> pd.DataFrame:
    """Write ``tables/models.csv`` and the accuracy plot (with its data) for all models."""
    table = models_table(evaluation_paths, studies)
    _mkdirs(table_path)
    table.to_csv(table_path, index=False)
    plots.plot_accuracies(table, png_path, data_path)
    return table


def method_catalogue(methods: dict[str, dict]) -> pd.DataFrame:
    """(method, registered, family, study) of the attribution section's ``methods`` (config name ->
    settings)."""
    from robustxai.pipeline.attribute import configured_method

    rows = []
    for name, settings in methods.items():
        registered, method = configured_method(name, settings)
        rows.append({"method": name, "registered": registered, "family": method.family,
                     "study": method_study(name, settings)})
    return pd.DataFrame(rows)


def score_directions(metric_names: list[str]) -> dict[str, bool]:
    """Every score column of the configured metrics -> whether higher is better."""
    from robustxai.metrics import metric_class

    return {column: higher for name in metric_names for column, higher in metric_class(name).higher_is_better.items()}


def explainability_job(tables: list[MetricTable], models_path: str, methods: dict[str, dict], table_path: str,
                       explainer_table_path: str, per_image_path: str, methods_path: str, resamples: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """Write the per (model, method) means with bootstrap CIs, models.csv joined in, of study A's pairs
    (``tables/explainability.csv``, returned) and of study B's (``tables/explainer_explainability.csv``,
    the same columns), the long per-image table of both with each row's ``study`` (Parquet) and
    ``tables/methods.csv`` (name, registered method, family, study)."""
    from robustxai.pipeline.metrics import write_table

    catalogue = method_catalogue(methods)
    families = dict(zip(catalogue["method"], catalogue["family"]))
    models = pd.read_csv(models_path)
    long = long_metric_values(tables)
    long.insert(2, "study", pair_studies(long["model"], long["method"], dict(zip(models["model"], models["study"])),
                                         dict(zip(catalogue["method"], catalogue["study"]))))
    by_study = {study: explainability_table(part, models, families, resamples, seed)
                for study, part in long.groupby("study", sort=False)}
    header = next(iter(by_study.values())).columns  # a study without pairs gets an empty table
    _mkdirs(table_path, explainer_table_path, methods_path)
    for study, path in ((STUDY_A, table_path), (STUDY_B, explainer_table_path)):
        by_study.get(study, pd.DataFrame(columns=header)).to_csv(path, index=False)
    write_table(long, per_image_path)
    catalogue.to_csv(methods_path, index=False)
    return by_study.get(STUDY_A, pd.DataFrame(columns=header))


def _study_a(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of study A (models.csv's or per_image.parquet's ``study`` column)."""
    return frame[frame["study"] == STUDY_A]


def _inputs(models_path: str, explainability_path: str, methods_path: str):
    """Study A's models, its explainability table, method -> family and the methods catalogue."""
    models = _study_a(pd.read_csv(models_path))
    explainability = pd.read_csv(explainability_path)
    catalogue = pd.read_csv(methods_path)
    return models, explainability, dict(zip(catalogue["method"], catalogue["family"])), catalogue


def analysis_job(per_image_path: str, explainability_path: str, models_path: str, methods_path: str,
                 metric_names: list[str], outputs: dict[str, str], seed: int = 0) -> None:
    """Write study A's analyses: ``outputs`` keys across_models, within_models (correlations),
    method_ranking, ranking_agreement, group_comparisons, model_scores (CSV each)."""
    models, explainability, families, _ = _inputs(models_path, explainability_path, methods_path)
    long = _study_a(read_table(per_image_path))
    scores = score_directions(metric_names)
    results = {
        "across_models": analysis.across_model_correlations(explainability, models, scores, families, seed),
        "within_models": analysis.within_model_correlations(long, scores, seed),
        "method_ranking": analysis.method_ranking(explainability, scores, families),
        "ranking_agreement": analysis.ranking_agreement(explainability, scores),
        "group_comparisons": analysis.group_comparisons(long, models, scores, families),
        "model_scores": analysis.explainability_scores(explainability, scores, families).reset_index(),
    }
    for name, frame in results.items():
        _mkdirs(outputs[name])
        frame.to_csv(outputs[name], index=False)


def _with_chance_warning(summary: str, models: pd.DataFrame, num_classes: dict[str, int] | None) -> str:
    """A study section's summary line, followed by the warning naming its models at chance, if any."""
    warning = chance_warning(models, num_classes or {})
    return f"{summary}\n\n{warning}" if warning else summary


def findings_job(models_path: str, methods_path: str, comparisons_path: str, ranking_path: str,
                 within_path: str, scores_path: str, output_path: str, run_summary: str,
                 explainer_study: dict | None = None, num_classes: dict[str, int] | None = None) -> list:
    """Write ``findings.md``: the paper's five findings checked against study A's tables, then, when the
    study has explainer models (``explainer_study``: ``alignments`` explainer model -> robust / standard,
    ``methods`` every attribution method's settings, ``last_block_metrics``, and the paths ``roar``,
    ``roar_leakage``, ``latency``, ``per_image``, each None when the run lacks it), the second study's five.
    ``run_summary`` names the run; each study's section adds the models and methods it used, and a warning
    naming its models at chance (``num_classes``: model -> classes, ``robustxai.aggregation.findings.models_at_chance``)."""
    every_model = pd.read_csv(models_path)
    models = _study_a(every_model)
    catalogue = pd.read_csv(methods_path)
    comparisons = pd.read_csv(comparisons_path)
    ranking = pd.read_csv(ranking_path)
    scores = pd.read_csv(scores_path).set_index("model")["explainability_score"]
    findings = check_findings(models, comparisons, ranking, pd.read_csv(within_path), scores,
                              dict(zip(catalogue["method"], catalogue["registered"])))
    text = findings_markdown(findings, _with_chance_warning(
        f"{run_summary}\n\n{study_summary(models['model'], ranking['method'])}", models, num_classes))
    if explainer_study:
        from robustxai.aggregation.explainer_findings import check_explainer_findings, explainer_findings_markdown

        def read(key, reader):
            return reader(explainer_study[key]) if explainer_study.get(key) else None

        second = check_explainer_findings(read("roar", pd.read_csv), read("latency", pd.read_csv),
                                          read("per_image", read_table),
                                          method_catalogue(explainer_study["methods"]), explainer_study["alignments"],
                                          explainer_study["last_block_metrics"], read("roar_leakage", pd.read_csv))
        second_models = every_model[every_model["study"] == STUDY_B]
        used = _with_chance_warning(study_summary(second_models["model"], explainer_study["methods"]), second_models,
                                    num_classes)
        text += explainer_findings_markdown(second, used)
        findings += second
    _mkdirs(output_path)
    Path(output_path).write_text(text)
    return findings


def plots_job(per_image_path: str, explainability_path: str, models_path: str, methods_path: str,
              scores_path: str, metric_names: list[str], outputs: dict[str, str]) -> None:
    """Draw study A's summary plots; ``outputs`` maps heatmap, confidence, tradeoff and (when the study has
    sanity checks) sanity to (png, data) path pairs."""
    models, explainability, _, _ = _inputs(models_path, explainability_path, methods_path)
    long = _study_a(read_table(per_image_path))
    scores = score_directions(metric_names)
    model_scores = pd.read_csv(scores_path).set_index("model")["explainability_score"]
    plots.plot_metric_heatmap(explainability, scores, *outputs["heatmap"])
    plots.plot_confidence_scatter(long, models, *outputs["confidence"])
    plots.plot_tradeoff(models, model_scores, *outputs["tradeoff"])
    if "sanity" in outputs:
        plots.plot_sanity_curves(long, *outputs["sanity"])


def map_grid_job(model: str, shard_paths: dict[str, str], split_path: str, png_path: str, data_path: str,
                 images: int = 6) -> None:
    """Draw the first ``images`` images of one model's first shard with every method's map
    (``shard_paths``: method -> that method's first shard)."""
    from robustxai.attribution.shards import read_shard
    from robustxai.data.splits import load_split

    shards = {method: read_shard(path) for method, path in shard_paths.items()}
    index = next(iter(shards.values())).index[:images]
    maps = {}
    for method, shard in shards.items():
        if not np.array_equal(shard.index[:images], index):
            raise ValueError(f"shards of {model} explain different images: {method} differs")
        maps[method] = shard.maps[:images].astype(np.float32)
    pictures, _ = load_split(split_path, index).tensors()
    plots.plot_map_grid(model, pictures.numpy(), index, maps, png_path, data_path)


def report_pages_job(findings_path: str, table_paths: list[str], titles: list[str], captions: list[str],
                     findings_html_path: str, tables_html_path: str) -> None:
    """The report's two HTML pages (``robustxai.aggregation.report_pages``): findings.md rendered, and the CSV
    tables ``table_paths`` with their ``titles`` and ``captions`` (markdown subset) on one page."""
    from robustxai.aggregation.report_pages import html_page, markdown_html, tables_page

    findings = Path(findings_path).read_text()
    tables = {title: (pd.read_csv(path), caption) for title, path, caption in zip(titles, table_paths, captions)}
    for path, text in ((findings_html_path, html_page("Findings", markdown_html(findings))),
                       (tables_html_path, tables_page(tables))):
        _mkdirs(path)
        Path(path).write_text(text)
