"""ImageFolder trees with Pascal-VOC boxes (reader in ``robustxai.data.imagefolder``), e.g. ImageNet val."""
from __future__ import annotations

from collections.abc import Iterator

from pathlib import Path

from robustxai.config import ConfigError
from robustxai.data.imagefolder import iter_imagefolder
from robustxai.data.kinds.base import DatasetKind
from robustxai.data.splits import ImageSplit, concatenate


class ImageFolder(DatasetKind):
    """Local folders, one per configured split, no download.

    Settings block ``imagefolder: {num_classes, class_names_file, splits: {train, val, test: {images,
    annotations}}}``; ``test`` is required, ``train`` and ``val`` are optional. Split sizes are known
    only once the folders are read.
    """

    name = "imagefolder"

    def split_names(self, dataset: dict) -> dict[str, list[str]]:
        folders = self.settings(dataset)["splits"]
        return {"fit": [s for s in ("train", "val") if s in folders], "test": ["test"], "ood": ["ood_corruption"]}

    def num_classes(self, dataset: dict) -> int:
        return int(self.settings(dataset)["num_classes"])

    def has_boxes(self, dataset: dict, split: str) -> bool:
        """Splits with an ``annotations`` folder; ``ood_corruption`` is built from ``test``."""
        folder = self.settings(dataset)["splits"].get("test" if split == "ood_corruption" else split) or {}
        return bool(folder.get("annotations"))

    def split_parts(self, dataset: dict, archive_path: str | None) -> dict[str, Iterator[ImageSplit]]:
        """Each configured folder read lazily in parts (``iter_imagefolder``), so preparing ImageNet val
        holds one part in memory; the class count is checked on the first part."""
        settings = self.settings(dataset)
        class_names = None
        if settings.get("class_names_file"):
            class_names = [line.strip() for line in Path(settings["class_names_file"]).read_text().splitlines()
                           if line.strip()]
        return {name: self._with_class_count(name, settings["num_classes"],
                                             iter_imagefolder(folder["images"], folder.get("annotations"),
                                                              dataset.get("image_size", 224), class_names))
                for name, folder in settings["splits"].items()}

    @staticmethod
    def _with_class_count(name: str, num_classes: int, parts: Iterator[ImageSplit]) -> Iterator[ImageSplit]:
        for part in parts:
            if len(part.class_names) != num_classes:
                raise ConfigError(f"imagefolder split '{name}' has {len(part.class_names)} classes, "
                                  f"config says num_classes={num_classes}")
            yield part

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        return {name: concatenate(list(parts)) for name, parts in self.split_parts(dataset, archive_path).items()}
