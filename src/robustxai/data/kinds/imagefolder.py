"""ImageFolder trees with Pascal-VOC boxes (reader in ``robustxai.data.imagefolder``), e.g. ImageNet val."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from robustxai.config import ConfigError
from robustxai.data.imagefolder import class_folders, iter_imagefolder
from robustxai.data.imagenet_ood import ood_format
from robustxai.data.imagenet_ood.lists import imagenet_wnids
from robustxai.data.kinds.base import DatasetKind
from robustxai.data.splits import ImageSplit, concatenate

#: an ImageNet (WordNet) class id, e.g. n01440764
WNID = re.compile(r"n\d{8}")


class ClassOrder(NamedTuple):
    """The label order of an ImageFolder dataset (:meth:`ImageFolder.class_order`)."""

    #: class names in label order, or None for each split's sorted folder names
    names: list[str] | None
    #: which rule gave it: "file" (class_names_file), "imagenet" or "folders"
    rule: str
    #: where it comes from, as the config would say it (for messages)
    said: str


class ImageFolder(DatasetKind):
    """Local folders, one per configured split, no download.

    Settings block ``imagefolder: {num_classes, class_names, class_names_file, splits: {train, val, test:
    {images, annotations, boxes}}, ood: {<split>: {format, images, ...}}}``; ``test`` is required,
    ``train`` and ``val`` are optional. ``ood`` adds ImageNet OOD sets as boxless splits (readers in
    ``robustxai.data.imagenet_ood``), labelled in the 1000-class ImageNet order, which the test split's
    classes must then follow. Split sizes are known only once the folders are read.

    Label order (:meth:`class_order`): ``class_names_file`` (one folder name per line), else
    ``class_names: imagenet`` (the 1000 ImageNet-1k wnids, shipped as package data, = timm's
    ``imagenet_synsets.txt``) or ``folders`` (each split's sorted folder names, labels 0..K-1); without
    either, ``imagenet`` when every folder name of every split is a wnid, so a subset of ImageNet classes
    keeps its true indices, else ``folders``.
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

    def local_inputs(self, dataset: dict) -> dict[str, str]:
        """Each split's ``images`` (and ``annotations``) folder, each OOD set's ``images`` folder unless the
        workflow downloads it (``archives``), and the ``class_names_file``."""
        settings = self.settings(dataset)
        found = {f"dataset.imagefolder.splits.{split}.{key}": folder[key]
                 for split, folder in settings["splits"].items() for key in ("images", "annotations") if folder.get(key)}
        found.update({f"dataset.imagefolder.ood.{name}.images": ood["images"]
                      for name, ood in settings.get("ood", {}).items() if not ood.get("archives")})
        if file := self._class_names_file(settings):
            found["dataset.imagefolder.class_names_file"] = file
        return found

    def input_files(self, dataset: dict) -> list[str]:
        """The ``class_names_file``, if configured (ConfigError when ``class_names`` is set too)."""
        return [file] if (file := self._class_names_file(self.settings(dataset))) else []

    @staticmethod
    def _class_names_file(settings: dict) -> str | None:
        if settings.get("class_names_file") and settings.get("class_names"):
            raise ConfigError(f"dataset.imagefolder sets both class_names ({settings['class_names']}) and "
                              f"class_names_file ({settings['class_names_file']}); keep one")
        return settings.get("class_names_file")

    def class_order(self, settings: dict) -> ClassOrder:
        """The label order of the kind's settings block (rules in the class docstring)."""
        if file := self._class_names_file(settings):
            names = [line.strip() for line in Path(file).read_text().splitlines() if line.strip()]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ConfigError(f"dataset.imagefolder.class_names_file: {file} lists {repeated} more than once; "
                                  "each class must appear once, on the line of its label")
            return ClassOrder(names, "file", f"class_names_file: {file}")
        if (choice := settings.get("class_names")) in ("imagenet", "folders"):
            return ClassOrder(list(imagenet_wnids()) if choice == "imagenet" else None, choice, f"class_names: {choice}")
        folders = {name for folder in settings["splits"].values() for name in class_folders(folder["images"])}
        if folders and all(WNID.fullmatch(name) for name in folders):
            return ClassOrder(list(imagenet_wnids()), "imagenet",
                              "class_names: imagenet, the default when every folder is a wnid")
        return ClassOrder(None, "folders", "class_names: folders, the default when not every folder is a wnid")

    def split_parts(self, dataset: dict, archive_path: str | None) -> dict[str, Iterator[ImageSplit]]:
        """Each configured folder read lazily in parts (``iter_imagefolder``), so preparing ImageNet val
        holds one part in memory; the class count is checked on the first part. OOD sets are read by
        their format's reader (``robustxai.data.imagenet_ood``)."""
        settings = self.settings(dataset)
        order = self.class_order(settings)
        if order.rule == "imagenet":
            self._check_imagenet_folders(settings, order)
        class_names, size = order.names, dataset.get("image_size", 224)
        parts = {name: self._with_class_count(name, folder["images"], settings["num_classes"], order,
                                              iter_imagefolder(folder["images"], folder.get("annotations"), size,
                                                               class_names, boxes=folder.get("boxes", "class_object")))
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
        names = class_names or class_folders(test)
        if tuple(names) != imagenet_wnids():
            raise ConfigError(f"dataset.imagefolder.ood labels images by the 1000 ImageNet wnids in sorted order, but "
                              f"the classes of {settings.get('class_names_file') or test} are {len(names)} others "
                              f"(first {names[:3]}); use ImageNet wnid folders with class_names: imagenet "
                              "(the default for wnid folders)")

    @staticmethod
    def _check_imagenet_folders(settings: dict, order: ClassOrder) -> None:
        """ConfigError naming the folders of a split labelled in ImageNet order that are not ImageNet-1k wnids."""
        known = set(imagenet_wnids())
        for name, folder in settings["splits"].items():
            unknown = [f for f in class_folders(folder["images"]) if f not in known]
            if unknown:
                raise ConfigError(f"imagefolder split '{name}' ({folder['images']}) is labelled in the 1000-class "
                                  f"ImageNet order ({order.said}), but its folders {unknown[:5]} are not ImageNet-1k "
                                  "wnids: set dataset.imagefolder.class_names: folders to label the folders 0..K-1 "
                                  "in sorted order, or class_names_file to a file of all class names in label order")

    @staticmethod
    def _with_class_count(name: str, images: str, num_classes: int, order: ClassOrder,
                          parts: Iterator[ImageSplit]) -> Iterator[ImageSplit]:
        """The parts, after a ConfigError saying what to set when the first has not ``num_classes`` classes."""
        for part in parts:
            if (count := len(part.class_names)) != num_classes:
                raise ConfigError(class_count_error(name, images, count, num_classes, order))
            yield part

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        return {name: concatenate(list(parts)) for name, parts in self.split_parts(dataset, archive_path).items()}




def class_count_error(split: str, images: str, count: int, num_classes: int, order: ClassOrder) -> str:
    """What is wrong and exactly what to set, when split ``split`` (folder ``images``) is labelled with
    ``count`` classes in ``order`` but the config says ``num_classes``."""
    where = f"imagefolder split '{split}' ({images})"
    if order.rule == "imagenet":
        folders = len(class_folders(images))
        return (f"{where} is labelled in the 1000-class ImageNet order ({order.said}), but dataset.imagefolder."
                f"num_classes is {num_classes}: set num_classes: 1000 for a model with the ImageNet-1k outputs, or "
                f"class_names: folders to label its {folders} folders 0..{folders - 1} in sorted order (a model "
                f"trained on these classes, num_classes: {folders})")
    if order.rule == "file":
        return (f"{where}: {order.said} lists {count} classes, but dataset.imagefolder.num_classes is "
                f"{num_classes}: set num_classes: {count}, or list all {num_classes} class names in label order "
                "in that file")
    imagenet = " (for ImageNet-1k wnid folders: class_names: imagenet)" if num_classes == 1000 else ""
    return (f"{where} has {count} class folders, labelled 0..{count - 1} in sorted order ({order.said}), but "
            f"dataset.imagefolder.num_classes is {num_classes}: set num_classes: {count} for a model trained on "
            f"these classes, or class_names_file: a file of all {num_classes} class names, one per line in label "
            f"order, so the folders keep their model's indices{imagenet}")
