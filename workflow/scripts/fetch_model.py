"""Save a model whose weights come from timm or from a local checkpoint file."""
from robustxai.pipeline.models import fetch_timm_job, import_checkpoint_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
job = {"timm": fetch_timm_job, "file": import_checkpoint_job}[snakemake.params.entry["source"]]
with job_logging(snakemake.log[0], snakemake.threads):
    job(snakemake.wildcards.model, snakemake.params.entry, snakemake.output.checkpoint, snakemake.output.history)
