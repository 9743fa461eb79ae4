"""Milliseconds per explanation of every configured method on one model, on ``params.threads`` torch
threads (the job itself holds every core, so that nothing runs beside it)."""
from robustxai.pipeline.latency import latency_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
params = snakemake.params
with job_logging(snakemake.log[0], params.threads, params.gpu_usage), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    latency_job(snakemake.wildcards.model, snakemake.input.checkpoint, snakemake.input.split, params.methods,
                dict(zip(params.needed, snakemake.input.needed)), snakemake.output[0], params.threads,
                params.repeats, params.images)
