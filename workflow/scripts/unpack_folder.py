"""Unpack the downloaded archives of a split's folder (robustxai.data.extract) into that folder."""
from robustxai.data.extract import extract_archives
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
with job_logging(snakemake.log[0]):
    extract_archives(list(snakemake.input), snakemake.output[0], snakemake.params.strip_components)
