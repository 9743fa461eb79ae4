"""Train one model (vanilla, adversarial or AdvProp) as its config entry says."""
from robustxai.pipeline.models import train_model_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage):
    train_model_job(snakemake.wildcards.model, snakemake.params.entry, snakemake.input.train, snakemake.input.val,
                    snakemake.output.checkpoint, snakemake.output.history)
