"""One run at a time per results folder: a lock file that names the run holding it.

Snakemake locks its working directory (``.snakemake/``), not the outputs: two checkouts or configs
whose ``results`` name one folder would run at once and mix their files. The Snakefile takes this lock
when jobs start (``onstart``) and releases it when the run ends (``onsuccess`` / ``onerror``); dry runs
take none. A lock left by a run that died (same host, process gone) is taken over with a warning.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: the lock's file name inside the results folder
LOCK_NAME = ".robustxai.lock"


class ResultsLockedError(RuntimeError):
    """Another run holds the results folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def acquire(results: str | os.PathLike, about: dict) -> Path:
    """Create ``<results>/LOCK_NAME`` holding this process (pid, host, started) and ``about`` (e.g. the
    working directory and config files); returns its path. Raises ResultsLockedError naming the run that
    holds it, unless that run is gone (same host, no such process): then its lock is replaced."""
    folder = Path(results)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), **about}
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == mine["host"] and holder.get("pid") and not _alive(int(holder["pid"])):
                log.warning("%s: taking over the lock of run %s, which is gone", path, holder)
                path.unlink(missing_ok=True)
                continue
            raise ResultsLockedError(
                f"{folder} is in use by another run (pid {holder.get('pid')} on {holder.get('host')}, started "
                f"{holder.get('started')}, working directory {holder.get('workdir')}, configs {holder.get('configfiles')}); "
                f"two runs writing one results folder mix their files. Wait for it, give this run another "
                f"config.results, or delete {path} if that run is no longer alive") from None
        with os.fdopen(descriptor, "w") as handle:
            json.dump(mine, handle)
        return path
    raise ResultsLockedError(f"{path}: could not take the lock")


def release(results: str | os.PathLike) -> None:
    """Remove ``<results>/LOCK_NAME`` if this process holds it."""
    path = Path(results) / LOCK_NAME
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
