"""Unpack downloaded archives (tar of any compression, or zip) into a folder, safely and atomically."""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

log = logging.getLogger(__name__)

#: the file ``extract_archives`` leaves in every folder it unpacked: what the workflow may replace
UNPACKED_MARKER = ".robustxai-unpacked"


def foreign_files(folder: str | os.PathLike) -> list[Path]:
    """Files in ``folder`` the workflow did not unpack there: every file (up to 10 named) when the folder
    exists, holds files and lacks ``UNPACKED_MARKER``; [] for a missing or empty folder or one it unpacked."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / UNPACKED_MARKER).is_file():
        return []
    found = []
    for path in folder.rglob("*"):
        if path.is_file() or path.is_symlink():
            found.append(path)
            if len(found) == 10:
                break
    return found


def check_unpack_target(folder: str | os.PathLike, key: str) -> None:
    """Raise ValueError naming the config ``key`` when ``folder``, the target of a download's archives,
    already holds files the workflow did not unpack: Snakemake deletes a directory output before the job
    that remakes it, so a folder the user filled (or a parent of other data) would be lost."""
    found = foreign_files(folder)
    if found:
        raise ValueError(f"{key}: {folder} already exists and holds files the workflow did not unpack (e.g. "
                         f"{', '.join(str(p) for p in found[:3])}); unpacking the archives would replace it. Point "
                         "it at a new folder, or drop 'archives' to use the folder as it is")


def _members(archive: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(member path, open file) of every regular file in a tar or zip archive; links and devices are skipped."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    with z.open(info) as f:
                        yield info.filename, f
        return
    with tarfile.open(archive, "r:*") as t:
        for member in t:
            if member.isfile():
                with t.extractfile(member) as f:
                    yield member.name, f


def extract_archives(archives: list[str | os.PathLike], folder: str | os.PathLike, strip_components: int = 0) -> int:
    """Unpack every file of ``archives`` into ``folder``, dropping the first ``strip_components`` parts of
    each member's path (as ``tar --strip-components``; e.g. 1 for ``imagenet-a/<wnid>/x.jpg``); returns the
    number of files written. The folder appears only once every archive is unpacked (written under a
    temporary name, then renamed). A member path that is absolute or climbs with ``..`` raises ValueError
    naming the archive. The folder gets ``UNPACKED_MARKER``; an existing folder without it that holds
    files is never replaced (ValueError, ``check_unpack_target``)."""
    folder = Path(folder)
    check_unpack_target(folder, "the unpack target")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=folder.parent))  # fresh: nobody else's
    count = 0
    try:
        for archive in map(Path, archives):
            for name, source in _members(archive):
                parts = PurePosixPath(name).parts
                if PurePosixPath(name).is_absolute() or ".." in parts:
                    raise ValueError(f"{archive}: member {name!r} points outside the folder; refusing to unpack it")
                if len(parts) <= strip_components:
                    continue
                target = partial.joinpath(*parts[strip_components:])
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                count += 1
            log.info("%s unpacked", archive)
        if not count:
            raise ValueError(f"{[str(a) for a in archives]}: no files below {strip_components} leading folder(s); "
                             "check strip_components")
        (partial / UNPACKED_MARKER).write_text("\n".join(map(str, archives)) + "\n")
        if folder.exists():  # empty, or unpacked by an earlier run (marker): moved aside, then removed
            old = Path(tempfile.mkdtemp(prefix=f"{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            os.replace(partial, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return count
