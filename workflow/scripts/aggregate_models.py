"""Collect every model's evaluation, with its study, into tables/models.csv and plots/accuracy.png."""
from robustxai.pipeline.aggregate import aggregate_models_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    aggregate_models_job(list(snakemake.input), snakemake.output.table, snakemake.output.plot,
                         snakemake.output.plot_data, snakemake.params.studies)
