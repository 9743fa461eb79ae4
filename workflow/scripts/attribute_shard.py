"""Explain one shard of images with one method for one model; write an HDF5 shard with provenance."""
from robustxai.pipeline.attribute import attribute_shard_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
params = snakemake.params
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage,
                 snakemake.resources.mem_mb), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    attribute_shard_job(snakemake.input.checkpoint, snakemake.input.split, snakemake.wildcards.method,
                        params.settings, int(snakemake.wildcards.shard), params.images_per_shard,
                        params.images_per_batch, snakemake.output[0], target=params.target, dtype=params.dtype,
                        model_paths=dict(zip(params.needed, snakemake.input.needed)))
