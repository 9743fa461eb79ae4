"""Content checksums of the workflow's result files, and the error a corrupt one raises.

Every shard, metric table and checkpoint carries the sha256 of its content (``CHECKSUM_KEY``),
computed when it is written; its reader recomputes it and raises :class:`CorruptFileError`, naming
the file and what to do, when the two differ or the file cannot be read at all (e.g. truncated).
Files written before checksums existed have none: they are read unverified.

Parquet tables are stamped (``stamp_table``, used by ``pipeline.metrics.write_table``) and read
(``read_table``) here, so that every layer that reads them, aggregation included, checks them alike.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import numpy as np

#: name of the checksum: an HDF5 attribute, a checkpoint payload key, a Parquet schema metadata key
CHECKSUM_KEY = "content_sha256"


class CorruptFileError(ValueError):
    """A result file that cannot be read or whose content does not match its checksum."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path} is corrupt ({reason}): delete it (or run `robustxai verify RESULTS_DIR --fix`) "
                         "and rerun the workflow to regenerate it")

    @classmethod
    def unreadable(cls, path: str | os.PathLike, kind: str, error: Exception) -> CorruptFileError:
        """The error for a file its library could not read (``kind``: "HDF5", "Parquet", ...), with the
        first sentence of the library's message."""
        return cls(path, f"unreadable {kind}: {str(error).split('. ')[0].strip()}")


def content_sha256(value) -> str:
    """Hex sha256 of nested dicts (keys in sorted order), lists / tuples, numpy arrays, torch tensors
    (dtype, shape and bytes) and primitives (None, bool, int, float, str)."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode() + b":")
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, np.ndarray):
        digest.update(f"ndarray:{value.dtype.str}:{value.shape};".encode())
        if value.dtype.hasobject:
            _feed(digest, value.tolist())
        else:
            digest.update(np.ascontiguousarray(value).view(np.uint8).data)
    else:
        import torch

        if not isinstance(value, torch.Tensor):
            raise TypeError(f"cannot checksum a {type(value).__name__}")
        value = value.detach().cpu().contiguous()
        digest.update(f"tensor:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().data)


def check_checksum(path: str | os.PathLike, stored: str | bytes | None, actual: str) -> None:
    """Raise :class:`CorruptFileError` for ``path`` when the checksum ``actual`` of its content differs
    from the ``stored`` one (a file written before checksums, ``stored`` None, passes)."""
    if isinstance(stored, bytes):
        stored = stored.decode()
    if stored is not None and stored != actual:
        raise CorruptFileError(path, f"its content does not hash to the {CHECKSUM_KEY} written with it")


def table_sha256(table) -> str:
    """Hex sha256 of a pyarrow Table's column names, types, null masks and values, independent of how
    the columns are chunked (a table read back from Parquet hashes as the one written)."""
    import pyarrow as pa

    columns = {}
    for name, column in zip(table.column_names, table.columns):
        array = column.combine_chunks()
        parts = [str(array.type), array.null_count]
        if array.null_count:
            parts.append(array.is_null().to_numpy(zero_copy_only=False))
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_binary(array.type):
            array = array.cast(pa.large_binary())
            _, offsets, data = array.buffers()
            offsets = np.frombuffer(offsets, np.int64)[array.offset:array.offset + len(array) + 1]
            parts += [np.diff(offsets), np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]] if data else None]
        else:
            parts.append(array.to_numpy(zero_copy_only=False))
        columns[name] = parts
    return content_sha256(columns)


def stamp_table(table):
    """``table`` (pyarrow) with its :func:`table_sha256` added to the schema metadata."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                          CHECKSUM_KEY.encode(): table_sha256(table).encode()})


#: the Parquet schema metadata key under which a table's writer stores what it knows about it (JSON)
ABOUT_KEY = b"robustxai"


def arrow_metadata(arrow) -> dict:
    """What a table's writer stored under ``ABOUT_KEY`` (e.g. a metric table's metric, settings and map
    protocol), from its pyarrow Table already read; empty for tables written without it."""
    import json

    metadata = arrow.schema.metadata or {}
    return json.loads(metadata[ABOUT_KEY]) if ABOUT_KEY in metadata else {}


def read_arrow_table(path: str | os.PathLike):
    """The pyarrow Table of a Parquet file, its checksum verified; :class:`CorruptFileError` naming
    ``path`` when it cannot be read or does not match."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as error:
        raise CorruptFileError.unreadable(path, "Parquet", error) from error
    check_checksum(path, (table.schema.metadata or {}).get(CHECKSUM_KEY.encode()), table_sha256(table))
    return table


def read_table(path: str | os.PathLike):
    """A Parquet table written by the workflow as a pandas DataFrame, its checksum verified."""
    return read_arrow_table(path).to_pandas()
