"""Score one model's maps of one method with every metric configured for them; one Parquet table each."""
from robustxai.pipeline.metrics import metrics_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage,
                 snakemake.resources.mem_mb), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    metrics_job(snakemake.params.metrics, list(snakemake.input.shards), snakemake.input.split, snakemake.output[0],
                checkpoint_path=snakemake.input.checkpoint[0] if snakemake.input.checkpoint else None,
                method_name=snakemake.wildcards.method, method_settings=snakemake.params.method_settings)
