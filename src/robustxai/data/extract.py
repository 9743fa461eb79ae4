"""Unpack downloaded archives (tar of any compression, or zip) into a folder, safely and atomically."""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

log = logging.getLogger(__name__)


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
    naming the archive."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
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
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return count
