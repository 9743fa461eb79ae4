"""The explainer branch of Zeng et al. 2021 ("Generating Deep Networks Explanations with Robust
Attribution Alignment"): transposed convolutions that upsample a classifier's last feature map
(N, C, h, w) to an attribution map (N, out_channels, H, W) at input resolution, so explaining costs
one forward pass.

Our reading of the paper (ambiguities A1-A4 in shared/reference/explainer-and-faithfulness.md): a
decoder C -> widths[0] -> ... -> widths[-1] -> out_channels, kernel 3, every layer but the last
followed by batch norm and ReLU, the last one by a ReLU only (a non-negative map, no batch norm that
would renormalise a one-channel output per batch). Strides default to 2 for the first log2(H / h)
layers and 1 after, e.g. (2, 2, 2, 1) for a CIFAR ResNet-18 (512 x 4 x 4 -> 32 x 32).
"""
from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_WIDTHS = (256, 128, 64)


def transposed_padding(kernel: int, stride: int) -> tuple[int, int]:
    """(padding, output_padding) that make a ConvTranspose2d multiply the spatial size by exactly
    ``stride``; raises ValueError for a (kernel, stride) pair that cannot."""
    padding = (kernel - 1) // 2
    output_padding = stride - kernel + 2 * padding
    if not 0 <= output_padding < max(stride, 1):
        raise ValueError(f"a transposed convolution with kernel {kernel} cannot upsample by exactly {stride}; "
                         "use kernel 3 (any stride) or kernel 4 (stride 2)")
    return padding, output_padding


def default_strides(feature_size: int, image_size: int, layers: int) -> tuple[int, ...]:
    """Strides of ``layers`` layers that upsample ``feature_size`` to ``image_size`` px: 2 for the first
    log2(image_size / feature_size) layers, 1 after. Raises ValueError when no such strides exist."""
    factor = image_size / feature_size
    doublings = round(math.log2(factor)) if factor >= 1 else -1
    if doublings < 0 or 2 ** doublings != factor or doublings > layers:
        raise ValueError(f"cannot upsample a {feature_size}-px feature map to {image_size} px with {layers} "
                         "stride-2 layers; set explainer.branch.strides")
    return (2,) * doublings + (1,) * (layers - doublings)


class ExplainerBranch(nn.Module):
    """ConvTranspose(k, s) [+ BN + ReLU] x len(widths), then ConvTranspose(k, s) + ReLU to
    ``out_channels``: (N, in_channels, h, w) -> (N, out_channels, h * prod(strides), w * prod(strides))."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = DEFAULT_WIDTHS, kernel: int = 3,
                 strides: tuple[int, ...] = (2, 2, 2, 1), out_channels: int = 1) -> None:
        super().__init__()
        if len(strides) != len(widths) + 1:
            raise ValueError(f"the branch has {len(widths) + 1} layers (widths {list(widths)} + the output layer) "
                             f"but {len(strides)} strides {list(strides)}")
        self.settings = {"in_channels": in_channels, "widths": list(widths), "kernel": kernel,
                         "strides": list(strides), "out_channels": out_channels}
        layers: list[nn.Module] = []
        channels = (in_channels, *widths, out_channels)
        for i, stride in enumerate(strides):
            padding, output_padding = transposed_padding(kernel, stride)
            last = i == len(strides) - 1
            layers.append(nn.ConvTranspose2d(channels[i], channels[i + 1], kernel, stride, padding, output_padding,
                                             bias=last))
            if not last:
                layers += [nn.BatchNorm2d(channels[i + 1]), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    def pre_activation(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features -> (N, out_channels, H, W) maps before the final ReLU (what training fits)."""
        return self.layers(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features -> (N, out_channels, H, W) non-negative maps."""
        return torch.relu(self.layers(features))


def branch_settings(net: nn.Module, image_size: int, requested: dict, in_chans: int = 3) -> dict:
    """The full settings of a branch on ``net`` (a timm-style model with ``forward_features``) for
    square ``image_size`` inputs: ``requested`` (widths, kernel, strides, out_channels; any may be
    missing) completed with defaults and the feature map's channels. Raises ValueError when the net
    has no spatial last feature map or the strides do not reach ``image_size``."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            features = net.forward_features(torch.zeros(1, in_chans, image_size, image_size,
                                                         device=next(net.parameters()).device))
    finally:
        net.train(was_training)
    if features.dim() != 4 or min(features.shape[-2:]) < 1:
        raise ValueError(f"the explainer needs a spatial last feature map, got shape {tuple(features.shape)}")
    widths = tuple(requested.get("widths", DEFAULT_WIDTHS))
    kernel = int(requested.get("kernel", 3))
    strides = tuple(requested.get("strides") or default_strides(features.shape[-1], image_size, len(widths) + 1))
    settings = {"in_channels": int(features.shape[1]), "widths": list(widths), "kernel": kernel,
                "strides": list(strides), "out_channels": int(requested.get("out_channels", 1))}
    size = features.shape[-1] * math.prod(strides)
    if size != image_size:
        raise ValueError(f"explainer strides {list(strides)} upsample the {features.shape[-1]}-px feature map to "
                         f"{size} px, not the {image_size}-px input")
    return settings


def build_branch(settings: dict) -> ExplainerBranch:
    """The branch of ``branch_settings`` output (as stored in checkpoints)."""
    return ExplainerBranch(settings["in_channels"], tuple(settings["widths"]), settings["kernel"],
                           tuple(settings["strides"]), settings["out_channels"])
