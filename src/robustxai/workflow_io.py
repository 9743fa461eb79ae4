"""Glue for workflow scripts: send a job's logging, warnings, tracebacks and progress bars to its log."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import torch


@contextmanager
def job_logging(log_path: str, threads: int = 1):
    """Inside the block, stdout, stderr (tqdm, warnings) and ``logging`` write to ``log_path``;
    torch uses ``threads`` CPU threads. An exception is logged with its traceback, then re-raised."""
    torch.set_num_threads(max(1, int(threads)))
    with open(log_path, "w", buffering=1) as log_file, redirect_stdout(log_file), redirect_stderr(log_file):
        logging.basicConfig(stream=log_file, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except BaseException:
            logging.getLogger("robustxai").exception("job failed")
            raise
        finally:
            logging.shutdown()
            sys.stderr.flush()
