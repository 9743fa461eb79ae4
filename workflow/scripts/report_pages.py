"""The report's HTML pages: findings.md rendered, and the main tables (the report viewer shows HTML inline)."""
from robustxai.pipeline.aggregate import report_pages_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    report_pages_job(snakemake.input.findings, list(snakemake.input.tables), snakemake.params.titles,
                     snakemake.params.captions, snakemake.output.findings, snakemake.output.tables)
