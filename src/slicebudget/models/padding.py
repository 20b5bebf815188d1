"""Let networks with a fixed stride take any input size: pad up to a multiple, crop the output back.

Padding (rather than refusing sizes the stride does not divide) keeps the registry friendly: a
study can hand a 2D model a 250 x 250 slice or a 3D model a 40 x 96 x 96 patch without resampling.
The pad goes at the high end of each axis, so output voxel ``i`` still lines up with input voxel ``i``
and cropping back is a plain slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size``."""
    return -(-int(size) // int(multiple)) * int(multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the spatial axes of ``x`` (B, C, *spatial) to multiples of ``multiple`` (and at
    least ``minimum``).

    Returns the padded tensor and the original spatial size, for :func:`crop_to_size`.
    Zero is the mean of z-scored images, so padded borders look like plain background.
    """
    size = tuple(int(s) for s in x.shape[2:])
    target = [max(padded_size(s, multiple), minimum) if multiple > 1 else max(s, minimum) for s in size]
    if list(size) == target:
        return x, size
    pads: list[int] = []
    for s, t in zip(reversed(size), reversed(target)):  # F.pad takes the last axis first
        pads.extend([0, t - s])
    return F.pad(x, pads), size


def crop_to_size(y: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on an output (B, K, *spatial)."""
    if tuple(y.shape[2:]) == tuple(size):
        return y
    index = (slice(None), slice(None), *(slice(0, s) for s in size))
    return y[index]
