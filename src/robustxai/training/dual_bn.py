"""Dual batch norm for AdvProp (Xie et al. 2020): clean inputs use the main BNs, adversarial ones the
auxiliary BNs. Converting copies each BN; stripping keeps the main ones, so the trained model loads
into the plain architecture with ``strict=True``.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class DualBatchNorm(nn.Module):
    """Holds a ``main`` and an ``aux`` copy of one batch-norm layer and routes through one of them."""

    def __init__(self, bn: nn.Module) -> None:
        super().__init__()
        self.main = bn
        self.aux = copy.deepcopy(bn)
        self.use_aux = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aux(x) if self.use_aux else self.main(x)


def _replace(module: nn.Module, match: type, make) -> int:
    """Replace, recursively and in place, every child that is a ``match`` by ``make(child)``."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, match):
            setattr(module, name, make(child))
            count += 1
        else:
            count += _replace(child, match, make)
    return count


def convert_to_dual_bn(model: nn.Module) -> nn.Module:
    """Wrap every batch-norm layer (any ``_BatchNorm`` subclass, e.g. timm's BatchNormAct2d) in a
    :class:`DualBatchNorm`, in place. Raises if the model has none (AdvProp would be plain training)."""
    if _replace(model, _BatchNorm, DualBatchNorm) == 0:
        raise ValueError("AdvProp needs batch norm layers, and this model has none")
    return model


def strip_aux_bn(model: nn.Module) -> nn.Module:
    """Replace every :class:`DualBatchNorm` by its main batch norm, in place."""
    _replace(model, DualBatchNorm, lambda dual: dual.main)
    return model


@contextmanager
def auxiliary_bn(model: nn.Module):
    """Route every :class:`DualBatchNorm` of ``model`` through its auxiliary BN inside the block."""
    duals = [m for m in model.modules() if isinstance(m, DualBatchNorm)]
    for dual in duals:
        dual.use_aux = True
    try:
        yield model
    finally:
        for dual in duals:
            dual.use_aux = False
