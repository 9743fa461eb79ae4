"""Per (model, method) means and bootstrap CIs of every metric, joined with the models table, per study."""
from robustxai.aggregation.tables import MetricTable
from robustxai.pipeline.aggregate import explainability_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    explainability_job([MetricTable(**table) for table in snakemake.params.tables], snakemake.input.models,
                       snakemake.params.methods, snakemake.output.table, snakemake.output.explainer_table,
                       snakemake.output.per_image,
                       snakemake.output.methods, snakemake.params.resamples, snakemake.params.seed)
