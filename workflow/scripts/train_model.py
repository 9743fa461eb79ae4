"""Train one model (vanilla, adversarial, AdvProp or explainer) as its config entry says."""
from robustxai.pipeline.models import train_model_job
from robustxai.tuning import tuning_mode
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
inputs = snakemake.input
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage), \
        tuning_mode(snakemake.params.tuning, snakemake.params.tuning_cache, snakemake.resources.mem_mb):
    train_model_job(snakemake.wildcards.model, snakemake.params.entry, inputs.train, inputs.val,
                    snakemake.output.checkpoint, snakemake.output.history,
                    target_paths=list(inputs.targets) if hasattr(inputs, "targets") else None,
                    init_path=inputs.init if hasattr(inputs, "init") else None)
