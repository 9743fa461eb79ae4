"""Download a model checkpoint (e.g. from a robust model zoo), verified by its sha256 or the weights lock."""
from robustxai.data.weights_lock import download_weights
from robustxai.workflow_io import job_logging

snakemake = globals()["snakemake"]
params = snakemake.params
with job_logging(snakemake.log[0]):
    download_weights(params.url, snakemake.output[0], snakemake.wildcards.model, params.sha256, params.lock)
