"""Save a model whose weights come from timm or from a local checkpoint file."""
from robustxai.pipeline.models import fetch_timm_job, import_checkpoint_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
entry = snakemake.params.entry
with job_logging(snakemake.log[0], snakemake.threads):
    if entry["source"] == "timm":
        fetch_timm_job(snakemake.wildcards.model, entry, snakemake.output.checkpoint, snakemake.output.history)
    else:
        import_checkpoint_job(snakemake.wildcards.model, entry, snakemake.input.weights, snakemake.output.checkpoint,
                              snakemake.output.history, snakemake.params.lock)
