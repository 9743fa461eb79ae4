"""The on-disk format every dataset is converted to: one ``.npz`` file per split.

A split holds images as uint8 (N, H, W, 3), integer labels (N,), object boxes (N, 4) as
``(x0, y0, x1, y1)`` in pixels with exclusive ends (so ``img[y0:y1, x0:x1]`` is the box;
``MISSING_BOX`` when an image has none), optional object masks (N, H, W) bool, class names, and any
per-image extras (e.g. corruption name and severity) as further arrays of length N.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robustxai.files import atomic_output

if TYPE_CHECKING:  # torch is imported when tensors are asked for, so config-time code does not pay for it
    import torch

EXTRA_PREFIX = "extra_"
#: the box stored for an image without one (localisation metrics score it NaN)
MISSING_BOX = (-1, -1, -1, -1)


@dataclass
class ImageSplit:
    """One split of a dataset, held in memory as numpy arrays (shapes in the module docstring)."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    class_names: list[str]
    masks: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

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

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> ImageSplit:
        """The images at ``index`` (K,) (integer positions), with their labels, boxes, masks and extras."""
        return ImageSplit(images=self.images[index], labels=self.labels[index], boxes=self.boxes[index],
                          class_names=self.class_names, masks=None if self.masks is None else self.masks[index],
                          extras={k: v[index] for k, v in self.extras.items()})

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float (N, 3, H, W) in [0, 1] and labels as int64 (N,)."""
        import torch

        images = torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255.0)
        return images.contiguous(), torch.from_numpy(self.labels).long()


def save_split(split: ImageSplit, path: str | os.PathLike) -> None:
    """Write ``split`` to ``path`` (.npz, compressed); written to a temp name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": split.images,
        "labels": split.labels.astype(np.int64),
        "boxes": split.boxes.astype(np.int32),
        "class_names": np.array(split.class_names, dtype=str),
    }
    if split.masks is not None:
        arrays["masks"] = split.masks.astype(bool)
    arrays.update({EXTRA_PREFIX + k: v for k, v in split.extras.items()})
    with atomic_output(path) as tmp, open(tmp, "wb") as file:  # a file object: savez adds no ".npz"
        np.savez_compressed(file, **arrays)


def load_split(path: str | os.PathLike) -> ImageSplit:
    """Read a split written by :func:`save_split`."""
    with np.load(path, allow_pickle=False) as data:
        return ImageSplit(
            images=data["images"],
            labels=data["labels"],
            boxes=data["boxes"],
            class_names=[str(c) for c in data["class_names"]],
            masks=data["masks"] if "masks" in data.files else None,
            extras={k[len(EXTRA_PREFIX):]: data[k] for k in data.files if k.startswith(EXTRA_PREFIX)},
        )


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
