"""Med-DANet V2's decision networks: the policy (skip / whole slice / crop) and the crop position.

Both follow the paper in using a ShuffleNet V2 backbone, here a four-unit miniature of it: the slice
is first average-pooled to 64 x 64, so the decision costs the same few MFLOPs at any slice size and
stays negligible beside the U-Net. Each network reports its own FLOPs from layer shapes
(:meth:`flops`), which lets the dynamic model account for every sample's compute exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slicebudget.models.flops import conv_layer_flops, linear_layer_flops

DECISION_INPUT = 64  # pixels per side seen by the decision networks


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _sequential_flops(block: nn.Sequential, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    total = 0
    for layer in block.modules():
        if isinstance(layer, nn.Conv2d):
            flops, size = conv_layer_flops(layer, size)
            total += flops
    return total, size


class ShuffleUnit(nn.Module):
    """ShuffleNet V2 unit. Stride 1: split channels, transform one half, concat, shuffle.
    Stride 2: both halves see the input (one through a depthwise downsampler), width grows."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        branch_in = in_channels if stride == 2 else in_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 shuffle unit keeps its width")
        self.shortcut = (
            nn.Sequential(
                _conv_bn_relu(in_channels, in_channels, 3, 2, groups=in_channels, act=False),
                _conv_bn_relu(in_channels, half, 1),
            )
            if stride == 2
            else None
        )
        self.branch = nn.Sequential(
            _conv_bn_relu(branch_in, half, 1),
            _conv_bn_relu(half, half, 3, stride, groups=half, act=False),
            _conv_bn_relu(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            kept, transformed = x.chunk(2, dim=1)
            out = torch.cat([kept, self.branch(transformed)], dim=1)
        else:
            out = torch.cat([self.shortcut(x), self.branch(x)], dim=1)
        return channel_shuffle(out)

    def flops(self, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        total, out_size = _sequential_flops(self.branch, size)
        if self.shortcut is not None:
            total += _sequential_flops(self.shortcut, size)[0]
        return total, out_size


class ShuffleBackbone(nn.Module):
    """64 x 64 input -> conv s2 -> 4 shuffle units (two of them stride 2) -> pooled feature vector."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int] = (24, 48, 96)):
        super().__init__()
        self.stem = _conv_bn_relu(in_channels, widths[0], 3, 2)
        self.units = nn.ModuleList(
            [
                ShuffleUnit(widths[0], widths[1], 2),
                ShuffleUnit(widths[1], widths[1], 1),
                ShuffleUnit(widths[1], widths[2], 2),
                ShuffleUnit(widths[2], widths[2], 1),
            ]
        )
        self.out_features = widths[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, DECISION_INPUT)
        x = self.stem(x)
        for unit in self.units:
            x = unit(x)
        return x.mean(dim=(2, 3))

    def flops(self) -> int:
        total, size = _sequential_flops(self.stem, (DECISION_INPUT, DECISION_INPUT))
        for unit in self.units:
            flops, size = unit.flops(size)
            total += flops
        return total


class PolicyNetwork(nn.Module):
    """Logits over the choices (skip, whole slice, crop) for each slice."""

    def __init__(self, in_channels: int, choices: int = 3):
        super().__init__()
        self.backbone = ShuffleBackbone(in_channels)
        self.head = nn.Linear(self.backbone.out_features, choices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def flops(self) -> int:
        return self.backbone.flops() + linear_layer_flops(self.head)


class CropPositionNetwork(nn.Module):
    """Regresses the crop centre as fractions in [0, 1] of the free range (0.5 = slice centre).

    The head starts at zero, so an untrained network crops the middle of the slice.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.backbone = ShuffleBackbone(in_channels)
        self.head = nn.Linear(self.backbone.out_features, 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.backbone(x)))

    def flops(self) -> int:
        return self.backbone.flops() + linear_layer_flops(self.head)
