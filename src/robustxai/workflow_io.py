"""Glue for workflow scripts: send a job's logging, warnings, tracebacks and progress bars to its log,
and record its GPU use next to its benchmark file."""
from __future__ import annotations

import csv
import logging
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch

from robustxai.devices import gpu_usage

log = logging.getLogger("robustxai")


def write_gpu_usage(path: str | Path, usage: dict) -> None:
    """Write ``usage`` (``robustxai.devices.gpu_usage``) as a one-row TSV, like Snakemake's benchmark files."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(usage), delimiter="\t")
        writer.writeheader()
        writer.writerow(usage)


@contextmanager
def job_logging(log_path: str, threads: int = 1, gpu_usage_path: str | None = None):
    """Inside the block, stdout, stderr (tqdm, warnings) and ``logging`` write to ``log_path``;
    torch uses ``threads`` CPU threads. An exception is logged with its traceback, then re-raised.
    When a job that claimed a GPU succeeds, its GPU time and peak GPU memory go to the log and to
    ``gpu_usage_path`` (a stale file there is removed first: CPU jobs leave none)."""
    torch.set_num_threads(max(1, int(threads)))
    if gpu_usage_path is not None:
        Path(gpu_usage_path).unlink(missing_ok=True)
    with open(log_path, "w", buffering=1) as log_file, redirect_stdout(log_file), redirect_stderr(log_file):
        logging.basicConfig(stream=log_file, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
            if (usage := gpu_usage()) is not None:
                log.info("GPU usage: %s", usage)
                if gpu_usage_path is not None:
                    write_gpu_usage(gpu_usage_path, usage)
        except BaseException:
            log.exception("job failed")
            raise
        finally:
            logging.shutdown()
            sys.stderr.flush()
