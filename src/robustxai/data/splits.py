"""The on-disk format every dataset is converted to: one chunked HDF5 file per split.

A split holds images as uint8 (N, H, W, 3), integer labels (N,), object boxes (N, 4) as
``(x0, y0, x1, y1)`` in pixels with exclusive ends (so ``img[y0:y1, x0:x1]`` is the box;
``MISSING_BOX`` when an image has none), optional object masks (N, H, W) bool, class names, any
per-image extras (e.g. corruption name and severity) as further arrays of length N, and optionally
the ``label_subset`` of model outputs its labels can take (ImageNet-A/R: 200 of the 1000 classes).

On disk (``save_split``, or ``SplitWriter`` to stream a split too large for memory): HDF5 datasets
``images`` (uncompressed) and ``masks`` chunked one image per chunk, so a job reads only the images
it asks for (``load_split(path, index)``); every dataset but the text ones carries HDF5's per-chunk
Fletcher-32 checksum, so a damaged chunk is refused when read, naming the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robustxai.files import atomic_output

if TYPE_CHECKING:  # torch is imported when tensors are asked for, so config-time code does not pay for it
    import torch

#: the format tag stored in each split file's attributes
SPLIT_FORMAT = "robustxai-split/1"
#: the box stored for an image without one (localisation metrics score it NaN)
MISSING_BOX = (-1, -1, -1, -1)
#: HDF5 filters of the datasets: a per-chunk checksum, and lzf compression but for images (photos do
#: not compress, and lzf spends 16 ms per 224 px image finding that out)
_CHECKSUM = {"fletcher32": True}
_FILTERS = {"compression": "lzf", **_CHECKSUM}


@dataclass
class ImageSplit:
    """One split of a dataset (or some of its images), held in memory as numpy arrays (shapes in the
    module docstring)."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    class_names: list[str]
    masks: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: int64 (K,) sorted model outputs the labels can take (predictions are made among them); None = all
    label_subset: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (n,) or self.boxes.shape != (n, 4):
            raise ValueError(f"labels (N,) and boxes (N, 4) must match N={n}: "
                             f"got {self.labels.shape} and {self.boxes.shape}")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"masks must be (N, H, W) = {self.images.shape[:3]}, got {self.masks.shape}")
        for name, values in self.extras.items():
            if len(values) != n:
                raise ValueError(f"extra '{name}' has {len(values)} entries for {n} images")
        if self.label_subset is not None:
            subset = np.asarray(self.label_subset, dtype=np.int64)
            if subset.ndim != 1 or np.any(np.diff(subset) <= 0):
                raise ValueError("label_subset must be sorted unique class indices (K,)")
            if n and not np.isin(self.labels, subset).all():
                raise ValueError("labels outside label_subset")
            self.label_subset = subset

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> ImageSplit:
        """The images at ``index`` (K,) (integer positions), with their labels, boxes, masks and extras."""
        return ImageSplit(images=self.images[index], labels=self.labels[index], boxes=self.boxes[index],
                          class_names=self.class_names, masks=None if self.masks is None else self.masks[index],
                          extras={k: v[index] for k, v in self.extras.items()}, label_subset=self.label_subset)

    def tensors(self, dtype: str = "float") -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float (N, 3, H, W) in [0, 1] (``dtype`` "float"), or as stored, uint8 (N, 3, H, W)
        in 0..255 (``dtype`` "uint8": a quarter of the memory, made float by ``unit_float`` per batch), and
        labels as int64 (N,)."""
        import torch

        images = torch.from_numpy(self.images).permute(0, 3, 1, 2)
        if dtype == "float":
            images = unit_float(images)
        return images.contiguous(), torch.from_numpy(self.labels).long()


def unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) in 0..255 as float in [0, 1]; float images are returned as they are."""
    import torch

    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def concatenate(parts: list[ImageSplit]) -> ImageSplit:
    """One ImageSplit of ``parts`` (consecutive parts of a split: the first's class names and label subset)."""
    first = parts[0]
    return ImageSplit(images=np.concatenate([p.images for p in parts]), labels=np.concatenate([p.labels for p in parts]),
                      boxes=np.concatenate([p.boxes for p in parts]), class_names=first.class_names,
                      masks=None if first.masks is None else np.concatenate([p.masks for p in parts]),
                      extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
                      label_subset=first.label_subset)


