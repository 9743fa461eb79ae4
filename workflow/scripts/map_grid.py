"""One model's first images with every method's map."""
from robustxai.pipeline.aggregate import map_grid_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    map_grid_job(snakemake.wildcards.model, dict(zip(snakemake.params.methods, snakemake.input.shards)),
                 snakemake.input.split, snakemake.output.png, snakemake.output.data, snakemake.params.images)
