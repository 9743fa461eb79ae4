"""The package data of the ImageNet OOD sets: class lists and AlexNet's ImageNet-C errors.

* ``imagenet_wnids.txt``: the 1000 ImageNet-1k wnids, sorted (label k = k-th line), as the ``all_wnids``
  list of hendrycks/imagenet-r ``eval.py`` and timm's ``imagenet_synsets.txt``.
* ``imagenet_a_wnids.txt``: the 200 classes of ImageNet-A, the wnids of the keys ``k`` with
  ``thousand_k_to_200[k] != -1`` in hendrycks/natural-adv-examples ``eval.py`` (= timm's imagenet_a_synsets).
* ``imagenet_r_wnids.txt``: the 200 classes of ImageNet-R, ``imagenet_r_wnids`` of hendrycks/imagenet-r
  ``eval.py``, sorted (= timm's imagenet_r_synsets). A and R share 86 classes only.
* ``imagenet_c_alexnet_errors.csv``: AlexNet's top-1 error (fraction) per corruption and severity on
  ImageNet-C (Hendrycks & Dietterich 2019), the reference of the mCE; as timm's bits branch lists them
  (``imagenetc_alexnet_error_rates_list``). Their means over severities are the ``ALEXNET_ERR`` of
  google-research/augmix ``imagenet.py`` (e.g. gaussian_noise 0.886428).
"""
from __future__ import annotations

import csv
from functools import cache
from importlib.resources import files

import numpy as np


def _lines(name: str) -> list[str]:
    return [line.strip() for line in files(__package__).joinpath(name).read_text().splitlines() if line.strip()]


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in label order (sorted), e.g. ``imagenet_wnids()[10] == "n01530575"``."""
    return tuple(_lines("imagenet_wnids.txt"))


def wnid_subset(name: str) -> list[str]:
    """The wnids of package-data list ``name`` (e.g. "imagenet_a_wnids.txt"), in file order."""
    return _lines(name)


def subset_indices(name: str) -> np.ndarray:
    """Label indices int64 (K,) of the wnids in package-data list ``name``, sorted; ValueError naming
    any wnid that is not an ImageNet-1k class."""
    index = {wnid: k for k, wnid in enumerate(imagenet_wnids())}
    unknown = [w for w in wnid_subset(name) if w not in index]
    if unknown:
        raise ValueError(f"{name}: {unknown[:5]} are not ImageNet-1k wnids")
    return np.array(sorted(index[w] for w in wnid_subset(name)), dtype=np.int64)


@cache
def alexnet_corruption_errors() -> dict[str, tuple[float, ...]]:
    """AlexNet's ImageNet-C top-1 error (fraction) by corruption: (severity 1, ..., severity 5), for the
    15 benchmark corruptions in the paper's order."""
    rows = csv.DictReader(files(__package__).joinpath("imagenet_c_alexnet_errors.csv").read_text().splitlines())
    return {row["corruption"]: tuple(float(row[f"severity_{s}"]) for s in range(1, 6)) for row in rows}
