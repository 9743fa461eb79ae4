"""The built-in dataset (``robustxai.data.builtin``): generated, no download, its own OOD splits."""
from __future__ import annotations

from robustxai.config import ConfigError
from robustxai.data.builtin import CLASS_NAMES, SPLITS, make_builtin_splits
from robustxai.data.kinds.base import DatasetKind
from robustxai.data.splits import ImageSplit


class Builtin(DatasetKind):
    """Digits on cluttered backgrounds; settings block ``builtin: {sizes: {split: images}}``."""

    name = "builtin"

    def split_names(self, dataset: dict) -> dict[str, list[str]]:
        return {"fit": ["train", "val"], "test": ["test"], "ood": ["ood_background", "ood_corruption"]}

    def num_classes(self, dataset: dict) -> int:
        return len(CLASS_NAMES)

    def split_sizes(self, dataset: dict) -> dict[str, int]:
        sizes = self.settings(dataset).get("sizes")
        if not sizes:
            raise ConfigError(f"dataset kind 'builtin' needs dataset.builtin.sizes for the splits {list(SPLITS)}")
        return dict(sizes)

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        return make_builtin_splits(self.split_sizes(dataset), dataset.get("image_size", 32), dataset.get("seed", 0))
