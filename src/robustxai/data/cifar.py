"""CIFAR-10 in the python-pickle layout of the official archive (``cifar-10-python.tar.gz``).

The archive is read directly (no extraction); torchvision's own class is not used for reading
because it insists on the official files' md5 sums, which stand-in test files cannot have.
"""
from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np

from robustxai.data.splits import ImageSplit

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


def _read_batches(archive: tarfile.TarFile, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
    images, labels = [], []
    for name in names:
        if name not in members:
            raise FileNotFoundError(f"CIFAR-10 archive has no member '{name}' (is it cifar-10-python.tar.gz?)")
        batch = pickle.load(archive.extractfile(members[name]), encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar10(archive_path: str | os.PathLike) -> dict[str, ImageSplit]:
    """Read the train and test sets: {"train", "test"} -> ImageSplit (uint8 (N, 32, 32, 3), no boxes)."""
    with tarfile.open(archive_path, "r:*") as archive:
        members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
        meta = pickle.load(archive.extractfile(members["batches.meta"]), encoding="latin1")
        splits = {}
        for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
            images, labels = _read_batches(archive, names)
            splits[split] = ImageSplit(images=images, labels=labels,
                                       boxes=np.full((len(labels), 4), -1, dtype=np.int32),
                                       class_names=list(meta["label_names"]))
    return splits
