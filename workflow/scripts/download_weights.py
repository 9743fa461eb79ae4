"""Download a model checkpoint (e.g. from a robust model zoo) and verify its sha256."""
from robustxai.data.download import download
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
