"""Glue for workflow scripts: send a job's logging, warnings, tracebacks and progress bars to its log,
and record its GPU use next to its benchmark file."""
from __future__ import annotations

import csv
import logging
import math
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


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: VmHWM, its own high-water mark (``ru_maxrss`` also
    counts what the process held before exec, e.g. a forked Snakemake), or ``ru_maxrss`` where there
    is no /proc (KiB on Linux, bytes on macOS)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def log_peak_memory(mem_mb: float | None) -> None:
    """Log the peak resident memory, with a warning when it exceeds the job's request ``mem_mb`` (a
    SLURM job would have been killed at it; None: nothing requested, just log)."""
    peak = peak_rss_mib()
    if mem_mb is not None and peak > float(mem_mb):
        log.warning("peak resident memory %.0f MiB exceeded the job's request mem_mb=%d: SLURM kills a job past "
                    "its request; set resources.<stage>.mem_mb in the config to at least %d (docs/scaling.md \"Running at "
                    "scale\")", peak, int(mem_mb), 256 * math.ceil(1.1 * peak / 256))
    else:
        log.info("peak resident memory %.0f MiB%s", peak, "" if mem_mb is None else f" of mem_mb={int(mem_mb)} requested")


@contextmanager
def job_logging(log_path: str, threads: int = 1, gpu_usage_path: str | None = None, mem_mb: float | None = None):
    """Inside the block, stdout, stderr (tqdm, warnings) and ``logging`` write to ``log_path``;
    torch uses ``threads`` CPU threads. An exception is logged with its traceback, then re-raised.
    When a job that claimed a GPU succeeds, its GPU time and peak GPU memory go to the log and to
    ``gpu_usage_path`` (a stale file there is removed first: CPU jobs leave none). At the end the job's
    peak resident memory goes to the log, as a warning when it exceeds its request ``mem_mb``
    (``snakemake.resources.mem_mb``)."""
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
            log_peak_memory(mem_mb)
        except BaseException:
            log.exception("job failed")
            log_peak_memory(mem_mb)
            raise
        finally:
            logging.shutdown()
            sys.stderr.flush()
