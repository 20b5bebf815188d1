"""The regular grid of overlapping high-resolution patches, and extraction of only the chosen ones.

NMSW scores every position of the grid a sliding window would visit, but runs the local model on
K of them. So the grid is built with the sliding window's own start positions
(:func:`slicebudget.models.sliding_window.window_starts`): with K = N the two visit the same
windows, which is what makes "K = N reproduces SW" hold exactly. Patches are never materialised as
a stack of N: a chosen patch is a slice of the volume, copied only when the local model needs it.

The Gaussian importance map (sigma = 1/8 of the patch size per axis, peak 1) is separable, so the
sum of the maps of all N windows (the sliding window's normaliser) is an outer product of three
1D sums and costs O(volume), not O(N * patch).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slicebudget.models.sliding_window import window_starts

SIGMA_SCALE = 0.125  # the paper's and MIST's sigma: 1/8 of the patch size


@dataclass(frozen=True)
class PatchGrid:
    """Window starts per axis for a volume of ``volume_shape`` (already at least one patch large)."""

    volume_shape: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    axis_starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(len(s) for s in self.axis_starts)

    @property
    def n_patches(self) -> int:
        return math.prod(self.grid_shape)

    def starts(self) -> torch.Tensor:
        """(N, 3) int64 patch corners, in the sliding window's order (last axis fastest)."""
        return torch.tensor(list(itertools.product(*self.axis_starts)), dtype=torch.int64).reshape(-1, 3)

    def region(self, start: Sequence[int]) -> tuple[slice, slice, slice]:
        return tuple(slice(int(s), int(s) + p) for s, p in zip(start, self.patch_size, strict=True))


def patch_grid(volume_shape: Sequence[int], patch_size: Sequence[int], overlap: float = 0.5) -> PatchGrid:
    """The grid a sliding window with this overlap would visit; N = N_d * N_h * N_w."""
    volume_shape = tuple(int(s) for s in volume_shape)
    patch_size = tuple(int(p) for p in patch_size)
    if len(volume_shape) != 3 or len(patch_size) != 3:
        raise ValueError(f"expected 3D shapes, got volume {volume_shape} and patch {patch_size}")
    if min(patch_size) < 1:
        raise ValueError(f"patch size must be positive, got {patch_size}")
    if any(s < p for s, p in zip(volume_shape, patch_size, strict=True)):
        raise ValueError(f"volume {volume_shape} is smaller than the patch {patch_size}; pad it first")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    starts = tuple(tuple(window_starts(s, p, overlap)) for s, p in zip(volume_shape, patch_size, strict=True))
    return PatchGrid(volume_shape, patch_size, starts)


