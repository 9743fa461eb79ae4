"""``robustxai verify``: check every split, shard, metric table, checkpoint and resume file under a results
folder against its content checksum, with the same checks the workflow's readers make.

Run it while no workflow runs in that folder: ``fix`` removes the corrupt files and the temporary
files (``*.tmp``) that killed jobs left. ``snakemake --forcerun`` of the removed files regenerates them
and what was computed from them; a plain run would regenerate only those a job still to run needs
(Snakemake leaves a missing intermediate file, e.g. a checkpoint, missing when its dependents exist).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from robustxai.attribution.shards import read_shard
from robustxai.data.splits import is_split_file, iter_split
from robustxai.integrity import CHECKSUM_KEY, CorruptFileError, read_arrow_table
from robustxai.models.checkpoint import load_payload


def _hdf5_has_checksum(path: Path) -> bool:
    """A split file (every chunk read: HDF5 checks each chunk's Fletcher-32 sum) or an attribution shard."""
    if is_split_file(path):
        for _ in iter_split(path, 1024):
            pass
        return True
    return CHECKSUM_KEY in read_shard(path).attrs


def _table_has_checksum(path: Path) -> bool:
    return CHECKSUM_KEY.encode() in (read_arrow_table(path).schema.metadata or {})


def _payload_has_checksum(path: Path) -> bool:
    return CHECKSUM_KEY in load_payload(path)


#: file suffix -> check that raises CorruptFileError or returns whether the file had a checksum
CHECKS = {".h5": _hdf5_has_checksum, ".parquet": _table_has_checksum, ".pt": _payload_has_checksum,
          ".resume": _payload_has_checksum}
#: statuses of a checked file; the first two need no action
OK, UNVERIFIED, CORRUPT, LEFTOVER = "ok", "unverified", "corrupt", "leftover"


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one file: ``status`` one of OK, UNVERIFIED (written before checksums), CORRUPT
    (``reason`` says why) or LEFTOVER (a temporary file a killed job left)."""

    path: Path
    status: str
    reason: str = ""


def check_file(path: Path) -> FileCheck:
    """Check one file whose suffix is in ``CHECKS`` or is ``.tmp``."""
    if path.suffix == ".tmp":
        return FileCheck(path, LEFTOVER, "the temporary file of a job that was killed")
    try:
        return FileCheck(path, OK if CHECKS[path.suffix](path) else UNVERIFIED)
    except CorruptFileError as error:
        return FileCheck(path, CORRUPT, error.reason)


def result_files(root: Path) -> list[Path]:
    """The files under ``root`` that ``check_file`` checks, sorted; hidden folders (``.snakemake``,
    ``.venv``, ...) are skipped."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(folder) / name for name in files if Path(name).suffix in {*CHECKS, ".tmp"}]
    return sorted(found)


def verify_results(root: str | os.PathLike, fix: bool = False) -> list[FileCheck]:
    """Check every result file under ``root``; with ``fix``, delete the corrupt and leftover ones.
    Returns the checks of every file; raises NotADirectoryError when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder: give the workflow's results folder (e.g. results)")
    checks = [check_file(path) for path in result_files(root)]
    if fix:
        for check in checks:
            if check.status in (CORRUPT, LEFTOVER):
                check.path.unlink(missing_ok=True)
    return checks
