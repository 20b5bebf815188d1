"""Losses for Med-DANet V2: a per-slice soft Dice (the paper's Eq. 9) and cross-entropy.

The Dice is computed per slice, over all classes (background included, as Eq. 9 sums over C), so
each slice's decision is judged on that slice alone: a slice without foreground scores a perfect 1
when skipped and loses Dice for every stray foreground pixel a segmentation would produce, which is
what lets the GFLOPs term teach the policy to skip empty slices. Voxels where ``valid`` is False
(unannotated) count nowhere; a slice with no valid voxel contributes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SLICE_DICE_SMOOTH = 1.0  # one pixel: keeps the Dice of empty slices defined and forgiving


def _one_hot(target: torch.Tensor, valid: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    safe = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    return F.one_hot(safe, classes).movedim(-1, 1).to(dtype) * valid.unsqueeze(1).to(dtype)


def per_slice_dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B,) ``1 - mean-over-classes soft Dice`` of each slice, 0 for slices without valid voxels."""
    classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1) * valid.unsqueeze(1).to(logits.dtype)
    one_hot = _one_hot(target, valid, classes, logits.dtype)
    intersection = (probs * one_hot).sum(dim=(2, 3))
    denominator = probs.sum(dim=(2, 3)) + one_hot.sum(dim=(2, 3))
    dice = (2 * intersection + SLICE_DICE_SMOOTH) / (denominator + SLICE_DICE_SMOOTH)
    has_valid = valid.flatten(1).any(dim=1).to(logits.dtype)
    return (1 - dice.mean(dim=1)) * has_valid


def mean_over_valid_slices(per_slice: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    has_valid = valid.flatten(1).any(dim=1).to(per_slice.dtype)
    return (per_slice * has_valid).sum() / has_valid.sum().clamp(min=1)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    safe = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    per_voxel = F.cross_entropy(logits, safe, reduction="none") * valid.to(logits.dtype)
    return per_voxel.sum() / valid.sum().clamp(min=1)



def per_slice_cross_entropy(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B,) mean cross-entropy over each slice's valid pixels (0 for a slice without any)."""
    safe = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    per_voxel = F.cross_entropy(logits, safe, reduction="none") * valid.to(logits.dtype)
    return per_voxel.flatten(1).sum(dim=1) / valid.flatten(1).sum(dim=1).clamp(min=1)
