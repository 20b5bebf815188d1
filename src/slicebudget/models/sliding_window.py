"""Sliding-window inference with Gaussian blending, behind MONAI's ``inferer(inputs, network)`` call.

The result is the Gaussian-weighted average of the network's raw outputs (logits), not
probabilities: averaging logits and applying softmax once afterwards is what nnU-Net and MIST do,
and it keeps the inferer usable with networks that output something other than class scores.
Windows overlap by ``overlap`` of the patch size (MIST uses 0.5 with sigma = patch / 8); volumes
smaller than a patch are zero-padded symmetrically and the padding is cropped off again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from slicebudget.models.outputs import logits_from_output, module_device


def gaussian_importance_map(
    patch_size: Sequence[int], sigma_scale: float = 0.125, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A separable Gaussian over the patch, peak 1, with no zeros (every voxel keeps some weight)."""
    weights = None
    for size in patch_size:
        sigma = max(size * sigma_scale, 1e-6)
        coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        axis = torch.exp(-0.5 * (coords / sigma) ** 2)
        weights = axis if weights is None else weights[..., None] * axis
    weights = weights / weights.max()
    # Far corners can underflow to 0; a voxel covered only there would otherwise divide by zero.
    smallest = weights[weights > 0].min()
    weights = torch.where(weights > 0, weights, smallest)
    return weights.to(device=device, dtype=torch.float32)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Evenly spread window starts covering ``[0, size)``; consecutive windows overlap by at least
    ``overlap`` of the patch. ``size`` must be >= ``patch``."""
    if size <= patch:
        return [0]
    stride = max(1.0, patch * (1.0 - overlap))
    n_windows = math.ceil((size - patch) / stride) + 1
    step = (size - patch) / (n_windows - 1)
    return [int(round(i * step)) for i in range(n_windows)]


def sliding_window_inference(
    image: torch.Tensor,
    model: torch.nn.Module,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 4,
    sigma_scale: float = 0.125,
) -> torch.Tensor:
    """Blend ``model`` over windows of ``image`` (B, C, D, H, W); return logits (B, K, D, H, W).

    Windows are sent to the model's device ``batch_size`` at a time; the blended output stays on
    the image's device. Gradients are not tracked.
    """
    if image.ndim != 5:
        raise ValueError(f"expected (B, C, D, H, W), got shape {tuple(image.shape)}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    patch_size = tuple(int(p) for p in patch_size)
    spatial = tuple(image.shape[2:])
    # F.pad lists pads from the last axis backwards.
    before = [max(0, p - s) // 2 for p, s in zip(patch_size, spatial, strict=True)]
    after = [max(0, p - s) - b for p, s, b in zip(patch_size, spatial, before, strict=True)]
    pads = [v for axis in reversed(range(3)) for v in (before[axis], after[axis])]
    padded = F.pad(image, pads) if any(pads) else image
    padded_shape = tuple(padded.shape[2:])

    corners = list(
        itertools.product(*(window_starts(s, p, overlap) for s, p in zip(padded_shape, patch_size, strict=True)))
    )
    model_device = module_device(model, default=image.device)
    weight = gaussian_importance_map(patch_size, sigma_scale, device=image.device)
    norm = torch.zeros(padded_shape, dtype=torch.float32, device=image.device)
    for z, y, x in corners:
        norm[z : z + patch_size[0], y : y + patch_size[1], x : x + patch_size[2]] += weight

    output = None
    with torch.no_grad():
        for b in range(image.shape[0]):
            for first in range(0, len(corners), batch_size):
                chunk = corners[first : first + batch_size]
                windows = torch.stack(
                    [
                        padded[b, :, z : z + patch_size[0], y : y + patch_size[1], x : x + patch_size[2]]
                        for z, y, x in chunk
                    ]
                ).to(model_device)
                logits = logits_from_output(model(windows)).float().to(image.device)
                if output is None:
                    output = torch.zeros(
                        (image.shape[0], logits.shape[1], *padded_shape), dtype=torch.float32, device=image.device
                    )
                for (z, y, x), window_logits in zip(chunk, logits, strict=True):
                    output[b, :, z : z + patch_size[0], y : y + patch_size[1], x : x + patch_size[2]] += (
                        window_logits * weight
                    )
    output = output / norm
    crop = tuple(slice(b, b + s) for b, s in zip(before, spatial, strict=True))
    return output[(slice(None), slice(None), *crop)].contiguous()
