"""Small-image (CIFAR-style) architectures in plain PyTorch, in robustxai's own registry.

``build_classifier`` builds these without importing timm: timm, with the torchvision models it loads,
takes about 1.4 s to import, which every job that loads one of these models paid (issue 23). Every
other architecture name is a timm model. ``register_in_timm`` adds these to timm's registry as well,
so ``timm.create_model("cifar_resnet_tiny")`` works wherever timm is loaded.

CIFAR-style means a 3x3 stride-1 stem and no max-pool, so a 32x32 input keeps a 8x8 (or 4x4) final
feature map instead of 1x1. The ResNets are timm's ResNet with BasicBlocks, its 7x7/2 stem and max-pool
replaced by one 3x3/1 conv: the same module names, parameters and forward pass (a state dict of one
loads into the other; tests/test_models.py compares their outputs), and timm's initialisation
(Kaiming-normal fan-out convolutions; the stem conv, which replaced timm's after it initialised, keeps
PyTorch's default).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: architecture name -> factory(num_classes=..., in_chans=..., **arch_args) -> nn.Module
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
FACTORY_KWARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def register_architecture(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Add ``factory`` to ``ARCHITECTURES`` under its function name (a decorator)."""
    ARCHITECTURES[factory.__name__] = factory
    return factory


def _drop_factory_kwargs(kwargs: dict) -> None:
    """Remove the bookkeeping arguments timm.create_model passes to every factory (in place)."""
    for key in FACTORY_KWARGS:
        kwargs.pop(key, None)


class BasicBlock(nn.Module):
    """timm's ResNet BasicBlock (two 3x3 convs + shortcut) without its optional parts (SE, anti-aliasing,
    DropBlock, drop-path): (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, first_dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=first_dilation, dilation=first_dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def zero_init_last(self) -> None:
        """Zero the last BN's scale, so the block starts as its shortcut (timm's ``zero_init_last``)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        x += shortcut
        return self.act2(x)


class CifarResNet(nn.Module):
    """ResNet of BasicBlocks with a 3x3/1 stem: ``layers`` blocks per stage, ``channels`` widths; stages
    after the first halve the resolution until the net's stride reaches ``output_stride`` (counted, as in
    timm, from a stem of stride 4), after which they dilate instead."""

    def __init__(self, layers: tuple[int, ...], channels: tuple[int, ...], num_classes: int = 10, in_chans: int = 3,
                 output_stride: int = 32, zero_init_last: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.conv1 = nn.Conv2d(in_chans, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        inplanes, net_stride, dilation, prev_dilation = channels[0], 4, 1, 1
        for index, (planes, blocks) in enumerate(zip(channels, layers)):
            stride = 1 if index == 0 else 2
            if net_stride >= output_stride:
                dilation, stride = dilation * stride, 1
            else:
                net_stride *= stride
            stage = []
            for block in range(blocks):
                stage.append(BasicBlock(inplanes, planes, stride if block == 0 else 1, dilation, prev_dilation))
                prev_dilation, inplanes = dilation, planes
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.num_features = inplanes
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(inplanes, num_classes)
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and name != "conv1":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_last:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    module.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised images -> the last feature map (N, channels[-1], h, w) (timm's interface)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The last feature map -> (N, num_classes) logits, or the pooled features (timm's interface)."""
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised images -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(x))


@register_architecture
def cifar_resnet_tiny(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet with one BasicBlock per stage, widths 16/32/64/64, the last stage dilated instead of
    strided (output_stride=16): ~0.2 M params, 32x32 -> 8x8 features."""
    _drop_factory_kwargs(kwargs)
    kwargs.setdefault("output_stride", 16)
    # zero-initialising each block's last BN (timm's default) stalls one-block stages at chance
    kwargs.setdefault("zero_init_last", False)
    return CifarResNet((1, 1, 1, 1), (16, 32, 64, 64), **kwargs)


@register_architecture
def cifar_resnet18(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-18 (widths 64-512) with the CIFAR stem: 32x32 -> 4x4 features."""
    _drop_factory_kwargs(kwargs)
    return CifarResNet((2, 2, 2, 2), (64, 128, 256, 512), **kwargs)


class SmallVGG(nn.Module):
    """VGG-style stack of conv-BN-ReLU stages, each halving the resolution, then global average pool.

    ``widths`` gives one conv stage per entry; a max-pool follows every stage but the last.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
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


@register_architecture
def cifar_vgg_tiny(pretrained: bool = False, **kwargs) -> SmallVGG:
    """VGG-style net with widths 16/32/64 (two convs each): ~0.07 M params, 32x32 -> 8x8 features."""
    _drop_factory_kwargs(kwargs)
    return SmallVGG((16, 32, 64), **kwargs)


def register_in_timm() -> None:
    """Add every architecture here to timm's model registry (once), so timm.create_model and
    timm.list_models know them."""
    import timm
    from timm.models import register_model

    for name, factory in ARCHITECTURES.items():
        if name not in timm.list_models(name):
            register_model(factory)
