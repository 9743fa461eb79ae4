"""Writing result files so that a half-written one is never read."""
from __future__ import annotations

import json
import os
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


def write_json(payload: dict, path: str | os.PathLike, indent: int = 1) -> None:
    """Write ``payload`` as JSON to ``path`` through ``atomic_output``."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent))
