"""The model every part of the workflow sees: [0, 1] images in, logits out.

Normalisation is a layer inside the model, so attacks, baselines (black = 0) and perturbations mean
the same thing for every model, whatever preprocessing its weights expect.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustxai.models.explainer import build_branch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, with mean and std stored as buffers (saved in checkpoints)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> normalised (N, C, H, W)."""
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """``net(normalize(x))``: takes (N, 3, H, W) images in [0, 1], returns (N, K) logits.

    An explainer model (Zeng et al. 2021) also has an ``explainer`` branch that maps the net's last
    feature map to an attribution map; it takes no part in ``forward``, so the model is a classifier
    like any other to evaluation, attacks and attribution methods.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 explainer: nn.Module | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.explainer = explainer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The net's last feature map (N, C, h, w) for images (N, 3, H, W) in [0, 1]."""
        return self.net.forward_features(self.normalize(x))

    def explain(self, x: torch.Tensor) -> torch.Tensor:
        """The explainer branch's maps (N, out_channels, H, W) for images (N, 3, H, W) in [0, 1]."""
        if self.explainer is None:
            raise ValueError("this model has no explainer branch (train it with algorithm: explainer)")
        return self.explainer(self.features(x))

    def classify_and_explain(self, x: torch.Tensor, pre_activation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, K) and branch maps (N, out_channels, H, W) from one pass through the backbone;
        ``pre_activation``: the maps before the branch's final ReLU (what explainer training fits)."""
        features = self.features(x)
        maps = self.explainer.pre_activation(features) if pre_activation else self.explainer(features)
        return self.net.forward_head(features), maps


def is_timm_name(name: str) -> bool:
    """Whether ``name`` is a timm model name, with or without a pretrained tag (``resnet18.tv_in1k``)."""
    import timm

    return timm.models.split_model_name_tag(name)[0] in timm.list_models()


def build_classifier(arch: str, num_classes: int, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD, arch_args: dict | None = None,
                     pretrained: bool = False, pretrained_file: str | None = None,
                     explainer: dict | None = None) -> ImageClassifier:
    """Build ``arch`` (one of robustxai's ``cifar_*`` architectures, built without importing timm, or any
    timm model name) in the wrapper.

    ``pretrained`` loads timm's weights (from the hub, or from ``pretrained_file`` when given, which
    works offline); the wrapper then uses the weights' own mean and std. ``explainer`` (the full
    settings of ``robustxai.models.explainer.branch_settings``) adds an explainer branch.
    """
    from robustxai.models.architectures import ARCHITECTURES

    kwargs = dict(arch_args or {})
    if arch in ARCHITECTURES and not pretrained:
        net = ARCHITECTURES[arch](num_classes=num_classes, **kwargs)
        return ImageClassifier(net, mean, std, build_branch(explainer) if explainer else None)
    import timm  # here, not at the top: timm (and torchvision) take seconds to import; only its models pay

    from robustxai.models.architectures import register_in_timm

    register_in_timm()
    if not is_timm_name(arch):
        raise ValueError(f"unknown architecture '{arch}': not a timm model name "
                         f"(ours: {', '.join(ARCHITECTURES)})")
    if pretrained:
        overlay = {"file": str(pretrained_file)} if pretrained_file else None
        net = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        if net.num_classes != num_classes:  # timm would silently put a random head on instead
            raise ValueError(f"pretrained '{arch}' predicts {net.num_classes} classes but the dataset has "
                             f"{num_classes}; its class order must match the dataset's")
        mean, std = net.pretrained_cfg.get("mean", mean), net.pretrained_cfg.get("std", std)
    else:
        net = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    return ImageClassifier(net, mean, std, build_branch(explainer) if explainer else None)
