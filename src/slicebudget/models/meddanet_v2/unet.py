"""The dynamically quantised 2D U-Net inside Med-DANet V2 ("modified U-Net", 16 base channels).

Nine stages: four encoder levels, a bottleneck, four decoder levels (the last one carries the 1x1
head). Each stage has a :class:`BitSelector` in front of it; with ``quantize=True`` every conv and
transposed conv of the stage runs with the weight bit width that selector picks for each sample.

GroupNorm rather than BatchNorm: statistics per sample keep a sample's output independent of what
else is in the batch, which matters when the batch is split by the policy's choices and when a
cropped window's features are placed into a mostly-zero full-size map before the last stage.

The U-Net can stop before its last stage (:meth:`features_before_last`), which is where Med-DANet V2
places a cropped window's features back into the full slice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slicebudget.models.flops import conv_layer_flops
from slicebudget.models.meddanet_v2.quant import BitSelector, QuantConv2d, QuantConvTranspose2d

Bits = torch.Tensor | None  # (B, K) straight-through one-hot over bit widths, None = full precision


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class QuantDoubleConv(nn.Module):
    """(quantised 3x3 conv, GroupNorm, ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int, bit_choices: tuple[int, ...]):
        super().__init__()
        self.conv1 = QuantConv2d(in_channels, out_channels, 3, padding=1, bias=False, bit_choices=bit_choices)
        self.norm1 = _norm(out_channels)
        self.conv2 = QuantConv2d(out_channels, out_channels, 3, padding=1, bias=False, bit_choices=bit_choices)
        self.norm2 = _norm(out_channels)

    def forward(self, x: torch.Tensor, bits: Bits) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x, bits)))
        return F.relu(self.norm2(self.conv2(x, bits)))

    def flops(self, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        first, size = conv_layer_flops(self.conv1, size)
        second, size = conv_layer_flops(self.conv2, size)
        return first + second, size


class EncoderStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, downsample: bool, bit_choices: tuple[int, ...]):
        super().__init__()
        self.downsample = downsample
        self.block = QuantDoubleConv(in_channels, out_channels, bit_choices)

    def forward(self, x: torch.Tensor, bits: Bits) -> torch.Tensor:
        if self.downsample:
            x = F.max_pool2d(x, 2)
        return self.block(x, bits)

    def flops(self, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        if self.downsample:
            size = (size[0] // 2, size[1] // 2)
        return self.block.flops(size)


class DecoderStage(nn.Module):
    """Upsample x2 (quantised transposed conv), concatenate the skip, double conv, optional head."""

    def __init__(self, in_channels: int, out_channels: int, bit_choices: tuple[int, ...], classes: int | None = None):
        super().__init__()
        self.up = QuantConvTranspose2d(in_channels, out_channels, 2, stride=2, bit_choices=bit_choices)
        self.block = QuantDoubleConv(2 * out_channels, out_channels, bit_choices)
        self.head = None if classes is None else QuantConv2d(out_channels, classes, 1, bit_choices=bit_choices)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, bits: Bits) -> torch.Tensor:
        x = self.block(torch.cat([self.up(x, bits), skip], dim=1), bits)
        return x if self.head is None else self.head(x, bits)

    def flops(self, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        total, size = conv_layer_flops(self.up, size)
        block, size = self.block.flops(size)
        total += block
        if self.head is not None:
            total += conv_layer_flops(self.head, size)[0]
        return total, size


class QuantUNet2d(nn.Module):
    """(B, C, H, W) -> (B, K, H, W); H and W must be multiples of :attr:`stride`."""

    def __init__(self, in_channels: int, classes: int, base_channels: int = 16, levels: int = 5,
                 bit_choices: tuple[int, ...] = (8, 16)):
        super().__init__()
        widths = [base_channels * 2**i for i in range(levels)]
        self.bit_choices = tuple(bit_choices)
        self.stride = 2 ** (levels - 1)
        self.encoder = nn.ModuleList(
            [EncoderStage(in_channels, widths[0], False, self.bit_choices)]
            + [EncoderStage(widths[i - 1], widths[i], True, self.bit_choices) for i in range(1, levels)]
        )
        self.decoder = nn.ModuleList(
            [
                DecoderStage(widths[i], widths[i - 1], self.bit_choices, classes if i == 1 else None)
                for i in range(levels - 1, 0, -1)
            ]
        )
        stage_inputs = [in_channels, *widths[:-1], *widths[:0:-1]]
        self.selectors = nn.ModuleList([BitSelector(c, len(self.bit_choices)) for c in stage_inputs])

    @property
    def num_stages(self) -> int:
        return len(self.encoder) + len(self.decoder)

    def _bits(self, stage: int, x: torch.Tensor, quantize: bool) -> Bits:
        return self.selectors[stage](x) if quantize else None

    def features_before_last(self, x: torch.Tensor, quantize: bool) -> tuple[torch.Tensor, torch.Tensor, list[Bits]]:
        """Run every stage but the last: (features entering the last stage, first skip, bits per stage)."""
        skips, bits = [], []
        for index, stage in enumerate(self.encoder):
            bits.append(self._bits(index, x, quantize))
            x = stage(x, bits[-1])
            skips.append(x)
        x = skips.pop()
        for offset, stage in enumerate(self.decoder[:-1]):
            index = len(self.encoder) + offset
            bits.append(self._bits(index, x, quantize))
            x = stage(x, skips.pop(), bits[-1])
        return x, skips.pop(), bits

    def last_stage(self, x: torch.Tensor, skip: torch.Tensor, quantize: bool) -> tuple[torch.Tensor, Bits]:
        bits = self._bits(self.num_stages - 1, x, quantize)
        return self.decoder[-1](x, skip, bits), bits

    def forward(self, x: torch.Tensor, quantize: bool = False) -> tuple[torch.Tensor, list[Bits]]:
        features, skip, bits = self.features_before_last(x, quantize)
        logits, last_bits = self.last_stage(features, skip, quantize)
        return logits, [*bits, last_bits]

    def stage_flops(self, size: tuple[int, int]) -> list[int]:
        """FLOPs of each stage for one sample of spatial ``size`` (as FlopCounterMode counts them)."""
        flops = []
        for stage in self.encoder:
            stage_flops, size = stage.flops(size)
            flops.append(stage_flops)
        for stage in self.decoder:
            stage_flops, size = stage.flops(size)
            flops.append(stage_flops)
        return flops

    def selector_flops(self) -> int:
        return sum(selector.flops() for selector in self.selectors)
