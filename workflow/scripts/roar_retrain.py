"""One ROAR cell: retrain on images with the top fraction removed by a method's maps; final test accuracy."""
from robustxai.pipeline.roar import roar_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    roar_job(snakemake.wildcards.model, snakemake.wildcards.method, snakemake.params.entry,
             float(snakemake.wildcards.fraction), int(snakemake.wildcards.repeat), snakemake.params.recipe,
             snakemake.params.ranking, snakemake.params.splits, snakemake.input.train, snakemake.input.test,
             list(snakemake.input.train_maps), list(snakemake.input.test_maps), snakemake.output[0],
             leakage_path=getattr(snakemake.input, "leakage", None))
