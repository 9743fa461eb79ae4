"""The ROAR table (every model x method x fraction, with the mask-only control), the leakage table and the plot."""
from robustxai.pipeline.roar import roar_table_job
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    roar_table_job(list(snakemake.input.cells), list(snakemake.input.leakage),
                   dict(zip(snakemake.params.models, snakemake.input.evaluations)), snakemake.output.table,
                   snakemake.output.leakage, snakemake.output.plot, shared=snakemake.params.anchors)
