"""Readers of the ImageNet OOD sets' folder layouts (layouts: docs/dataset.md).

A reader lists a set's images with their labels in the 1000-class ImageNet index space and any
per-image extras; ``OODFormat.parts`` reads them (resize the short side, centre-crop) as ImageSplit
parts. Settings (one entry of ``dataset.imagefolder.ood``): ``images`` (the set's root folder),
``images_per_class`` (keep the first N files, sorted by name, of each class folder; default all) and,
for ImageNet-C, ``corruptions`` and ``severities``.
"""
from __future__ import annotations

import re

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from robustxai.data.imagefolder import IMAGE_SUFFIXES, iter_image_parts
from robustxai.data.imagenet_ood.lists import alexnet_corruption_errors, imagenet_wnids, subset_indices
from robustxai.data.splits import ImageSplit

#: images per part when a set is read
PART_IMAGES = 512


class OODFormat:
    """One set's layout; subclasses implement :meth:`files` and may set a package-data ``subset_file``."""

    #: the config ``format`` name
    name = ""
    #: package-data list of the wnids the set's labels can take ("" = all 1000 classes)
    subset_file = ""
    #: leading path parts of the official archives' members above the layout (``imagenet-a/``)
    strip_components = 1

    def label_subset(self) -> np.ndarray | None:
        """Sorted label indices int64 (K,) the set's labels can take, or None for all 1000."""
        return subset_indices(self.subset_file) if self.subset_file else None

    def files(self, root: Path, settings: dict) -> tuple[list[tuple[Path, int]], dict[str, np.ndarray]]:
        """(path, label) per image under ``root`` in split order, and per-image extras (name -> (N,))."""
        raise NotImplementedError

    def parts(self, settings: dict, image_size: int) -> Iterator[ImageSplit]:
        """The set at ``settings["images"]`` as ImageSplit parts of uint8 (K, S, S, 3) images, S =
        ``image_size`` px, labels in the ImageNet index space, no boxes. The file list is made and
        checked before the first image is read."""
        root = Path(settings["images"])
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name} set: no folder {root}; download it (docs/dataset.md) "
                                    "or fix dataset.imagefolder.ood.<split>.images")
        files, extras = self.files(root, settings)
        if not files:
            raise FileNotFoundError(f"{root}: no images found in the {self.name} layout")
        return iter_image_parts(files, image_size, list(imagenet_wnids()), str(root), PART_IMAGES,
                                extras=extras, label_subset=self.label_subset())

    @staticmethod
    def class_files(folder: Path, settings: dict) -> list[Path]:
        """The image files of one class folder, sorted by name, the first ``images_per_class`` of them."""
        found = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        return found[:settings.get("images_per_class")]


class WnidFolders(OODFormat):
    """``root/<wnid>/<image>``: one folder per ImageNet class, named by its wnid (ImageNet-A, -R, Sketch)."""

    def files(self, root: Path, settings: dict) -> tuple[list[tuple[Path, int]], dict[str, np.ndarray]]:
        return self.wnid_files(root, settings), {}

    def wnid_files(self, root: Path, settings: dict) -> list[tuple[Path, int]]:
        """(path, label) of the images in ``root``'s wnid folders; folders outside the set's classes are an error."""
        index = {wnid: k for k, wnid in enumerate(imagenet_wnids())}
        allowed = set(self.label_subset().tolist()) if self.subset_file else set(index.values())
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        wrong = [p.name for p in folders if index.get(p.name) not in allowed]
        if wrong:
            raise ValueError(f"{root}: folders {wrong[:5]} are not {self.name} classes (ImageNet wnids"
                             f"{' of ' + self.subset_file if self.subset_file else ''}); is 'format' right?")
        return [(f, index[p.name]) for p in folders for f in self.class_files(p, settings)]


class ImageNetA(WnidFolders):
    """ImageNet-A (Hendrycks et al. 2021): 7,500 natural adversarial images of 200 classes."""

    name, subset_file = "imagenet_a", "imagenet_a_wnids.txt"


class ImageNetR(WnidFolders):
    """ImageNet-R (Hendrycks et al. 2021): 30,000 renditions of 200 classes (not A's 200)."""

    name, subset_file = "imagenet_r", "imagenet_r_wnids.txt"


class ImageNetSketch(WnidFolders):
    """ImageNet-Sketch (Wang et al. 2019): about 50 sketches for each of the 1000 classes."""

    name = "imagenet_sketch"


class ImageNetV2(OODFormat):
    """ImageNetV2 (Recht et al. 2019): ``root/<class index>/<image>``, folders ``0`` .. ``999`` named by
    the class index, mapped by integer (a sorted-name order would put ``10`` second)."""

    name = "imagenet_v2"

    def files(self, root: Path, settings: dict) -> tuple[list[tuple[Path, int]], dict[str, np.ndarray]]:
        folders = [p for p in root.iterdir() if p.is_dir()]
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses
        wrong = [p.name for p in folders if not (re.fullmatch("[0-9]+", p.name) and int(p.name) < len(imagenet_wnids()))]
        if wrong:
            raise ValueError(f"{root}: folders {sorted(wrong)[:5]} are not class indices 0..999 (ImageNetV2 "
                             "layout; the old wnid-named 'format-val' tarball is read with format imagenet_sketch)")
        folders.sort(key=lambda p: int(p.name))
        return [(f, int(p.name)) for p in folders for f in self.class_files(p, settings)], {}


class ImageNetC(WnidFolders):
    """ImageNet-C (Hendrycks & Dietterich 2019): ``root/<corruption>/<severity>/<wnid>/<image>``, 224 px.

    Settings ``corruptions`` (default the 15 benchmark ones) and ``severities`` (default 1..5). Extras
    per image: ``corruption`` (str), ``severity`` (int) and ``alexnet_error``, AlexNet's error at that
    corruption and severity (the mCE's reference; NaN for the extra corruptions, which have none).
    """

    name = "imagenet_c"
    strip_components = 0  # the archives (noise.tar, blur.tar, ...) hold <corruption>/ folders

    def files(self, root: Path, settings: dict) -> tuple[list[tuple[Path, int]], dict[str, np.ndarray]]:
        reference = alexnet_corruption_errors()
        files, corruption, severity, error = [], [], [], []
        for name in settings.get("corruptions") or list(reference):
            for level in settings.get("severities") or range(1, 6):
                folder = root / name / str(level)
                if not folder.is_dir():
                    raise FileNotFoundError(f"{folder}: no ImageNet-C folder for corruption '{name}' at severity "
                                            f"{level}; download it or drop it from the split's corruptions/severities")
                found = self.wnid_files(folder, settings)
                files += found
                corruption += [name] * len(found)
                severity += [level] * len(found)
                error += [reference[name][level - 1] if name in reference else np.nan] * len(found)
        return files, {"corruption": np.array(corruption, dtype=str), "severity": np.array(severity, dtype=np.int64),
                       "alexnet_error": np.array(error, dtype=np.float64)}
