"""The mask-only control of one ROAR cell: does the removal mask alone predict the class?"""
from robustxai.pipeline.roar import leakage_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    leakage_job(snakemake.wildcards.model, snakemake.wildcards.method, snakemake.params.entry,
                float(snakemake.wildcards.fraction), snakemake.params.recipe, snakemake.params.ranking,
                snakemake.params.splits, snakemake.params.margin, snakemake.input.train, snakemake.input.test,
                list(snakemake.input.train_maps), list(snakemake.input.test_maps), snakemake.output[0])
