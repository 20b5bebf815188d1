"""A plain residual 3D U-Net: the 3D baseline the efficient models are measured against.

Each level is one residual block (two 3x3x3 convolutions with instance norm and leaky ReLU, plus a
1x1x1 projection on the shortcut when the width changes), as in nnU-Net's residual encoder. Levels go
down by a stride-2 convolution inside the first block and up by a 2x2x2 transposed convolution;
skips are concatenated. Instance norm rather than batch norm because 3D batches hold one or two
patches. Inputs whose size 2**(depth-1) does not divide are zero-padded and cropped back.

Default (base 16, depth 4: widths 16, 32, 64, 128) is small enough to train on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from slicebudget.models.padding import crop_to_size, pad_to_multiple


class ResidualBlock3d(nn.Module):
    """conv-norm-act-conv-norm plus shortcut, then act; the first conv may downsample."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm3d(out_channels, affine=True)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm3d(out_channels, affine=True)
        self.act = nn.LeakyReLU(0.01, inplace=True)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.InstanceNorm3d(out_channels, affine=True),
            )
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class ResidualUNet3d(nn.Module):
    """(B, C, D, H, W) -> (B, K, D, H, W) logits."""

    def __init__(self, in_channels: int, classes: int, base_channels: int = 16, depth: int = 4):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        widths = [base_channels * 2**level for level in range(depth)]
        self.stride = 2 ** (depth - 1)
        self.encoder = nn.ModuleList(
            [ResidualBlock3d(in_channels, widths[0])]
            + [ResidualBlock3d(widths[i - 1], widths[i], stride=2) for i in range(1, depth)]
        )
        self.upsample = nn.ModuleList(
            [nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2) for i in range(depth - 1, 0, -1)]
        )
        self.decoder = nn.ModuleList(
            [ResidualBlock3d(2 * widths[i - 1], widths[i - 1]) for i in range(depth - 1, 0, -1)]
        )
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.stride)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for upsample, block in zip(self.upsample, self.decoder):
            x = block(torch.cat([upsample(x), skips.pop()], dim=1))
        return crop_to_size(self.head(x), size)
