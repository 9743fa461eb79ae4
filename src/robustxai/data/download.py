"""Downloads verified by checksum: the one place the workflow touches the network."""
from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm`` is any hashlib name, e.g. sha256 or md5)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_digest(path: str | os.PathLike, expected: str, algorithm: str = "sha256") -> None:
    """Raise ValueError naming the file if its digest is not ``expected``."""
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise ValueError(f"{path}: {algorithm} is {actual}, expected {expected}; "
                         "the file is corrupt or not the one the config names")


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, md5: str | None = None,
             check: Callable[[Path], None] | None = None) -> Path:
    """Fetch ``url`` (http(s) or file://) to ``dest``, verify it, and only then move it into place.

    A failed or interrupted download leaves no file at ``dest``; a download without a checksum (or a
    ``check``, called with the downloaded file's path, that raises when the file is not trusted, e.g. a
    weights lock) is refused (ValueError), since its bytes are later read as data or weights.
    """
    if not (sha256 or md5 or check):
        raise ValueError(f"refusing to download {url} without a sha256 or md5 checksum: add the file's checksum "
                         "to the config")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    log.info("downloading %s -> %s", url, dest)
    try:
        with urllib.request.urlopen(url) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, mininterval=2.0) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        if sha256:
            verify_digest(partial, sha256, "sha256")
        if md5:
            verify_digest(partial, md5, "md5")
        if check:
            check(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dest)
    return dest
