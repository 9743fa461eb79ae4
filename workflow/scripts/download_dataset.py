"""Download the dataset archive named in the config and verify its checksum."""
from robustxai.data.cifar import CIFAR10_MD5, CIFAR10_URL
from robustxai.data.download import download
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
source = snakemake.params.source
url = source.get("url", CIFAR10_URL)
md5 = source.get("md5") or (CIFAR10_MD5 if url == CIFAR10_URL else None)  # the official archive's md5
with job_logging(snakemake.log[0]):
    download(url, snakemake.output[0], sha256=source.get("sha256"), md5=md5)
