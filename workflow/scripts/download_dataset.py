"""Download an archive of the dataset (url and checksums from its kind, robustxai.data.kinds) and verify it."""
from robustxai.data.download import download
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
archive = snakemake.params.archive
with job_logging(snakemake.log[0]):
    download(archive["url"], snakemake.output[0], sha256=archive["sha256"], md5=archive["md5"])
