"""Model-randomisation sanity check (Adebayo et al. 2018), cascading from the logits down.

The model's top-level parametrised blocks are re-initialised one after another, last block (the
classifier) first, each step keeping the earlier randomisations; after each step the method's maps
are recomputed for the same targets and compared with the original maps. A method that passes the
check produces maps that become dissimilar quickly. Similarities per image and step:

- ``spearman_abs`` / ``spearman_signed``: Spearman rank correlation of |maps| and of signed maps;
- ``ssim``: SSIM of min-max [0, 1] scaled maps (scikit-image, Gaussian weights);
- ``hog``: Spearman correlation of the HOG features of the min-max scaled maps.

Undefined similarities (a constant map on either side) count as 0 (no similarity left).
Columns are ``<similarity>@<k>_<block>`` for step k (1 = the classifier alone randomised).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

from robustxai.metrics.base import Metric, MetricBatch, finite_maps

SIMILARITIES = ("spearman_abs", "spearman_signed", "ssim", "hog")


def cascade_blocks(model: nn.Module) -> list[str]:
    """Dotted names of the blocks randomised one after another, from the output back to the input:
    the children of the wrapper's ``net`` that hold parameters, with ``nn.Sequential`` children
    (a VGG's ``features``, a ResNet's ``layer1``) split into their own parametrised children."""
    root_name, root = ("net", model.net) if hasattr(model, "net") else ("", model)
    prefix = f"{root_name}." if root_name else ""
    blocks = []
    for name, child in root.named_children():
        parts = child.named_children() if isinstance(child, nn.Sequential) else [("", child)]
        for part_name, part in parts:
            if any(True for _ in part.parameters()):
                blocks.append(f"{prefix}{name}.{part_name}" if part_name else f"{prefix}{name}")
    return list(reversed(blocks))


def reinitialise(block: nn.Module, seed: int) -> None:
    """Re-draw every parameter of ``block`` with its modules' own initialisers (seeded); normalisation
    layers also forget their running statistics."""
    torch.manual_seed(seed)
    for module in block.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _minmax(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def map_similarities(original: np.ndarray, randomised: np.ndarray, hog_cell: int) -> dict[str, float]:
    """The four similarities of two (H, W) maps."""
    a, b = _minmax(original), _minmax(randomised)
    constant = np.ptp(original) == 0 or np.ptp(randomised) == 0
    cell = (hog_cell, hog_cell)
    return {
        "spearman_abs": _spearman(np.abs(original), np.abs(randomised)),
        "spearman_signed": _spearman(original, randomised),
        "ssim": 0.0 if constant else float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True,
                                                                   sigma=1.5, use_sample_covariance=False)),
        "hog": 0.0 if constant else _spearman(hog(a, pixels_per_cell=cell, cells_per_block=(1, 1)),
                                              hog(b, pixels_per_cell=cell, cells_per_block=(1, 1))),
    }


class ModelRandomisation(Metric):
    """Cascading model randomisation; needs the method that made the maps (``batch.method``).

    ``blocks`` limits the cascade to the first k blocks from the output (None: all). ``hog_cell`` is
    HOG's cell size in pixels at 224 (16, as in the authors' notebook), scaled to the image (at least 4).
    """

    needs_model = True
    needs_method = True

    def __init__(self, blocks: int | None = None, seed: int = 0, hog_cell: int = 16) -> None:
        self.blocks, self.seed, self.hog_cell = blocks, seed, hog_cell

    def __call__(self, model, batch: MetricBatch):
        if batch.method is None:
            raise ValueError("sanity_randomisation needs the attribution method that made the maps")
        original = finite_maps(batch.maps).cpu().numpy()
        size = min(original.shape[-2:])
        cell = max(4, round(self.hog_cell * size / 224))
        randomised_model = copy.deepcopy(model).eval()
        names = cascade_blocks(randomised_model)[:self.blocks]
        columns: dict[str, torch.Tensor] = {}
        for step, name in enumerate(names, start=1):
            reinitialise(randomised_model.get_submodule(name), self.seed + step)
            maps = finite_maps(batch.method.explain(randomised_model, batch.images, batch.targets).detach())
            values = [map_similarities(o, r, cell) for o, r in zip(original, maps.cpu().numpy())]
            for similarity in SIMILARITIES:
                columns[f"{similarity}@{step}_{name}"] = torch.tensor([v[similarity] for v in values])
        return columns
