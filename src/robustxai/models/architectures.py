"""Small-image (CIFAR-style) architectures, registered in timm's model registry.

Importing this module makes ``timm.create_model("cifar_resnet_tiny")`` etc. work, so every
architecture, ours or timm's, is built the same way. CIFAR-style means a 3x3 stride-1 stem and no
max-pool, so a 32x32 input keeps a 8x8 (or 4x4) final feature map instead of 1x1.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet


def _drop_factory_kwargs(kwargs: dict) -> None:
    """Remove the bookkeeping arguments timm.create_model passes to every factory (in place)."""
    for key in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)


def _cifar_resnet(layers: tuple[int, ...], channels: tuple[int, ...], num_classes: int = 10,
                  in_chans: int = 3, **kwargs) -> ResNet:
    """timm ResNet with BasicBlocks whose 7x7/2 stem and max-pool are replaced by one 3x3/1 conv."""
    _drop_factory_kwargs(kwargs)
    model = ResNet(block=BasicBlock, layers=layers, channels=channels, num_classes=num_classes,
                   in_chans=in_chans, stem_type="deep", stem_width=channels[0] // 2, **kwargs)
    # timm sizes the first stage from a 'deep' stem's width x 2; the stem itself is then replaced.
    model.conv1 = nn.Conv2d(in_chans, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model
def cifar_resnet_tiny(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet with one BasicBlock per stage, widths 16/32/64/64, the last stage dilated instead of
    strided (timm's output_stride=16): ~0.2 M params, 32x32 -> 8x8 features."""
    kwargs.setdefault("output_stride", 16)
    # timm zero-initialises each block's last BN; with one block per stage that stalls training at chance.
    kwargs.setdefault("zero_init_last", False)
    return _cifar_resnet((1, 1, 1, 1), (16, 32, 64, 64), **kwargs)


@register_model
def cifar_resnet18(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 (widths 64-512) with the CIFAR stem: 32x32 -> 4x4 features."""
    return _cifar_resnet((2, 2, 2, 2), (64, 128, 256, 512), **kwargs)


class SmallVGG(nn.Module):
    """VGG-style stack of conv-BN-ReLU stages, each halving the resolution, then global average pool.

    ``widths`` gives one conv stage per entry; a max-pool follows every stage but the last.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), num_classes: int = 10, in_chans: int = 3,
                 **kwargs) -> None:
        super().__init__()
        _drop_factory_kwargs(kwargs)
        if kwargs:
            raise TypeError(f"SmallVGG got unexpected arguments {sorted(kwargs)}")
        layers, cin = [], in_chans
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised images -> the last feature map (N, widths[-1], h, w) (timm's interface)."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The last feature map (N, widths[-1], h, w) -> (N, num_classes) logits (timm's interface)."""
        return self.fc(self.pool(features).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised images -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(x))


@register_model
def cifar_vgg_tiny(pretrained: bool = False, **kwargs) -> SmallVGG:
    """VGG-style net with widths 16/32/64 (two convs each): ~0.07 M params, 32x32 -> 8x8 features."""
    return SmallVGG((16, 32, 64), **kwargs)
