"""The interface every dataset kind shares, and the base of fixed benchmarks with an official train/test set.

A kind answers, from the config's ``dataset`` section alone (``{"name", "kind", "image_size", "seed",
"<kind>": {...}}``), which splits it writes, how many classes and images they have, which archive it
downloads, and builds the splits. The pipeline adds an ``ood_corruption`` split (built from ``test``) to
every kind that does not build its own OOD splits.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from robustxai.config import ConfigError
from robustxai.data.splits import ImageSplit


class DatasetKind:
    """Base class: one dataset kind, named ``name`` in ``DATASET_KINDS`` and in ``dataset.kind``.

    The kind's own settings are the config block ``dataset[name]`` (see :meth:`settings`).
    """

    #: the config name of the kind (``dataset.kind``) and of its settings block
    name = ""

    def settings(self, dataset: dict) -> dict:
        """The kind's config block ``dataset[name]`` ({} when absent)."""
        return dataset.get(self.name) or {}

    def split_names(self, dataset: dict) -> dict[str, list[str]]:
        """Split names by role: {"fit": [...], "test": ["test"], "ood": [...]}."""
        return {"fit": ["train", "val"], "test": ["test"], "ood": ["ood_corruption"]}

    def num_classes(self, dataset: dict) -> int:
        """Number of classes (labels are 0 .. num_classes - 1)."""
        raise NotImplementedError

    def split_sizes(self, dataset: dict) -> dict[str, int]:
        """Images per split name, for the splits whose size is known before the data exist ({} if none)."""
        return {}

    def has_boxes(self, dataset: dict, split: str) -> bool:
        """Whether split ``split`` comes with ground-truth boxes (localisation metrics need them); a
        split with boxes may still lack one for some images (stored as missing)."""
        return True

    def archive(self, dataset: dict) -> dict | None:
        """The archive to download as {"url", "md5", "sha256"} (checksums may be None), or None."""
        return None

    def input_files(self, dataset: dict) -> list[str]:
        """Local files besides archives and image folders that building the splits reads (e.g. a class
        list): inputs of the data rule, so editing one rebuilds the splits; [] by default."""
        return []

    def local_inputs(self, dataset: dict) -> dict[str, str]:
        """Files and folders the splits are built from that must be on disk before a run (nothing downloads
        them): config key (``dataset.<kind>....``) -> path; {} by default (built-in data, downloaded archives)."""
        return {}

    def folder_downloads(self, dataset: dict) -> dict[str, dict]:
        """Splits read from folders the workflow downloads and unpacks first: split name -> {"folder" (the
        split's configured root, where they are unpacked), "archives" ([{"url", "md5", "sha256"}]),
        "strip_components" (leading path parts dropped from each member)}; {} by default."""
        return {}

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        """Every split of :meth:`split_names` except an ``ood_corruption`` the pipeline adds.

        ``archive_path`` is the downloaded :meth:`archive` (None for kinds without one).
        """
        raise NotImplementedError

    def split_parts(self, dataset: dict, archive_path: str | None) -> dict[str, Iterable[ImageSplit]]:
        """The splits of :meth:`build_splits` as split name -> consecutive parts of it, so a kind whose
        splits do not fit in memory can stream them (read lazily, part by part); by default each split
        is one part."""
        return {name: [split] for name, split in self.build_splits(dataset, archive_path).items()}


class BenchmarkKind(DatasetKind):
    """A fixed benchmark: an official train and test set of ``image_size`` px images in ``classes``
    classes, read from a downloaded archive; ``val`` is carved out of the official train set.

    Settings block: ``url``, ``md5``, ``sha256`` (the official archive and its md5 by default) and
    ``val_size`` (``DEFAULT_VAL_SIZE``). ``train`` = the official train set minus ``val_size`` images
    picked by a permutation seeded by ``dataset.seed``, ``val`` = those images, ``test`` = the official
    test set. Subclasses set the class attributes and implement :meth:`read`.
    """

    DEFAULT_VAL_SIZE = 5000
    #: side of the square images in pixels; dataset.image_size must equal it
    image_size = 0
    #: number of classes and of images in the official train and test sets
    classes = train_size = test_size = 0
    #: the official archive and its md5
    url = md5 = ""

    def num_classes(self, dataset: dict) -> int:
        return self.classes

    def split_sizes(self, dataset: dict) -> dict[str, int]:
        val_size = self.val_size(dataset, self.train_size)
        return {"train": self.train_size - val_size, "val": val_size, "test": self.test_size,
                "ood_corruption": self.test_size}

    def archive(self, dataset: dict) -> dict | None:
        settings = self.settings(dataset)
        url = settings.get("url") or self.url
        return {"url": url, "md5": settings.get("md5") or (self.md5 if url == self.url else None),
                "sha256": settings.get("sha256")}

    def val_size(self, dataset: dict, available: int) -> int:
        """The configured ``val_size``; ConfigError unless it leaves some of ``available`` images to train."""
        val_size = self.settings(dataset).get("val_size", self.DEFAULT_VAL_SIZE)
        if val_size >= available:
            raise ConfigError(f"{self.name}.val_size={val_size} leaves none of the {available} training images")
        return val_size

    def source(self, dataset: dict, archive_path: str | None) -> str:
        """What :meth:`read` reads: the downloaded archive."""
        if archive_path is None:
            raise ConfigError(f"dataset kind '{self.name}' needs the downloaded archive as input")
        return archive_path

    def read(self, source: str) -> dict[str, ImageSplit]:
        """The official sets {"train", "test"} -> ImageSplit of uint8 (N, image_size, image_size, 3)."""
        raise NotImplementedError

    def build_splits(self, dataset: dict, archive_path: str | None) -> dict[str, ImageSplit]:
        if dataset.get("image_size", self.image_size) != self.image_size:
            raise ConfigError(f"dataset kind '{self.name}' has {self.image_size}x{self.image_size} images: "
                              f"set dataset.image_size to {self.image_size}, got {dataset['image_size']}")
        splits = self.read(self.source(dataset, archive_path))
        train = splits.pop("train")
        val_size = self.val_size(dataset, len(train))
        order = np.random.default_rng(dataset.get("seed", 0)).permutation(len(train))
        splits["val"], splits["train"] = train.subset(order[:val_size]), train.subset(order[val_size:])
        return splits


def missing_local_inputs(kind: DatasetKind, dataset: dict, prepared_splits: list[str]) -> list[tuple[str, str]]:
    """(config key, path) of every ``kind.local_inputs`` path that does not exist, unless every file of
    ``prepared_splits`` (the split files data preparation writes) exists already: then nothing is read
    from the sources and they may be gone. Checked when a run is planned, so a study with no data
    stops before any job, naming what to set, instead of when its data are prepared."""
    from pathlib import Path

    if prepared_splits and all(Path(path).exists() for path in prepared_splits):
        return []
    return [(key, path) for key, path in kind.local_inputs(dataset).items() if not Path(path).exists()]


def missing_inputs_message(missing: list[tuple[str, str]]) -> str:
    """The error for ``missing_local_inputs``' findings: each config key with the path it names."""
    return ("the dataset's local files are not there: " + "; ".join(f"{key}: no {path}" for key, path in missing)
            + " (paths are relative to the working directory; put the data there or point these keys at them)")
