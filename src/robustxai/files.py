"""Writing result files so that a half-written one is never read."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (its parent created); when the block succeeds the file
    written there is renamed to ``path``, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_exclusively(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` to ``path`` only when no file is there yet, atomically for concurrent writers and
    readers (a temporary file of this process, hard-linked into place, which fails when ``path``
    exists); True when this call created ``path``, False when another writer had."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def write_json(payload: dict, path: str | os.PathLike, indent: int = 1) -> None:
    """Write ``payload`` as JSON to ``path`` through ``atomic_output``."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent))
