"""ImageFolder trees with Pascal-VOC boxes (reader in ``robustxai.data.imagefolder``), e.g. ImageNet val."""
from __future__ import annotations

from collections.abc import Iterator

from pathlib import Path

from robustxai.config import ConfigError
from robustxai.data.imagefolder import iter_imagefolder
from robustxai.data.imagenet_ood import ood_format
from robustxai.data.imagenet_ood.lists import imagenet_wnids
from robustxai.data.kinds.base import DatasetKind
from robustxai.data.splits import ImageSplit, concatenate


class ImageFolder(DatasetKind):
    """Local folders, one per configured split, no download.

    Settings block ``imagefolder: {num_classes, class_names_file, splits: {train, val, test: {images,
    annotations}}, ood: {<split>: {format, images, ...}}}``; ``test`` is required, ``train`` and ``val``
    are optional. ``ood`` adds ImageNet OOD sets as boxless splits (readers in
    ``robustxai.data.imagenet_ood``), labelled in the 1000-class ImageNet order, which the test split's
    classes must then follow. Split sizes are known only once the folders are read.
    """

    name = "imagefolder"

    def split_names(self, dataset: dict) -> dict[str, list[str]]:
        settings = self.settings(dataset)
        folders = settings["splits"]
        return {"fit": [s for s in ("train", "val") if s in folders], "test": ["test"],
                "ood": [*settings.get("ood", {}), "ood_corruption"]}

    def num_classes(self, dataset: dict) -> int:
        return int(self.settings(dataset)["num_classes"])

    def has_boxes(self, dataset: dict, split: str) -> bool:
        """Splits with an ``annotations`` folder; ``ood_corruption`` is built from ``test``; OOD sets have none."""
        folder = self.settings(dataset)["splits"].get("test" if split == "ood_corruption" else split) or {}
        return bool(folder.get("annotations"))

    def folder_downloads(self, dataset: dict) -> dict[str, dict]:
        """The OOD sets with ``archives``: unpacked into their ``images`` folder, dropping
        ``strip_components`` leading path parts (default the format's, e.g. 1 for ``imagenet-a/<wnid>/``)."""
        return {name: {"folder": ood["images"],
                       "archives": [{"url": a["url"], "md5": a.get("md5"), "sha256": a.get("sha256")}
                                    for a in ood["archives"]],
                       "strip_components": ood.get("strip_components", ood_format(ood["format"]).strip_components)}
                for name, ood in self.settings(dataset).get("ood", {}).items() if ood.get("archives")}

    def split_parts(self, dataset: dict, archive_path: str | None) -> dict[str, Iterator[ImageSplit]]:
        """Each configured folder read lazily in parts (``iter_imagefolder``), so preparing ImageNet val
        holds one part in memory; the class count is checked on the first part. OOD sets are read by
        their format's reader (``robustxai.data.imagenet_ood``)."""
        settings = self.settings(dataset)
        class_names = None
        if settings.get("class_names_file"):
            class_names = [line.strip() for line in Path(settings["class_names_file"]).read_text().splitlines()
                           if line.strip()]
        size = dataset.get("image_size", 224)
        parts = {name: self._with_class_count(name, settings["num_classes"],
                                              iter_imagefolder(folder["images"], folder.get("annotations"), size,
                                                               class_names))
                 for name, folder in settings["splits"].items()}
        if settings.get("ood"):
            self._check_imagenet_order(settings, class_names)
            parts.update({name: ood_format(ood["format"]).parts(ood, size) for name, ood in settings["ood"].items()})
        return parts

    @staticmethod
    def _check_imagenet_order(settings: dict, class_names: list[str] | None) -> None:
        """ConfigError unless the configured splits' classes are the 1000 ImageNet wnids in sorted order,
        the label space of the OOD sets (checked on the folder names, before any image is read)."""
        test = Path(settings["splits"]["test"]["images"])
        names = class_names or sorted(p.name for p in test.iterdir() if p.is_dir())
        if tuple(names) != imagenet_wnids():
            raise ConfigError(f"dataset.imagefolder.ood labels images by the 1000 ImageNet wnids in sorted order, but "
                              f"the classes of {settings.get('class_names_file') or test} are {len(names)} others "
                              f"(first {names[:3]}); use the ImageNet val folders (all 1000 wnids)")

    @staticmethod
    def _with_class_count(name: str, num_classes: int, parts: Iterator[ImageSplit]) -> Iterator[ImageSplit]:
        for part in parts:
            if len(part.class_names) != num_classes:
                raise ConfigError(f"imagefolder split '{name}' has {len(part.class_names)} classes, "
                                  f"config says num_classes={num_classes}")
            yield part

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        return {name: concatenate(list(parts)) for name, parts in self.split_parts(dataset, archive_path).items()}
