"""``robustxai verify``: check every split, shard, metric table, checkpoint and resume file under a results
folder against its content checksum, with the same checks the workflow's readers make.

Only files at paths the workflow writes (``LAYOUT``) are judged; any other file (a user's HDF5, a
TorchScript model, a ``notes.tmp``) is listed as unknown and never touched. Run it while no workflow
runs in that folder: ``fix`` moves the corrupt files and the temporary files (``<output>.tmp``) that
killed jobs left into ``<results>/.corrupt/`` (same relative path), from where they can be restored
or deleted. ``snakemake --forcerun`` of the moved files regenerates them and what was computed from
them; a plain run would regenerate only those a job still to run needs (Snakemake leaves a missing
intermediate file, e.g. a checkpoint, missing when its dependents exist).
"""
from __future__ import annotations

import os
import re
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
#: statuses of a checked file; the first two need no action, UNKNOWN files are never touched
OK, UNVERIFIED, CORRUPT, LEFTOVER, UNKNOWN = "ok", "unverified", "corrupt", "leftover", "unknown"
#: the paths (relative to the results folder, "/"-separated) where the workflow writes the files it checks
LAYOUT = re.compile(r"data/[^/]+/[^/]+\.h5|attributions/(?:[^/]+/)+shard-\d+\.h5|metrics/(?:[^/]+/)+[^/]+\.parquet"
                    r"|tables/per_image\.parquet|models/[^/]+\.(?:pt|resume)|roar/(?:[^/]+/)+[^/]+\.resume")
#: files a job writes inside its output folder (a metrics job: every table of one model's maps of one method)
IN_OUTPUT_FOLDER = re.compile(r"metrics/[^/]+/[^/]+/[^/]+/[^/]+\.parquet")
#: what ``robustxai.files.atomic_output`` writes before renaming: an output's name + ".tmp"
TEMPORARY = re.compile(r"(?:[^/]+/)*[^/]+\.(?:h5|parquet|pt|resume|json|csv|tsv|png|pdf|md|html|txt)\.tmp")
#: where ``fix`` moves what it takes away, under the results folder
QUARANTINE = ".corrupt"


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one file: ``status`` one of OK, UNVERIFIED (written before checksums), CORRUPT
    (``reason`` says why), LEFTOVER (a temporary file a killed job left) or UNKNOWN (not a file the
    workflow writes)."""

    path: Path
    status: str
    reason: str = ""


def check_file(path: Path, root: Path) -> FileCheck:
    """Check one file under ``root`` whose suffix is in ``CHECKS`` or is ``.tmp``; a file at a path the
    workflow does not write (``LAYOUT``, ``TEMPORARY``) is UNKNOWN, unread."""
    relative = path.relative_to(root).as_posix()
    if path.suffix == ".tmp":
        if TEMPORARY.fullmatch(relative):
            return FileCheck(path, LEFTOVER, "the temporary file of a job that was killed")
        return FileCheck(path, UNKNOWN, "not a temporary file the workflow writes; kept")
    if not LAYOUT.fullmatch(relative):
        return FileCheck(path, UNKNOWN, "not at a path the workflow writes; kept")
    try:
        if CHECKS[path.suffix](path):
            return FileCheck(path, OK)
        return FileCheck(path, UNVERIFIED, "it carries no checksum: written by a version before checksums, or its "
                         "checksum was removed; regenerate it with snakemake --forcerun to make it verifiable")
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


def rerun_target(path: Path, root: Path) -> Path:
    """What ``snakemake --forcerun`` must name to regenerate the result file ``path`` under ``root``: the
    file itself, or the folder a job writes it in (a metric table's metrics folder)."""
    return path.parent if IN_OUTPUT_FOLDER.fullmatch(path.relative_to(root).as_posix()) else path


def verify_results(root: str | os.PathLike, fix: bool = False) -> list[FileCheck]:
    """Check every result file under ``root``; with ``fix``, move the corrupt and leftover ones into
    ``root / QUARANTINE`` (unknown files are never touched).
    Returns the checks of every file; raises NotADirectoryError when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder: give the workflow's results folder (e.g. results)")
    checks = [check_file(path, root) for path in result_files(root)]
    if fix:
        for check in checks:
            if check.status in (CORRUPT, LEFTOVER):
                moved = root / QUARANTINE / check.path.relative_to(root)
                moved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(check.path, moved)
    return checks
