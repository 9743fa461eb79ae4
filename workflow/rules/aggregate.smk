# The study's tables, analyses, plots and findings. All of it runs locally (never queued on a
# cluster): it is quick and reads every result. Outputs marked report() go into
# `snakemake --report results/report.html`, with the captions in workflow/report/. Every table,
# analysis and plot of the first study holds only its models and methods (robustxai.studies); the
# second study's metric means go to tables/explainer_explainability.csv.
from robustxai.studies import model_studies


localrules:
    aggregate_models,


rule aggregate_models:
    input:
        [evaluation_path(model) for model in MODELS],
    output:
        table=report(f"{R}/tables/models.csv", caption="../report/models.rst", category="1. Models"),
        plot=report(f"{R}/plots/accuracy.png", caption="../report/accuracy.rst", category="1. Models"),
        plot_data=f"{R}/plots/accuracy.csv",
    log:
        f"{R}/logs/aggregate/models.log",
    conda:
        ENV
    params:
        studies=dict(sorted(model_studies(config, ATTRIBUTION["methods"] if ATTRIBUTION is not None else {}).items())),
    script:
        "../scripts/aggregate_models.py"


if METRICS is not None:

    localrules:
        explainability_table,
        analyse,
        findings,
        report_pages,
        summary_plots,
        map_grid,

    rule explainability_table:
        input:
            tables=metric_outputs(),
            models=rules.aggregate_models.output.table,
        output:
            table=report(
                f"{R}/tables/explainability.csv", caption="../report/explainability.rst", category="2. Explainability"
            ),
            explainer_table=report(
                f"{R}/tables/explainer_explainability.csv",
                caption="../report/explainer_explainability.rst",
                category="7. Learned explainer",
            ),
            per_image=f"{R}/tables/per_image.parquet",
            methods=f"{R}/tables/methods.csv",
        log:
            f"{R}/logs/aggregate/explainability.log",
        conda:
            ENV
        params:
            tables=metric_tables(),
            methods=scored_methods(),
            resamples=AGGREGATION["resamples"],
            seed=AGGREGATION["seed"],
        script:
            "../scripts/explainability_table.py"

    rule analyse:
        input:
            per_image=rules.explainability_table.output.per_image,
            explainability=rules.explainability_table.output.table,
            methods=rules.explainability_table.output.methods,
            models=rules.aggregate_models.output.table,
        output:
            across_models=report(
                f"{R}/correlations/across_models.csv",
                caption="../report/across_models.rst",
                category="3. Correlations",
            ),
            within_models=report(
                f"{R}/correlations/within_models.csv",
                caption="../report/within_models.rst",
                category="3. Correlations",
            ),
            method_ranking=report(
                f"{R}/tables/method_ranking.csv",
                caption="../report/method_ranking.rst",
                category="4. Rankings and comparisons",
            ),
            ranking_agreement=report(
                f"{R}/tables/ranking_agreement.csv",
                caption="../report/ranking_agreement.rst",
                category="4. Rankings and comparisons",
            ),
            group_comparisons=report(
                f"{R}/tables/group_comparisons.csv",
                caption="../report/group_comparisons.rst",
                category="4. Rankings and comparisons",
            ),
            model_scores=f"{R}/tables/model_scores.csv",
        log:
            f"{R}/logs/aggregate/analyse.log",
        conda:
            ENV
        params:
            metrics=scored_metric_classes(),
            seed=AGGREGATION["seed"],
        script:
            "../scripts/analyse.py"

    rule findings:
        input:
            **explainer_findings_inputs(),
            models=rules.aggregate_models.output.table,
            methods=rules.explainability_table.output.methods,
            comparisons=rules.analyse.output.group_comparisons,
            ranking=rules.analyse.output.method_ranking,
            within=rules.analyse.output.within_models,
            scores=rules.analyse.output.model_scores,
        output:
            f"{R}/findings.md",
        log:
            f"{R}/logs/aggregate/findings.log",
        conda:
            ENV
        params:
            summary=run_summary(),
            explainer_study=explainer_study(),
            num_classes={model: resolve_model(config, model)["num_classes"] for model in MODELS},
        script:
            "../scripts/findings.py"

    rule report_pages:
        input:
            findings=rules.findings.output[0],
            tables=[path for path, _ in REPORT_TABLES.values()],
        output:
            findings=report(f"{R}/report/findings.html", caption="../report/findings_html.rst", category="0. Findings"),
            tables=report(f"{R}/report/tables.html", caption="../report/tables.rst", category="0. Findings"),
        log:
            f"{R}/logs/aggregate/report_pages.log",
        conda:
            ENV
        params:
            titles=list(REPORT_TABLES),
            captions=[report_caption(caption) for _, caption in REPORT_TABLES.values()],
        script:
            "../scripts/report_pages.py"

    rule summary_plots:
        input:
            per_image=rules.explainability_table.output.per_image,
            explainability=rules.explainability_table.output.table,
            methods=rules.explainability_table.output.methods,
            models=rules.aggregate_models.output.table,
            scores=rules.analyse.output.model_scores,
        output:
            **summary_plot_outputs(),
        log:
            f"{R}/logs/aggregate/plots.log",
        conda:
            ENV
        params:
            metrics=scored_metric_classes(),
        script:
            "../scripts/summary_plots.py"

    rule map_grid:
        input:
            shards=lambda wildcards: [
                shard_paths(ATTRIBUTION["split"], wildcards.model, method)[0] for method in methods_of(wildcards.model)
            ],
            split=split_path(ATTRIBUTION["split"]),
        output:
            png=report(
                f"{R}/plots/maps/{{model}}.png",
                caption="../report/map_grid.rst",
                category="5. Maps",
                labels={"model": "{model}"},
            ),
            data=f"{R}/plots/maps/{{model}}.npz",
        log:
            f"{R}/logs/aggregate/maps/{{model}}.log",
        wildcard_constraints:
            model=names_regex(ATTRIBUTION["models"]),
        conda:
            ENV
        params:
            methods=lambda wildcards: methods_of(wildcards.model),
            images=AGGREGATION["grid_images"],
        script:
            "../scripts/map_grid.py"
