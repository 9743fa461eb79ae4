"""Prepare a configured dataset: write every split as an .npz file (format in robustxai.data.splits)."""
from __future__ import annotations

import logging

from robustxai.config import all_split_names
from robustxai.data.corruptions import corrupt_images
from robustxai.data.kinds import dataset_kind
from robustxai.data.splits import ImageSplit, save_split

log = logging.getLogger(__name__)


def corruption_split(test: ImageSplit, seed: int) -> ImageSplit:
    """The test split with one (corruption, severity) per image; boxes and masks unchanged."""
    images, names, severities = corrupt_images(test.images, seed)
    return ImageSplit(images=images, labels=test.labels, boxes=test.boxes, class_names=test.class_names,
                      masks=test.masks, extras={"corruption": names, "severity": severities})


def prepare_dataset(dataset: dict, outputs: dict[str, str], archive: str | None = None) -> dict[str, int]:
    """Build every split of ``dataset`` (the config's dataset section) and write split -> path.

    ``archive`` is the kind's downloaded archive (``DatasetKind.archive``), None for kinds without one.
    Kinds without their own ``ood_corruption`` get one built from ``test``. Returns the number of
    images per split.
    """
    splits = dataset_kind(dataset["kind"]).build_splits(dataset, archive)
    if "ood_corruption" not in splits:
        splits["ood_corruption"] = corruption_split(splits["test"], dataset.get("seed", 0))
    expected = set(all_split_names(dataset))
    if set(outputs) != expected or set(splits) != expected:
        raise ValueError(f"split mismatch: outputs {sorted(outputs)}, built {sorted(splits)}, expected {sorted(expected)}")
    for name, split in splits.items():
        save_split(split, outputs[name])
        log.info("%s: %d images, %d classes -> %s", name, len(split), len(split.class_names), outputs[name])
    return {name: len(split) for name, split in splits.items()}
