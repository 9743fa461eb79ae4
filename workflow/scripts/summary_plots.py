"""Metric heatmap, confidence scatter, trade-off plot and (with sanity checks) randomisation curves."""
from robustxai.pipeline.aggregate import plots_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
outputs = dict(snakemake.output.items())
with job_logging(snakemake.log[0]):
    plots_job(snakemake.input.per_image, snakemake.input.explainability, snakemake.input.models,
              snakemake.input.methods, snakemake.input.scores, snakemake.params.metrics,
              {name: (path, outputs[f"{name}_data"]) for name, path in outputs.items() if not name.endswith("_data")})
