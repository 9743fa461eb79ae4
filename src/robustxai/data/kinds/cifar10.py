"""CIFAR-10 from the official python archive (reader in ``robustxai.data.cifar``)."""
from __future__ import annotations

from robustxai.data.cifar import CIFAR10_MD5, CIFAR10_URL, read_cifar10
from robustxai.data.kinds.base import BenchmarkKind
from robustxai.data.splits import ImageSplit


class Cifar10(BenchmarkKind):
    """CIFAR-10: 50,000 train and 10,000 test 32x32 images in 10 classes, no boxes.

    Settings block ``cifar10: {url, md5, sha256, val_size}`` (see :class:`BenchmarkKind`).
    """

    name = "cifar10"
    image_size, classes, train_size, test_size = 32, 10, 50_000, 10_000
    url, md5 = CIFAR10_URL, CIFAR10_MD5

    def has_boxes(self, dataset: dict, split: str) -> bool:
        return False

    def read(self, source: str) -> dict[str, ImageSplit]:
        return read_cifar10(source)
