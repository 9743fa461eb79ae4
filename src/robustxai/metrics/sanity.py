"""Model-randomisation sanity checks: cascading (Adebayo et al. 2018) and last block (Zeng et al. 2021).

``mode: cascading``: the model's top-level parametrised blocks are re-initialised one after another,
last block (the classifier) first, each step keeping the earlier randomisations; after each step the
method's maps are recomputed for the same targets and compared with the original maps. A method that
passes the check produces maps that become dissimilar quickly.

``mode: last_block`` (Zeng et al. Sec. 4.4.5): the weights of every convolution in the last block
that has convolutions (a ResNet's last residual block, a VGG's last conv) are replaced with zero-mean
Gaussian noise of the Kaiming std sqrt(2 / fan_in); biases, batch norms and an explainer branch are
kept. One step. Similarities per image and step:

- ``spearman_abs`` / ``spearman_signed``: Spearman rank correlation of |maps| and of signed maps;
- ``ssim``: SSIM of min-max [0, 1] scaled maps (scikit-image, Gaussian weights);
- ``hog``: Spearman correlation of the HOG features of the min-max scaled maps.

Undefined similarities (a constant map on either side) count as 0 (no similarity left).
Columns are ``<similarity>@<k>_<block>`` for step k (cascading: 1 = the classifier alone randomised;
last block: 1 is the only step).
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
MODES = ("cascading", "last_block")
CONVOLUTIONS = (nn.Conv2d,)


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


def last_conv_block(model: nn.Module) -> str:
    """Dotted name of the block nearest the output (in ``cascade_blocks`` order) that holds a convolution."""
    for name in cascade_blocks(model):
        if any(isinstance(module, CONVOLUTIONS) for module in model.get_submodule(name).modules()):
            return name
    raise ValueError("the model has no convolution to randomise")


def gaussian_conv_weights(block: nn.Module, seed: int) -> None:
    """Replace, in place, the weight of every convolution in ``block`` by N(0, 2 / fan_in) draws
    (fan_in = input channels per group x kernel area; seeded), leaving every other parameter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, CONVOLUTIONS):
                weight = module.weight
                fan_in = weight.shape[1] * weight[0, 0].numel()
                noise = torch.randn(weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                weight.copy_(noise.to(weight.device, weight.dtype))


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
    """Model randomisation (``mode``: cascading or last_block); needs the method that made the maps
    (``batch.method``).

    ``blocks`` limits the cascade to the first k blocks from the output (None: all). ``hog_cell`` is
    HOG's cell size in pixels at 224 (16, as in the authors' notebook), scaled to the image (at least 4).
    """

    needs_model = True
    needs_method = True

    def __init__(self, mode: str = "cascading", blocks: int | None = None, seed: int = 0, hog_cell: int = 16) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
        self.mode, self.blocks, self.seed, self.hog_cell = mode, blocks, seed, hog_cell

    def randomisations(self, model: nn.Module):
        """Randomise ``model`` in place step by step, yielding each step's block name after it."""
        if self.mode == "last_block":
            name = last_conv_block(model)
            gaussian_conv_weights(model.get_submodule(name), self.seed + 1)
            yield name
            return
        for step, name in enumerate(cascade_blocks(model)[:self.blocks], start=1):
            reinitialise(model.get_submodule(name), self.seed + step)
            yield name

    def __call__(self, model, batch: MetricBatch):
        if batch.method is None:
            raise ValueError("sanity_randomisation needs the attribution method that made the maps")
        original = finite_maps(batch.maps).cpu().numpy()
        size = min(original.shape[-2:])
        cell = max(4, round(self.hog_cell * size / 224))
        randomised_model = copy.deepcopy(model).eval()
        columns: dict[str, torch.Tensor] = {}
        for step, name in enumerate(self.randomisations(randomised_model), start=1):
            maps = finite_maps(batch.method.explain(randomised_model, batch.images, batch.targets).detach())
            values = [map_similarities(o, r, cell) for o, r in zip(original, maps.cpu().numpy())]
            for similarity in SIMILARITIES:
                columns[f"{similarity}@{step}_{name}"] = torch.tensor([v[similarity] for v in values])
        return columns
