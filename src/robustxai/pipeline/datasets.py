"""Prepare a configured dataset: write every split as an .npz file (format in robustxai.data.splits)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from robustxai.config import ConfigError, all_split_names
from robustxai.data.builtin import make_builtin_splits
from robustxai.data.cifar import read_cifar10
from robustxai.data.corruptions import corrupt_images
from robustxai.data.imagefolder import load_imagefolder
from robustxai.data.splits import ImageSplit, save_split

log = logging.getLogger(__name__)


def _take(split: ImageSplit, index: np.ndarray) -> ImageSplit:
    return ImageSplit(images=split.images[index], labels=split.labels[index], boxes=split.boxes[index],
                      class_names=split.class_names,
                      masks=None if split.masks is None else split.masks[index],
                      extras={k: v[index] for k, v in split.extras.items()})


def corruption_split(test: ImageSplit, seed: int) -> ImageSplit:
    """The test split with one (corruption, severity) per image; boxes and masks unchanged."""
    images, names, severities = corrupt_images(test.images, seed)
    return ImageSplit(images=images, labels=test.labels, boxes=test.boxes, class_names=test.class_names,
                      masks=test.masks, extras={"corruption": names, "severity": severities})


def _cifar10_splits(dataset: dict, archive: str | None) -> dict[str, ImageSplit]:
    if archive is None:
        raise ConfigError("dataset kind 'cifar10' needs the downloaded archive as input")
    if dataset.get("image_size", 32) != 32:
        raise ConfigError("dataset kind 'cifar10' has 32x32 images: set dataset.image_size to 32")
    splits = read_cifar10(archive)
    val_size = dataset.get("cifar10", {}).get("val_size", 5000)
    if val_size >= len(splits["train"]):
        raise ConfigError(f"cifar10.val_size={val_size} leaves no training images")
    order = np.random.default_rng(dataset.get("seed", 0)).permutation(len(splits["train"]))
    train = splits.pop("train")
    splits["val"], splits["train"] = _take(train, order[:val_size]), _take(train, order[val_size:])
    return splits


def _imagefolder_splits(dataset: dict) -> dict[str, ImageSplit]:
    settings = dataset["imagefolder"]
    class_names = None
    if settings.get("class_names_file"):
        class_names = [line.strip() for line in Path(settings["class_names_file"]).read_text().splitlines()
                       if line.strip()]
    splits = {name: load_imagefolder(folder["images"], folder.get("annotations"), dataset.get("image_size", 224),
                                     class_names)
              for name, folder in settings["splits"].items()}
    for name, split in splits.items():
        if len(split.class_names) != settings["num_classes"]:
            raise ConfigError(f"imagefolder split '{name}' has {len(split.class_names)} classes, "
                              f"config says num_classes={settings['num_classes']}")
    return splits


def prepare_dataset(dataset: dict, outputs: dict[str, str], archive: str | None = None) -> dict[str, int]:
    """Build every split of ``dataset`` (the config's dataset section) and write split -> path.

    Returns the number of images per split.
    """
    kind, seed = dataset["kind"], dataset.get("seed", 0)
    if kind == "builtin":
        splits = make_builtin_splits(dataset["builtin"]["sizes"], dataset.get("image_size", 32), seed)
    elif kind == "cifar10":
        splits = _cifar10_splits(dataset, archive)
    elif kind == "imagefolder":
        splits = _imagefolder_splits(dataset)
    else:
        raise ConfigError(f"unknown dataset kind '{kind}'")
    if "ood_corruption" not in splits:
        splits["ood_corruption"] = corruption_split(splits["test"], seed)
    expected = set(all_split_names(dataset))
    if set(outputs) != expected or set(splits) != expected:
        raise ValueError(f"split mismatch: outputs {sorted(outputs)}, built {sorted(splits)}, expected {sorted(expected)}")
    for name, split in splits.items():
        save_split(split, outputs[name])
        log.info("%s: %d images, %d classes -> %s", name, len(split), len(split.class_names), outputs[name])
    return {name: len(split) for name, split in splits.items()}
