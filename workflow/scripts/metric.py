"""Score one model's maps of one method with one metric; write per-image values as Parquet."""
from robustxai.pipeline.metrics import metric_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage,
                 snakemake.resources.mem_mb), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    metric_job(snakemake.params.metric, snakemake.params.settings, list(snakemake.input.shards),
               snakemake.input.split, snakemake.output[0],
               checkpoint_path=snakemake.input.checkpoint[0] if snakemake.input.checkpoint else None,
               method_name=snakemake.wildcards.method, method_settings=snakemake.params.method_settings)
