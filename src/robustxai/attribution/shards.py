"""HDF5 attribution shards: one file per (dataset, model, method, shard) job.

Datasets: ``maps`` (N, H, W) float32 or float16, chunked per image and gzip-compressed; ``index``
(N,) image ids in the split; ``target`` (N,) the explained class; ``predicted`` (N,) the model's
class; ``probs`` (N, K) softmax probabilities. Attributes: ``method``, ``settings`` (JSON),
``checkpoint_sha256``, ``provenance`` (JSON: package versions, host, time), ``seed``, ``wall_seconds``,
``images_per_second``, ``content_sha256`` (of the datasets, see :func:`shard_content`). Per-image side
results of a method (e.g. ``boundary_distance``, ``boundary_success`` of BSM / BIG) are datasets in the
group ``extras``. Written to a temp name and renamed, so a half-written shard is never read; one
damaged later (truncated, a changed byte) raises :class:`~robustxai.integrity.CorruptFileError` when read.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from robustxai.files import atomic_output
from robustxai.integrity import CHECKSUM_KEY, CorruptFileError, check_checksum, content_sha256

DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass
class AttributionShard:
    """The content of one shard (array shapes in the module docstring)."""

    maps: np.ndarray
    index: np.ndarray
    target: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray
    attrs: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


def shard_content(maps: np.ndarray, index: np.ndarray, target: np.ndarray, predicted: np.ndarray,
                  probs: np.ndarray, extras: dict) -> dict:
    """The datasets a shard's ``content_sha256`` covers, by name (the arrays as stored)."""
    return {"maps": maps, "index": index, "target": target, "predicted": predicted, "probs": probs,
            "extras": extras}


def write_shard(shard: AttributionShard, path: str | os.PathLike, dtype: str = "float32") -> None:
    """Write ``shard`` to ``path``; dict / list attributes are stored as JSON strings."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
    n, h, w = shard.maps.shape
    ids = (np.asarray(getattr(shard, name), dtype=np.int64) for name in ("index", "target", "predicted"))
    content = shard_content(shard.maps.astype(DTYPES[dtype]), *ids, np.asarray(shard.probs, dtype=np.float32),
                            {name: np.asarray(values) for name, values in shard.extras.items()})
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("maps", data=content["maps"], chunks=(1, h, w) if n else None,
                         compression="gzip" if n else None)
        for name in ("index", "target", "predicted", "probs"):
            f.create_dataset(name, data=content[name])
        extras = f.create_group("extras")
        for name, values in content["extras"].items():
            extras.create_dataset(name, data=values)
        for key, value in shard.attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        f.attrs[CHECKSUM_KEY] = content_sha256(content)


def read_shard(path: str | os.PathLike) -> AttributionShard:
    """Read a shard written by :func:`write_shard` (JSON attributes decoded), its ``content_sha256``
    verified (shards written before checksums have none and are read as they are); raises
    :class:`~robustxai.integrity.CorruptFileError` naming ``path`` when it is damaged."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {}
            for key, value in f.attrs.items():
                if isinstance(value, bytes):
                    value = value.decode()
                if key in ("settings", "provenance") and isinstance(value, str):
                    value = json.loads(value)
                attrs[key] = value.item() if isinstance(value, np.generic) else value
            extras = {name: data[()] for name, data in f["extras"].items()} if "extras" in f else {}
            content = shard_content(*(f[name][()] for name in ("maps", "index", "target", "predicted", "probs")),
                                    extras)
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise CorruptFileError.unreadable(path, "HDF5", error) from error
    check_checksum(path, attrs.get(CHECKSUM_KEY), content_sha256(content))
    return AttributionShard(maps=content["maps"], index=content["index"], target=content["target"],
                            predicted=content["predicted"], probs=content["probs"], attrs=attrs, extras=extras)


def gather_maps(paths: list[str | os.PathLike], count: int) -> np.ndarray:
    """Maps (count, H, W) float32 of images 0..count-1 of a split, gathered from its attribution shards
    in image order (shards may cover more images); raises ValueError naming the first missing images."""
    shards = [read_shard(path) for path in paths]
    index = np.concatenate([shard.index for shard in shards]) if shards else np.empty(0, dtype=np.int64)
    missing = np.setdiff1d(np.arange(count), index)
    if len(missing):
        raise ValueError(f"the shards cover {count - len(missing)} of {count} images (first missing: "
                         f"{missing[:5].tolist()})")
    maps = np.concatenate([shard.maps for shard in shards]).astype(np.float32)
    keep = index < count
    ordered = np.empty((count, *maps.shape[1:]), dtype=np.float32)
    ordered[index[keep]] = maps[keep]
    return ordered
