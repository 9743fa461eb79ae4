"""The study's latency table and plot from every model's rows."""
from robustxai.pipeline.latency import latency_table_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    latency_table_job(list(snakemake.input), snakemake.output.table, snakemake.output.plot)
