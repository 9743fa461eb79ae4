"""CIFAR-10 in the python-pickle layout of the official archive (``cifar-10-python.tar.gz``).

The archive is read directly (no extraction); torchvision's own class is not used for reading
because it insists on the official files' md5 sums, which stand-in test files cannot have. Batches
are unpickled by ``BatchUnpickler``, which builds only what a CIFAR batch holds (containers, strings,
numbers and numpy arrays), so an archive from elsewhere cannot run code when it is read.
"""
from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np

from robustxai.data.splits import MISSING_BOX, ImageSplit

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global but the numpy array builders a CIFAR batch needs."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refuses to unpickle {module}.{name}")
        return super().find_class(module, name)


def _unpickle(archive: tarfile.TarFile, member: tarfile.TarInfo, archive_path: str | os.PathLike) -> dict:
    """The dict pickled in ``member``; anything but a CIFAR batch raises ValueError naming the member."""
    try:
        batch = BatchUnpickler(archive.extractfile(member), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{member.name} in {archive_path}: {error}; this is not a CIFAR-10 batch, so the archive "
                         "is not the official cifar-10-python.tar.gz: delete it and download that one") from error
    if not isinstance(batch, dict):
        raise ValueError(f"{member.name} in {archive_path}: holds a {type(batch).__name__}, not a CIFAR-10 batch")
    return batch


def _read_batches(archive: tarfile.TarFile, names: list[str], archive_path: str | os.PathLike
                  ) -> tuple[np.ndarray, np.ndarray]:
    members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
    images, labels = [], []
    for name in names:
        if name not in members:
            raise FileNotFoundError(f"{archive_path}: no member '{name}' (is it cifar-10-python.tar.gz?)")
        batch = _unpickle(archive, members[name], archive_path)
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar10(archive_path: str | os.PathLike) -> dict[str, ImageSplit]:
    """Read the train and test sets: {"train", "test"} -> ImageSplit (uint8 (N, 32, 32, 3), no boxes)."""
    with tarfile.open(archive_path, "r:*") as archive:
        members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
        if "batches.meta" not in members:
            raise FileNotFoundError(f"{archive_path}: no member 'batches.meta' (is it cifar-10-python.tar.gz?)")
        meta = _unpickle(archive, members["batches.meta"], archive_path)
        splits = {}
        for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
            images, labels = _read_batches(archive, names, archive_path)
            splits[split] = ImageSplit(images=images, labels=labels,
                                       boxes=np.tile(np.array(MISSING_BOX, dtype=np.int32), (len(labels), 1)),
                                       class_names=list(meta["label_names"]))
    return splits
