"""Prepare a configured dataset: write every split as an HDF5 file (format in robustxai.data.splits),
streaming each one part by part so a split larger than memory can be prepared."""
from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from robustxai.config import all_split_names
from robustxai.data.corruptions import corrupt_images
from robustxai.data.kinds import dataset_kind
from robustxai.data.splits import ImageSplit, SplitWriter, iter_split

log = logging.getLogger(__name__)
#: images per part when the corruption split is streamed from the written test split
CORRUPTION_PART_IMAGES = 1024


def corruption_parts(test_path: str, seed: int):
    """The test split at ``test_path`` with one (corruption, severity) per image, as consecutive
    ImageSplit parts; boxes and masks unchanged. Image i gets pair i mod (number of pairs), and part
    k's noise is seeded by (seed, k), so the split does not depend on the memory available."""
    for k, (positions, test) in enumerate(iter_split(test_path, CORRUPTION_PART_IMAGES)):
        images, names, severities = corrupt_images(test.images, np.random.default_rng((seed, k)),
                                                   first_index=int(positions[0]))
        yield ImageSplit(images=images, labels=test.labels, boxes=test.boxes, class_names=test.class_names,
                         masks=test.masks, extras={"corruption": names, "severity": severities},
                         label_subset=test.label_subset)


def write_parts(parts, path: str, name: str) -> tuple[int, int]:
    """Stream the ImageSplit ``parts`` of split ``name`` into ``path``; returns (images, classes)."""
    with SplitWriter(path) as out, tqdm(desc=f"writing {name}", unit="img", mininterval=5.0) as bar:
        for part in parts:
            out.append(part)
            bar.update(len(part))
            classes = len(part.class_names)
    log.info("%s: %d images, %d classes -> %s", name, out.count, classes, path)
    return out.count, classes


def prepare_dataset(dataset: dict, outputs: dict[str, str], archive: str | None = None) -> dict[str, int]:
    """Build every split of ``dataset`` (the config's dataset section) and write split -> path.

    ``archive`` is the kind's downloaded archive (``DatasetKind.archive``), None for kinds without one.
    Kinds without their own ``ood_corruption`` get one built from ``test``, read back part by part.
    Returns the number of images per split.
    """
    parts = dataset_kind(dataset["kind"]).split_parts(dataset, archive)
    expected = set(all_split_names(dataset))
    built = set(parts) | {"ood_corruption"}
    if set(outputs) != expected or built != expected:
        raise ValueError(f"split mismatch: outputs {sorted(outputs)}, built {sorted(built)}, expected {sorted(expected)}")
    sizes = {name: write_parts(split_parts, outputs[name], name)[0] for name, split_parts in parts.items()}
    if "ood_corruption" not in parts:
        sizes["ood_corruption"] = write_parts(corruption_parts(outputs["test"], dataset.get("seed", 0)),
                                              outputs["ood_corruption"], "ood_corruption")[0]
    return sizes
