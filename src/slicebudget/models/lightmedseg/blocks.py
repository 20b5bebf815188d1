"""LightMedSeg's building blocks: ghost convolution, squeeze-excitation, the anchor detector, the
local structural prior module (LSPM), encoder and decoder stages, and the skip router.

Each class says which part of the paper it follows; the choices the paper leaves open are listed in
the docstring of :mod:`slicebudget.models.lightmedseg.network`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORM_GROUPS = 4  # the paper normalises with four-group GroupNorm throughout


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(NORM_GROUPS, channels), channels)


class GhostConv3d(nn.Module):
    """GhostNet convolution in 3D: a dense conv makes ``ceil(out/ratio)`` primary channels, a cheap
    3x3x3 depthwise conv on those makes the rest ("ghost" channels); the two are concatenated."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, ratio: int = 2):
        super().__init__()
        self.out_channels = out_channels
        primary = math.ceil(out_channels / ratio)
        self.primary = nn.Conv3d(in_channels, primary, kernel_size, stride, kernel_size // 2, bias=False)
        self.cheap = nn.Conv3d(primary, primary * (ratio - 1), 3, 1, 1, groups=primary, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(x)
        return torch.cat([primary, self.cheap(primary)], dim=1)[:, : self.out_channels]


class SqueezeExcite3d(nn.Module):
    """Channel recalibration: global average pool, bottleneck MLP, sigmoid gate.

    Bottleneck width ``max(channels // reduction, 4)``: the floor of 4 keeps the narrow early stages
    from collapsing to a channel-agnostic gate, as the paper notes.
    """

    def __init__(self, channels: int, reduction: int = 4, min_hidden: int = 4):
        super().__init__()
        hidden = max(channels // reduction, min_hidden)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3, 4))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))
        return x * gate[:, :, None, None, None]


class GlobalAnchorDetector(nn.Module):
    """Predicts ``num_anchors`` sample-specific 3D points in [0, 1]^3 from the raw input (Sec. 3.2).

    Three (conv k3 s2 p1, GN4, SiLU) layers, global average pooling, a two-layer MLP (hidden 128,
    SiLU) and a sigmoid. With width 8 and 8 anchors it has 8,640 parameters (the paper: 8.6K).
    """

    def __init__(self, in_channels: int, num_anchors: int = 8, width: int = 8, hidden: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(3):
            layers += [
                nn.Conv3d(in_channels if index == 0 else width, width, 3, stride=2, padding=1),
                group_norm(width),
                nn.SiLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, 3 * num_anchors))
        self.num_anchors = num_anchors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3, 4))
        return torch.sigmoid(self.mlp(pooled)).view(x.shape[0], self.num_anchors, 3)


class LocalStructuralPrior(nn.Module):
    """LSPM (Sec. 3.3): returns ``(texture map (B,1,...), adapted features (B,out,...))``.

    Branch 1: texture = tanh(channel-mean |F - depthwise_smooth(F)|), high on edges, ~0 inside.
    Branch 2: spatial gate g = sigmoid(conv3(SiLU(GN(conv3(F))))), receptive field 5^3.
    Branch 3: a 1x1x1 conv turns g into two softmax weights that blend two 1x1x1 expert projections.
    """

    def __init__(self, channels: int, out_channels: int, gate_hidden: int = 32, smooth_kernel: int = 3):
        super().__init__()
        self.smooth = nn.Conv3d(channels, channels, smooth_kernel, padding=smooth_kernel // 2, groups=channels)
        self.gate = nn.Sequential(
            nn.Conv3d(channels, gate_hidden, 3, padding=1),
            group_norm(gate_hidden),
            nn.SiLU(),
            nn.Conv3d(gate_hidden, 1, 3, padding=1),
        )
        self.expert_weights = nn.Conv3d(1, 2, 1)
        self.experts = nn.ModuleList([nn.Conv3d(channels, out_channels, 1) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        texture = torch.tanh((x - self.smooth(x)).abs().mean(dim=1, keepdim=True))
        complexity = torch.sigmoid(self.gate(x))
        weights = torch.softmax(self.expert_weights(complexity), dim=1)
        mixed = weights[:, 0:1] * self.experts[0](x) + weights[:, 1:2] * self.experts[1](x)
        return texture, mixed


class EncoderStage(nn.Module):
    """Ghost projection + anchor FiLM, texture-routed detail/smooth paths, squeeze-excitation (Sec. 3.4).

    FiLM is ``F * (1 + gamma(a)) + beta(a)`` with zero-initialised projections, so an untrained
    anchor detector starts as the identity rather than as a random rescaling.
    """

    def __init__(self, in_channels: int, out_channels: int, anchor_features: int):
        super().__init__()
        self.project = GhostConv3d(in_channels, out_channels)
        self.norm = group_norm(out_channels)
        self.film_scale = nn.Linear(anchor_features, out_channels)
        self.film_shift = nn.Linear(anchor_features, out_channels)
        for layer in (self.film_scale, self.film_shift):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.detail = nn.Conv3d(out_channels, out_channels, 3, padding=1, groups=out_channels)
        self.smooth = nn.Conv3d(out_channels, out_channels, 1)
        self.se = SqueezeExcite3d(out_channels)

    def forward(self, x: torch.Tensor, anchors: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        flat = anchors.flatten(1)
        scale = self.film_scale(flat)[:, :, None, None, None]
        shift = self.film_shift(flat)[:, :, None, None, None]
        x = F.silu(self.norm(self.project(x)) * (1 + scale) + shift)
        route = F.interpolate(texture, size=x.shape[2:], mode="trilinear", align_corners=False)
        routed = route * self.detail(x) + (1 - route) * self.smooth(x)
        return x + self.se(F.silu(routed))


class RoutedSkip(nn.Module):
    """Learned multi-scale skip fusion (Sec. 3.5) for one low-resolution decoder stage.

    Takes the encoder maps already projected to a common width, resamples them to the stage's
    size, predicts per-voxel softmax weights over them with a two-layer 1x1x1 controller, sums
    and projects to the stage width.
    """

    def __init__(self, sources: int, common: int, out_channels: int, controller_hidden: int = 64):
        super().__init__()
        self.controller = nn.Sequential(
            nn.Conv3d(sources * common, controller_hidden, 1),
            nn.SiLU(),
            nn.Conv3d(controller_hidden, sources, 1),
        )
        self.out = nn.Conv3d(common, out_channels, 1)

    def forward(self, projected: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
        aligned = [
            p if tuple(p.shape[2:]) == tuple(size) else F.interpolate(p, size=size, mode="trilinear", align_corners=False)
            for p in projected
        ]
        weights = torch.softmax(self.controller(torch.cat(aligned, dim=1)), dim=1)
        fused = sum(weights[:, i : i + 1] * a for i, a in enumerate(aligned))
        return self.out(fused)


class SingleSkip(nn.Module):
    """High-resolution skip: the one matching encoder map, projected and resampled to the stage."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.project = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, feature: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        projected = self.project(feature)
        if tuple(projected.shape[2:]) != tuple(size):
            projected = F.interpolate(projected, size=size, mode="trilinear", align_corners=False)
        return projected


def anchor_offset_map(anchors: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(B, A, D, H, W): per anchor, the summed signed offsets of each voxel from it along z, y, x.

    Built from three 1D offset arrays broadcast together (the paper's factored form), so no
    (D, H, W, 3) displacement field is ever stored. Coordinates are voxel centres in [0, 1].
    """
    maps = None
    for axis, length in enumerate(size):
        coords = (torch.arange(length, device=anchors.device, dtype=anchors.dtype) + 0.5) / length
        offset = coords[None, None, :] - anchors[:, :, axis : axis + 1]  # (B, A, length)
        shape = [anchors.shape[0], anchors.shape[1], 1, 1, 1]
        shape[2 + axis] = length
        offset = offset.view(shape)
        maps = offset if maps is None else maps + offset
    return maps


class DecoderStage(nn.Module):
    """Position-biased upsampling, skip fusion, three gated branches, squeeze-excitation (Sec. 3.6).

    ``upsample=False`` keeps the resolution (1x1x1 conv instead of the transposed conv) for the
    last stage, which shares the stem's resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, num_anchors: int, upsample: bool):
        super().__init__()
        self.up = (
            nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2)
            if upsample
            else nn.Conv3d(in_channels, out_channels, 1)
        )
        self.position = nn.Conv3d(num_anchors, out_channels, 1)
        self.fuse = nn.Conv3d(2 * out_channels, out_channels, 1, bias=False)
        self.fuse_norm = group_norm(out_channels)
        self.gate = nn.Conv3d(out_channels, 3, 1)
        self.depthwise = nn.Conv3d(out_channels, out_channels, 3, padding=1, groups=out_channels)
        self.ghost = GhostConv3d(out_channels, out_channels)
        self.pointwise = nn.Conv3d(out_channels, out_channels, 1)
        self.se = SqueezeExcite3d(out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        up = up + self.position(anchor_offset_map(anchors, tuple(up.shape[2:])))
        fused = F.silu(self.fuse_norm(self.fuse(torch.cat([up, skip], dim=1))))
        weights = torch.softmax(self.gate(fused), dim=1)
        gated = (
            weights[:, 0:1] * self.depthwise(fused)
            + weights[:, 1:2] * self.ghost(fused)
            + weights[:, 2:3] * self.pointwise(fused)
        )
        return fused + self.se(F.silu(gated))
