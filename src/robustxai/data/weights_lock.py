"""Pinning weights whose checksum nobody publishes: trust on first use, recorded in a lock folder.

The first download (or import) of a model's weights records the file's URL, size and sha256 in
``<weights_lock>/<model>.yaml`` and prints the record; every later download or import of that model
must match it. A ``sha256`` in the model's config entry wins over the lock. Each model has its own
record file, created atomically and only once (a hard link, which fails when the record exists), so
concurrent downloads of different models never lose each other's records, concurrent first downloads
of one model all check against the one record that won, and no file lock (unreliable on cluster file
systems) is needed.
"""
from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from robustxai.data.download import download, file_digest, verify_digest
from robustxai.files import create_exclusively

log = logging.getLogger(__name__)
RECORD_KEYS = ("url", "size", "sha256")


def record_path(lock_dir: str | os.PathLike, model: str) -> Path:
    """The lock record of configured model ``model``: ``<lock_dir>/<model>.yaml``."""
    return Path(lock_dir) / f"{model}.yaml"


def read_record(lock_dir: str | os.PathLike, model: str) -> dict | None:
    """``{url, size (bytes), sha256, recorded (UTC time)}`` of ``model``'s weights, or None before the
    first download; ValueError naming the record file when it is damaged."""
    path = record_path(lock_dir, model)
    if not path.is_file():
        return None
    try:
        record = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        record = error
    if not isinstance(record, dict) or any(key not in record for key in RECORD_KEYS):
        raise ValueError(f"weights lock record {path} is damaged (it must hold {', '.join(RECORD_KEYS)}); restore it "
                         "from version control, or delete it to trust the next download")
    return record


def pin_weights(path: str | os.PathLike, model: str, url: str, lock_dir: str | os.PathLike) -> dict:
    """Check the weights file ``path`` of ``model`` (fetched from ``url``) against its lock record, or,
    when there is none, record its url, size (bytes) and sha256 and print the record (trust on first
    use). Returns the record; ValueError naming the record file, the recorded and the found checksum
    and what to do when the file differs from the one recorded."""
    found = {"url": url, "size": os.path.getsize(path), "sha256": file_digest(path)}
    record_file = record_path(lock_dir, model)
    record = read_record(lock_dir, model)
    if record is None:
        record = {**found, "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        text = (f"# weights of model '{model}', trusted on first download; later downloads must match\n"
                + yaml.safe_dump(record, sort_keys=False))
        if create_exclusively(record_file, text):
            message = (f"weights lock: first download of model '{model}' trusted and recorded in {record_file}: "
                       f"url {url}, {found['size']} bytes, sha256 {found['sha256']}")
            log.warning(message)
            print(message, file=sys.__stderr__, flush=True)  # also on the console, not only in the job's log
            return record
        record = read_record(lock_dir, model)  # a concurrent first download recorded first: match its record
    if (found["sha256"], found["size"]) != (record["sha256"], record["size"]):
        moved = "" if record["url"] == url else f" (recorded from {record['url']})"
        raise ValueError(
            f"the weights of model '{model}' from {url} do not match the weights lock {record_file}: they have "
            f"sha256 {found['sha256']} ({found['size']} bytes), the lock recorded sha256 {record['sha256']} "
            f"({record['size']} bytes) on {record.get('recorded', 'first download')}{moved}. The file changed at its "
            f"source or in transit; if you trust the new file, delete {record_file} and rerun to record it, otherwise "
            "restore the original file")
    if record["url"] != url:
        log.info("model '%s': %s has the bytes recorded from %s", model, url, record["url"])
    return record


def verify_weights(path: str | os.PathLike, model: str, url: str, sha256: str | None = None,
                   lock_dir: str | os.PathLike | None = None) -> None:
    """Verify the weights file ``path`` of ``model`` (from ``url``): by the config's ``sha256`` when
    given (it wins), else by the weights lock (``pin_weights``: recorded on first use); ValueError when
    there is neither or the file does not match."""
    if sha256:
        verify_digest(path, sha256)
    elif lock_dir is not None:
        pin_weights(path, model, url, lock_dir)
    else:
        raise ValueError(f"model '{model}': nothing to verify {url} by; set config.models.{model}.sha256 or a "
                         "top-level weights_lock that records it on first download")


def download_weights(url: str, dest: str | os.PathLike, model: str, sha256: str | None = None,
                     lock_dir: str | os.PathLike | None = None) -> Path:
    """Download ``model``'s weights from ``url`` to ``dest``, verified as ``verify_weights`` says before
    they are moved into place (a refused file leaves nothing at ``dest``)."""
    return download(url, dest, check=lambda partial: verify_weights(partial, model, url, sha256, lock_dir))