def pad_to_patch(image: torch.Tensor, patch_size: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad (B, C, D, H, W) symmetrically up to at least one patch; return it and the crop back.

    Warns when padding happens, so a user knows the volume was smaller than the model's patch.
    The split of the padding matches the sliding window's, so both see the same padded volume.
    """
    spatial = tuple(image.shape[2:])
    missing = [max(0, int(p) - s) for p, s in zip(patch_size, spatial, strict=True)]
    before = [m // 2 for m in missing]
    crop = tuple(slice(b, b + s) for b, s in zip(before, spatial, strict=True))
    if not any(missing):
        return image, crop
    warnings.warn(
        f"volume {spatial} is smaller than the patch {tuple(patch_size)}: zero-padded to "
        f"{tuple(max(s, int(p)) for s, p in zip(spatial, patch_size, strict=True))} for NMSW inference",
        UserWarning,
        stacklevel=3,
    )
    pads = [v for axis in reversed(range(3)) for v in (before[axis], missing[axis] - before[axis])]
    return F.pad(image, pads), crop


def extract_patches(image: torch.Tensor, grid: PatchGrid, starts: torch.Tensor) -> torch.Tensor:
    """(C, D, H, W) -> (K, C, *patch): copies of the K chosen windows only."""
    if starts.numel() == 0:
        return image.new_zeros((0, image.shape[0], *grid.patch_size))
    return torch.stack([image[(slice(None), *grid.region(start.tolist()))] for start in starts])


def gaussian_profile(size: int, sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """1D Gaussian over ``size`` voxels centred on the patch centre, peak 1 (float64)."""
    sigma = max(size * sigma_scale, 1e-6)
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-0.5 * (coords / sigma) ** 2)
    return profile / profile.max()


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """The patch weight p_w: separable Gaussian, peak 1, float32 (same map as the sliding window's)."""
    d, h, w = (gaussian_profile(int(p), sigma_scale) for p in patch_size)
    return (d[:, None, None] * h[None, :, None] * w[None, None, :]).float()


def coverage_profiles(grid: PatchGrid, sigma_scale: float = SIGMA_SCALE) -> list[torch.Tensor]:
    """Per axis, the sum of the 1D profiles of every window start (float64, length = volume size)."""
    profiles = []
    for size, patch, starts in zip(grid.volume_shape, grid.patch_size, grid.axis_starts, strict=True):
        profile = gaussian_profile(patch, sigma_scale)
        total = torch.zeros(size, dtype=torch.float64)
        for start in starts:
            total[start : start + patch] += profile
        profiles.append(total)
    return profiles


def full_coverage(
    grid: PatchGrid, box: Sequence[slice] | None = None, sigma_scale: float = SIGMA_SCALE
) -> torch.Tensor:
    """Sum of the importance maps of ALL N windows (the sliding window's normaliser), float32.

    ``box`` restricts the result to a sub-block (three slices), so callers can work on the part of
    the volume the chosen patches touch.
    """
    d, h, w = coverage_profiles(grid, sigma_scale)
    if box is not None:
        d, h, w = d[box[0]], h[box[1]], w[box[2]]
    return (d[:, None, None] * h[None, :, None] * w[None, None, :]).float()


def low_resolution_boxes(grid: PatchGrid, low_shape: Sequence[int]) -> torch.Tensor:
    """(N, 3, 2) [first, last) of each patch's footprint on a low-resolution grid of ``low_shape``.

    Rounded outward, so each footprint holds at least one low-resolution voxel.
    """
    starts = grid.starts().double()
    scale = torch.tensor([lo / full for lo, full in zip(low_shape, grid.volume_shape, strict=True)], dtype=torch.float64)
    patch = torch.tensor(grid.patch_size, dtype=torch.float64)
    first = torch.floor(starts * scale).long()
    last = torch.ceil((starts + patch) * scale).long()
    limit = torch.tensor(list(low_shape), dtype=torch.int64)
    first = torch.minimum(first, limit - 1).clamp(min=0)
    last = torch.maximum(torch.minimum(last, limit), first + 1)
    return torch.stack([first, last], dim=-1)


def box_means(volume: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mean of ``volume`` (..., D, H, W) over each box (N, 3, 2), all boxes at once: (..., N).

    A summed-area table turns every box sum into eight look-ups (inclusion-exclusion), so scoring
    all N patches costs one cumulative sum over the low-resolution map, with gradients intact.
    """
    table = volume.cumsum(-1).cumsum(-2).cumsum(-3)
    table = F.pad(table, (1, 0, 1, 0, 1, 0))
    flat = table.flatten(-3)
    _, h1, w1 = table.shape[-3:]
    total = 0
    for corner in itertools.product((0, 1), repeat=3):
        index = [boxes[:, axis, side] for axis, side in enumerate(corner)]
        sign = (-1) ** (3 - sum(corner))
        linear = (index[0] * h1 + index[1]) * w1 + index[2]
        total = total + sign * flat[..., linear]
    sizes = (boxes[:, :, 1] - boxes[:, :, 0]).prod(dim=1).to(volume.dtype)
    return total / sizes


class _SelectPatches(torch.autograd.Function):
    """Eq. 5, ``x_patch^(k) = <z^(k), X_patch>``, without ever building ``X_patch``.

    Forward: ``z^(k)`` is zero except at its chosen position, so the inner product is that one
    window scaled by its soft value. Backward: the straight-through gradient reaches every entry of
    ``z^(k)``, ``d/dz_n = <grad_k, X_n>``; each window is read as a view of the volume, one at a time.
    """

    @staticmethod
    def forward(ctx, image, selection, indices, starts, patch_size):
        ctx.save_for_backward(image, starts)
        ctx.patch_size = patch_size
        weights = selection.gather(-1, indices.unsqueeze(-1)).squeeze(-1)
        windows = []
        for weight, index in zip(weights, indices.tolist(), strict=True):
            region = tuple(slice(int(s), int(s) + p) for s, p in zip(starts[index].tolist(), patch_size, strict=True))
            windows.append(weight * image[(slice(None), *region)])
        return torch.stack(windows)

    @staticmethod
    def backward(ctx, grad_patches):
        image, starts = ctx.saved_tensors
        grad_selection = None
        if ctx.needs_input_grad[1]:
            grad_selection = grad_patches.new_zeros((grad_patches.shape[0], starts.shape[0]))
            flat_grad = grad_patches.flatten(1)
            for n, start in enumerate(starts.tolist()):
                region = tuple(slice(int(s), int(s) + p) for s, p in zip(start, ctx.patch_size, strict=True))
                grad_selection[:, n] = flat_grad @ image[(slice(None), *region)].reshape(-1)
        return None, grad_selection, None, None, None


def select_patches(
    image: torch.Tensor, grid: PatchGrid, selection: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """(C, D, H, W), selection (K, N), indices (K,) -> (K, C, *patch), differentiable in ``selection``."""
    return _SelectPatches.apply(image, selection, indices, grid.starts(), grid.patch_size)
