"""Evaluate one model: clean, OOD and robust accuracy, confidence, calibration, parameters, MACs."""
from robustxai.pipeline.evaluate import evaluate_model_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads, snakemake.params.gpu_usage):
    evaluate_model_job(snakemake.wildcards.model, snakemake.input.checkpoint, snakemake.input.test,
                       dict(zip(snakemake.params.ood_splits, snakemake.input.ood)), snakemake.params.settings,
                       snakemake.output[0])
