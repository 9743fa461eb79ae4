"""The paper's five findings (and the second study's, with explainer models) checked against this run's tables."""
from robustxai.pipeline.aggregate import findings_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    study = snakemake.params.explainer_study
    if study:
        study = {**study, **{key: snakemake.input.get(key) for key in ("roar", "roar_leakage", "latency", "per_image")}}
    findings_job(snakemake.input.models, snakemake.input.methods, snakemake.input.comparisons,
                 snakemake.input.ranking, snakemake.input.within, snakemake.input.scores, snakemake.output[0],
                 snakemake.params.summary, study, snakemake.params.num_classes)
