"""Differentiable cropping and its reverse, by bilinear sampling (``affine_grid`` + ``grid_sample``).

A window of ``crop`` x ``crop`` pixels centred at a continuous pixel position is read with bilinear
interpolation, so the loss can move the centre (as in AdaFocus V2, which Med-DANet V2 follows).
The reverse places features computed on the window back into a zero map of the full slice at the
same position, at whatever scale the features have (the window and slice shrink alike).

Centres are in pixel units of the full slice, ``(row, column)``, pixel ``i`` covering ``[i, i+1)``;
an integer centre therefore cuts exactly pixels ``centre - crop/2 .. centre + crop/2 - 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def centre_from_fraction(fraction: torch.Tensor, crop: int, size: tuple[int, int]) -> torch.Tensor:
    """Map fractions in [0, 1] (B, 2) to centres (B, 2) that keep the whole window inside the slice."""
    free = torch.tensor([size[0] - crop, size[1] - crop], dtype=fraction.dtype, device=fraction.device)
    return crop / 2 + fraction * free


def _translation(centre: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (x, y) position of the centre in grid_sample's [-1, 1] coordinates."""
    return 2 * centre[:, 1] / size[1] - 1, 2 * centre[:, 0] / size[0] - 1


def crop_window(x: torch.Tensor, centre: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, crop, crop) windows around ``centre`` (B, 2) pixels."""
    b, c, h, w = x.shape
    tx, ty = _translation(centre, (h, w))
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = crop / w
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = crop / h
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, [b, c, crop, crop], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def place_window(features: torch.Tensor, centre: torch.Tensor, crop: int, size: tuple[int, int]) -> torch.Tensor:
    """Put window features (B, C, h, w) back into a zero map of the full slice at their scale.

    ``crop`` and ``size`` are in full-slice pixels; the features may be at any scale ``crop / h``.
    """
    b, c, fh, fw = features.shape
    scale = crop / fh
    out_h, out_w = round(size[0] / scale), round(size[1] / scale)
    tx, ty = _translation(centre, size)
    theta = torch.zeros(b, 2, 3, dtype=features.dtype, device=features.device)
    theta[:, 0, 0] = size[1] / crop
    theta[:, 0, 2] = -tx * size[1] / crop
    theta[:, 1, 1] = size[0] / crop
    theta[:, 1, 2] = -ty * size[0] / crop
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
