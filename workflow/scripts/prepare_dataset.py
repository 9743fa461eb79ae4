"""Write every split of the configured dataset (its kind in robustxai.data.kinds builds them)."""
from robustxai.pipeline.datasets import prepare_dataset
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0], snakemake.threads):
    prepare_dataset(snakemake.params.dataset, dict(snakemake.output.items()),
                    archive=snakemake.input.archive[0] if snakemake.input.archive else None)