class SplitWriter:
    """Streams a split into an HDF5 file chunk by chunk: ``with SplitWriter(path) as out: out.append(part)``.

    Every appended :class:`ImageSplit` must have the first one's image size, class names, masks (or
    none), extras and label subset. The file appears under ``path`` only when the block ends without
    an error, so an interrupted preparation leaves nothing that looks finished.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stack = ExitStack()
        self._file = None
        self._first: ImageSplit | None = None
        self.count = 0

    def __enter__(self) -> SplitWriter:
        import h5py

        tmp = self._stack.enter_context(atomic_output(self.path))
        self._file = self._stack.enter_context(h5py.File(tmp, "w"))
        self._file.attrs["format"] = SPLIT_FORMAT
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is None and self._first is None:  # nothing appended: leave no file behind
            exc = ValueError(f"{self.path}: nothing was appended to the split")
            self._stack.__exit__(ValueError, exc, None)
            raise exc
        return self._stack.__exit__(exc_type, exc, traceback)

    def _create(self, part: ImageSplit) -> None:
        import h5py

        f, size = self._file, part.images.shape[1:3]
        f.create_dataset("images", shape=(0, *size, 3), maxshape=(None, *size, 3), dtype=np.uint8,
                         chunks=(1, *size, 3), **_CHECKSUM)
        if part.masks is not None:
            f.create_dataset("masks", shape=(0, *size), maxshape=(None, *size), dtype=bool, chunks=(1, *size),
                             **_FILTERS)
        f.create_dataset("labels", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,), **_FILTERS)
        f.create_dataset("boxes", shape=(0, 4), maxshape=(None, 4), dtype=np.int32, chunks=(4096, 4), **_FILTERS)
        for name, values in part.extras.items():  # HDF5 cannot filter variable-length strings
            text = values.dtype.kind in "US"
            f.create_dataset(f"extras/{name}", shape=(0,), maxshape=(None,), chunks=(4096,),
                             dtype=h5py.string_dtype() if text else values.dtype, **({} if text else _FILTERS))
        f.create_dataset("class_names", data=np.array(part.class_names, dtype=object),
                         dtype=h5py.string_dtype())
        if part.label_subset is not None:
            f.create_dataset("label_subset", data=part.label_subset)

    def append(self, part: ImageSplit) -> None:
        """Add the images of ``part`` (and their labels, boxes, masks and extras) after those written."""
        if self._file is None:
            raise RuntimeError("SplitWriter.append outside its `with` block")
        if self._first is None:
            self._create(part)
            self._first = part
        self._check_like_first(part)
        n, end = len(part), self.count + len(part)
        columns = {"images": part.images, "labels": part.labels, "boxes": part.boxes,
                   **({"masks": part.masks} if part.masks is not None else {}),
                   **{f"extras/{name}": values.astype(object) if values.dtype.kind in "US" else values
                      for name, values in part.extras.items()}}
        for name, values in columns.items():
            dataset = self._file[name]
            dataset.resize(end, axis=0)
            dataset[self.count:end] = values
        self.count = end

    def _check_like_first(self, part: ImageSplit) -> None:
        first = self._first
        same = (part.images.shape[1:] == first.images.shape[1:] and part.class_names == first.class_names
                and (part.masks is None) == (first.masks is None) and set(part.extras) == set(first.extras)
                and np.array_equal(part.label_subset if part.label_subset is not None else [],
                                   first.label_subset if first.label_subset is not None else []))
        if not same:
            raise ValueError(f"{self.path}: a chunk differs from the first in image size, class names, masks, "
                             "extras or label subset")


def save_split(split: ImageSplit, path: str | os.PathLike) -> None:
    """Write ``split`` to ``path`` (HDF5, format in the module docstring); written to a temp name, then renamed."""
    with SplitWriter(path) as out:
        out.append(split)


def _read_rows(dataset, index: np.ndarray | None) -> np.ndarray:
    """Rows ``index`` (K,) of an HDF5 dataset in that order, each contiguous run read as one slice
    straight into the output (a shard's sorted, contiguous positions are one read, no copy)."""
    if index is None:
        return dataset[()]
    out = np.empty((len(index), *dataset.shape[1:]), dtype=dataset.dtype)
    if index.size == 0:
        return out
    order = np.argsort(index, kind="stable")
    in_order = bool(np.all(order == np.arange(len(index))))
    ordered, target = (index, out) if in_order else (index[order], np.empty_like(out))
    position = 0
    for run in np.split(ordered, np.flatnonzero(np.diff(ordered) != 1) + 1):
        dataset.read_direct(target, np.s_[int(run[0]):int(run[-1]) + 1], np.s_[position:position + len(run)])
        position += len(run)
    if not in_order:
        out[order] = target
    return out


def _as_text(values: np.ndarray) -> np.ndarray:
    """HDF5 strings (bytes objects, N) as a numpy str array (N,)."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)


def _open(path: str | os.PathLike):
    import h5py

    from robustxai.integrity import CorruptFileError

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no split file {path}") from error
        raise CorruptFileError.unreadable(path, "HDF5", error) from error
    if f.attrs.get("format") != SPLIT_FORMAT:
        f.close()
        raise CorruptFileError(path, f"not a {SPLIT_FORMAT} split file")
    return f


def is_split_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file written as a split (False for other HDF5 files, e.g. shards,
    and for files HDF5 cannot open)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == SPLIT_FORMAT
    except OSError:
        return False


def split_size(path: str | os.PathLike) -> int:
    """Number of images in the split file ``path``, without reading them."""
    with _open(path) as f:
        return len(f["labels"])


def load_split(path: str | os.PathLike, index: np.ndarray | None = None) -> ImageSplit:
    """Read a split written by :func:`save_split` / :class:`SplitWriter`: every image, or only those at
    ``index`` (K,) (integer positions, any order, repeats allowed) in that order, so a job holds only
    its own images in memory. A damaged chunk raises ``CorruptFileError`` naming the file."""
    rows = None
    with _open(path) as f:
        if index is not None:
            rows = np.asarray(index, dtype=np.int64).reshape(-1)
            size = len(f["labels"])
            if rows.size and (rows.min() < 0 or rows.max() >= size):
                raise IndexError(f"{path}: image positions {rows.min()}..{rows.max()} outside 0..{size - 1}")
        try:
            extras = {name: _read_rows(f["extras"][name], rows) for name in f.get("extras", {})}
            return ImageSplit(
                images=_read_rows(f["images"], rows),
                labels=_read_rows(f["labels"], rows),
                boxes=_read_rows(f["boxes"], rows),
                class_names=[c.decode() if isinstance(c, bytes) else str(c) for c in f["class_names"][()]],
                masks=_read_rows(f["masks"], rows) if "masks" in f else None,
                extras={name: _as_text(values) if values.dtype == object else values
                        for name, values in extras.items()},
                label_subset=f["label_subset"][()] if "label_subset" in f else None,
            )
        except OSError as error:  # HDF5 reports a failed checksum or decompression as an OSError
            from robustxai.integrity import CorruptFileError

            raise CorruptFileError.unreadable(path, "HDF5", error) from error


def iter_split(path: str | os.PathLike, chunk_images: int) -> Iterator[tuple[np.ndarray, ImageSplit]]:
    """The split file ``path`` in consecutive parts of up to ``chunk_images`` images: yields
    (positions (K,) int64, ImageSplit of those images), so a pass over a large split holds one part."""
    size = split_size(path)
    for start in range(0, size, chunk_images):
        positions = np.arange(start, min(start + chunk_images, size), dtype=np.int64)
        yield positions, load_split(path, positions)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes (N, 4) ``(x0, y0, x1, y1)``, exclusive ends, of boolean masks (N, H, W).

    An empty mask gets ``MISSING_BOX``.
    """
    boxes = np.tile(np.array(MISSING_BOX, dtype=np.int32), (len(masks), 1))
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size:
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes
