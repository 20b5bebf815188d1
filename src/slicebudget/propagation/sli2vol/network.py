"""Feature extractor and local affinity of the learned propagator.

The network keeps full resolution (no striding; dilated convolutions widen the view instead) so
structures one or two pixels thin still own feature vectors. The affinity compares each pixel of
the target slice with a ``window x window`` neighbourhood of the source slice and normalises the
scores with a softmax; anything carried over (intensity in training, a one-hot mask in use) is an
affinity-weighted copy of the source.

Both operations are vectorised: target pixels are grouped in small tiles, and each tile is scored
against the source region covering its windows with one batched matrix product (``F.unfold`` builds
the tiles and regions), so no Python loop ever runs over pixels or offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from slicebudget.propagation.sli2vol.edges import EDGE_CHANNELS

OUT_OF_BOUNDS_LOGIT = -1.0e4


class Sli2VolConfig(BaseModel):
    """Architecture of the feature network and affinity; stored in every model file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: int = Field(16, ge=4, le=128)
    feature_dim: int = Field(16, ge=4, le=128)
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    window: int = Field(13, ge=3, le=31)
    temperature: float = Field(0.05, gt=0.0, le=1.0)


class _DilatedBlock(nn.Module):
    """One dilated 3 x 3 convolution with a residual path: context grows, resolution stays."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv(x))


class FeatureNet(nn.Module):
    """Edge profiles (N, 8, H, W) -> unit-length features (N, feature_dim, H, W), same resolution."""

    def __init__(self, config: Sli2VolConfig):
        super().__init__()
        self.stem = nn.Conv2d(EDGE_CHANNELS, config.channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_DilatedBlock(config.channels, d) for d in config.dilations])
        self.head = nn.Conv2d(config.channels, config.feature_dim, 1)

    def forward(self, edges: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(edges)))
        return F.normalize(self.head(x), dim=1)


TILE = 8  # target pixels per tile side; each tile attends to a (TILE + window - 1)^2 source region


@dataclass(frozen=True, eq=False)
class LocalAffinity:
    """Softmax-normalised affinity of each target pixel to a ``window x window`` source neighbourhood.

    Stored per tile of ``TILE x TILE`` target pixels against the source region that covers all their
    windows, so both scoring and copying are batched matrix products (fast on CPU and GPU). Scores
    outside a pixel's own window, or outside the slice, are masked before the softmax.
    ``weights``: (N, L, TILE^2, S^2) with L tiles and S = TILE + window - 1.
    """

    weights: torch.Tensor
    height: int
    width: int
    window: int

    def carry(self, values: torch.Tensor) -> torch.Tensor:
        """Affinity-weighted copy of ``values`` (N, V, H, W) from the source slice onto the target."""
        n, v = values.shape[:2]
        regions = _source_regions(values, self.window, self.height, self.width)  # (N, L, V, S^2)
        # Contiguous operands matter: a batched matmul on permuted views is ~20x slower on CPU.
        out = torch.matmul(self.weights, regions.transpose(2, 3).contiguous())  # (N, L, T^2, V)
        tiles_y, tiles_x = _tile_counts(self.height, self.width)
        out = out.permute(0, 3, 2, 1).reshape(n, v * TILE * TILE, -1)
        full = F.fold(out, (tiles_y * TILE, tiles_x * TILE), kernel_size=TILE, stride=TILE)
        return full[:, :, : self.height, : self.width]

    def as_windows(self) -> torch.Tensor:
        """The same affinity as (N, window^2, H, W): entry ``[n, o, y, x]`` weighs source pixel
        ``(y + dy_o, x + dx_o)``, offsets row-major over ``-r..r`` (``r = window // 2``)."""
        n = self.weights.shape[0]
        side = TILE + self.window - 1
        ty, tx = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
        oy, ox = torch.meshgrid(torch.arange(self.window), torch.arange(self.window), indexing="ij")
        index = (ty.reshape(-1, 1) + oy.reshape(1, -1)) * side + (tx.reshape(-1, 1) + ox.reshape(1, -1))
        picked = torch.gather(self.weights, 3, index.to(self.weights.device).expand(*self.weights.shape[:2], -1, -1))
        tiles_y, tiles_x = _tile_counts(self.height, self.width)
        picked = picked.permute(0, 3, 2, 1).reshape(n, -1, tiles_y * tiles_x)
        k2 = self.window * self.window
        full = F.fold(picked, (tiles_y * TILE, tiles_x * TILE), kernel_size=TILE, stride=TILE)
        return full.view(n, k2, tiles_y * TILE, tiles_x * TILE)[:, :, : self.height, : self.width]


def _tile_counts(height: int, width: int) -> tuple[int, int]:
    return -(-height // TILE), -(-width // TILE)


def _source_regions(src: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, C, S^2): the source region every target tile may look at."""
    n, c = src.shape[:2]
    r = window // 2
    tiles_y, tiles_x = _tile_counts(height, width)
    pad_bottom = tiles_y * TILE - height
    pad_right = tiles_x * TILE - width
    padded = F.pad(src, (r, r + pad_right, r, r + pad_bottom))
    side = TILE + window - 1
    regions = F.unfold(padded, kernel_size=side, stride=TILE)  # (N, C * S^2, L)
    return regions.view(n, c, side * side, -1).permute(0, 3, 1, 2).contiguous()


def _window_mask(window: int, device: torch.device) -> torch.Tensor:
    """(T^2, S^2) bool: which region pixels fall inside each tile pixel's own window."""
    side = TILE + window - 1
    ty, tx = torch.meshgrid(torch.arange(TILE, device=device), torch.arange(TILE, device=device), indexing="ij")
    sy, sx = torch.meshgrid(torch.arange(side, device=device), torch.arange(side, device=device), indexing="ij")
    dy = sy.reshape(1, -1) - ty.reshape(-1, 1)
    dx = sx.reshape(1, -1) - tx.reshape(-1, 1)
    return (dy >= 0) & (dy < window) & (dx >= 0) & (dx < window)


def window_bias(height: int, width: int, window: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, L, T^2, S^2) additive logit bias: 0 inside each pixel's window and the slice, very
    negative elsewhere. Depends only on the slice size, so callers compute it once per volume."""
    ones = torch.ones(1, 1, height, width, device=device)
    inside_slice = _source_regions(ones, window, height, width) > 0
    allowed = _window_mask(window, torch.device(device))[None, None] & inside_slice
    return torch.where(allowed, 0.0, OUT_OF_BOUNDS_LOGIT)


def local_affinity(
    dst: torch.Tensor, src: torch.Tensor, window: int, temperature: float, bias: torch.Tensor | None = None
) -> LocalAffinity:
    """Affinity of each ``dst`` pixel to its ``window x window`` neighbourhood in ``src``.

    Vectorised as one batched matrix product per tile (no loop over pixels or offsets); windows
    reaching outside the slice get no weight. ``bias`` is :func:`window_bias` for this size.
    """
    n, c, h, w = dst.shape
    tiles_y, tiles_x = _tile_counts(h, w)
    dst_padded = F.pad(dst, (0, tiles_x * TILE - w, 0, tiles_y * TILE - h))
    dst_tiles = F.unfold(dst_padded, kernel_size=TILE, stride=TILE).view(n, c, TILE * TILE, -1)
    # Dividing the small target tiles by the temperature costs less than dividing all scores.
    dst_tiles = (dst_tiles / temperature).permute(0, 3, 2, 1).reshape(-1, TILE * TILE, c)  # (N*L, T^2, C)
    regions = _source_regions(src, window, h, w).view(-1, c, (TILE + window - 1) ** 2)  # (N*L, C, S^2)
    if bias is None:
        bias = window_bias(h, w, window, src.device)
    tiles = tiles_y * tiles_x
    scores = torch.baddbmm(bias.expand(n, -1, -1, -1).reshape(n * tiles, TILE * TILE, -1), dst_tiles, regions)
    scores = scores.view(n, tiles, TILE * TILE, -1)  # (N, L, T^2, S^2)
    # exp(-1e4) underflows to exactly 0, so masked entries carry no weight at all.
    return LocalAffinity(torch.softmax(scores, dim=-1), h, w, window)


def carry(affinity: LocalAffinity, values: torch.Tensor) -> torch.Tensor:
    """Affinity-weighted copy of ``values`` (N, V, H, W) from the source slice onto the target."""
    return affinity.carry(values)


def naive_affinity(dst: torch.Tensor, src: torch.Tensor, window: int, temperature: float) -> torch.Tensor:
    """Pixel-by-pixel reference of :func:`local_affinity`, for tests on tiny inputs only."""
    n, c, h, w = dst.shape
    r = window // 2
    out = torch.zeros(n, window * window, h, w, dtype=dst.dtype)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                scores = torch.full((window * window,), float("-inf"), dtype=dst.dtype)
                for o, (dy, dx) in enumerate((dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        scores[o] = (dst[b, :, y, x] * src[b, :, y + dy, x + dx]).sum() / temperature
                out[b, :, y, x] = torch.softmax(scores, dim=0)
    return out
