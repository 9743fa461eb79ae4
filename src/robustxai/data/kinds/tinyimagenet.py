"""Tiny ImageNet from the official zip or an extracted tree (reader in ``robustxai.data.tinyimagenet``)."""
from __future__ import annotations

from robustxai.data.kinds.base import BenchmarkKind
from robustxai.data.splits import ImageSplit
from robustxai.data.tinyimagenet import IMAGE_SIZE, TINYIMAGENET_MD5, TINYIMAGENET_URL, read_tinyimagenet


class TinyImageNet(BenchmarkKind):
    """Tiny ImageNet: 100,000 train and 10,000 val 64x64 images in 200 classes, one box each.

    The official val set is the ``test`` split (the test set has no labels). Settings block
    ``tinyimagenet: {url, md5, sha256, root, val_size}`` (see :class:`BenchmarkKind`); ``root``, an
    already extracted ``tiny-imagenet-200`` folder, replaces the download.
    """

    name = "tinyimagenet"
    image_size, classes, train_size, test_size = IMAGE_SIZE, 200, 100_000, 10_000
    url, md5 = TINYIMAGENET_URL, TINYIMAGENET_MD5

    def archive(self, dataset: dict) -> dict | None:
        return None if self.settings(dataset).get("root") else super().archive(dataset)

    def local_inputs(self, dataset: dict) -> dict[str, str]:
        """The extracted ``root``, when one is configured instead of the download."""
        root = self.settings(dataset).get("root")
        return {"dataset.tinyimagenet.root": root} if root else {}

    def source(self, dataset: dict, archive_path: str | None) -> str:
        """The configured ``root``, else the downloaded archive."""
        return self.settings(dataset).get("root") or super().source(dataset, archive_path)

    def read(self, source: str) -> dict[str, ImageSplit]:
        official = read_tinyimagenet(source)
        return {"train": official["train"], "test": official["val"]}
