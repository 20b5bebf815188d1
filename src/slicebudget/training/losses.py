"""Dice + cross-entropy that sees only annotated voxels.

Sparse labels carry no information on unannotated slices, so those voxels must contribute nothing:
not to the cross-entropy average, not to the Dice counts, and so not to any gradient. Their target
values are replaced before use, so any value there (even the nnU-Net ignore label) is harmless.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTH = 1e-5


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over voxels where ``mask`` is True (0 when nothing is annotated)."""
    safe_target = torch.where(mask, target, torch.zeros_like(target))
    per_voxel = F.cross_entropy(logits, safe_target, reduction="none")
    per_voxel = torch.where(mask, per_voxel, torch.zeros_like(per_voxel))
    return per_voxel.sum() / mask.sum().clamp(min=1)


def masked_soft_dice(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soft Dice over the foreground classes, counted over the whole batch and annotated voxels only.

    Counting over the batch (rather than per sample) keeps the score defined when a sample holds
    few annotated voxels, which is common with sparse slices; a class absent from both prediction
    and target scores ~1 thanks to the smoothing term, so it neither helps nor hurts.
    """
    n_classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1)
    safe_target = torch.where(mask, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe_target, n_classes).movedim(-1, 1).to(probs.dtype)
    weight = mask.unsqueeze(1).to(probs.dtype)
    probs = torch.where(weight > 0, probs, torch.zeros_like(probs))
    one_hot = one_hot * weight
    first = 1 if n_classes > 1 else 0  # background Dice is uninformative when foreground exists
    reduce_dims = [0] + list(range(2, logits.ndim))
    intersection = (probs * one_hot).sum(dim=reduce_dims)[first:]
    predicted = probs.sum(dim=reduce_dims)[first:]
    actual = one_hot.sum(dim=reduce_dims)[first:]
    dice = (2 * intersection + DICE_SMOOTH) / (predicted + actual + DICE_SMOOTH)
    return dice.mean()


def masked_dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1 - soft Dice) + cross-entropy, both restricted to annotated voxels.

    ``logits``: (B, K, *spatial); ``target``: (B, *spatial) integer classes; ``mask``: (B, *spatial)
    bool, True where the voxel is annotated.
    """
    if logits.ndim != target.ndim + 1 or logits.shape[2:] != target.shape[1:] or target.shape != mask.shape:
        raise ValueError(
            f"shapes disagree: logits {tuple(logits.shape)}, target {tuple(target.shape)}, mask {tuple(mask.shape)}"
        )
    target = target.long()
    mask = mask.bool()
    return masked_cross_entropy(logits, target, mask) + (1 - masked_soft_dice(logits, target, mask))
