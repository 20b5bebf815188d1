"""Edge-profile input: what the feature network sees instead of raw intensity.

The self-supervised task reconstructs slice i+k from slice i. Fed raw intensity, a network can
solve it by matching grey values, which says nothing about where structures moved. Feeding it only
the *shape* of the local intensity profile (differences to the eight neighbours, scaled to unit
length per pixel) removes absolute grey values and contrast, so matching has to rely on edges and
their arrangement -- the information bottleneck Sli2Vol argues for.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EDGE_CHANNELS = 8
# Floor of the per-pixel norm, in normalised intensity units: flat regions keep small vectors
# instead of amplified noise directions.
EDGE_EPS = 0.02


def normalise_intensity(volume: np.ndarray) -> np.ndarray:
    """Robust per-volume scaling to about [0, 1] (0.5th to 99.5th percentile), float32.

    Works for CT (HU) and MR (arbitrary units) alike; the percentiles come from a strided sample so a
    512 x 512 x 300 volume costs milliseconds.
    """
    volume = np.asarray(volume, dtype=np.float32)
    sample = volume.reshape(-1)[:: max(1, volume.size // 1_000_000)]
    lo, hi = np.percentile(sample, [0.5, 99.5])
    scale = float(hi - lo) if hi > lo else 1.0
    return np.clip((volume - lo) / scale, -0.5, 1.5).astype(np.float32)


def _neighbour_kernels(device: torch.device | None = None) -> torch.Tensor:
    """Eight 3 x 3 kernels computing ``x(p) - x(p + d)`` for the eight neighbour offsets d."""
    kernels = torch.zeros(EDGE_CHANNELS, 1, 3, 3, device=device)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    for k, (dy, dx) in enumerate(offsets):
        kernels[k, 0, 1, 1] = 1.0
        kernels[k, 0, 1 + dy, 1 + dx] = -1.0
    return kernels


def _smoothing_kernel(device: torch.device | None = None) -> torch.Tensor:
    # Binomial 3 x 3 blur: damps pixel noise before differencing, cheap and separable-equivalent.
    k1 = torch.tensor([1.0, 2.0, 1.0], device=device) / 4.0
    return (k1[:, None] * k1[None, :])[None, None]


def edge_profile(slices: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) normalised intensity -> (N, 8, H, W) unit-length edge profiles."""
    smoothed = F.conv2d(F.pad(slices, (1, 1, 1, 1), mode="replicate"), _smoothing_kernel(slices.device))
    diffs = F.conv2d(F.pad(smoothed, (1, 1, 1, 1), mode="replicate"), _neighbour_kernels(slices.device))
    norm = torch.sqrt((diffs * diffs).sum(dim=1, keepdim=True) + EDGE_EPS**2)
    return diffs / norm
