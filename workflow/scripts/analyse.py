"""Correlations, method ranking, rank agreement and algorithm comparisons."""
from robustxai.pipeline.aggregate import analysis_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    analysis_job(snakemake.input.per_image, snakemake.input.explainability, snakemake.input.models,
                 snakemake.input.methods, snakemake.params.metrics, dict(snakemake.output.items()),
                 snakemake.params.seed)
