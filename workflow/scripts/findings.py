"""The paper's five findings checked against this run's tables."""
from robustxai.pipeline.aggregate import findings_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    findings_job(snakemake.input.models, snakemake.input.methods, snakemake.input.comparisons,
                 snakemake.input.ranking, snakemake.input.within, snakemake.input.scores, snakemake.output[0],
                 snakemake.params.summary)
