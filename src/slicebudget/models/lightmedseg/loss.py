"""LightMedSeg's training objective: Dice + cross-entropy + boundary loss, weighted by inverse class
frequency, over annotated voxels only (Sec. 3.7). Works for 2D and 3D logits.

- Class weights: ``1 / frequency`` of each class among the annotated voxels of the batch,
  normalised to sum to one over the classes present (an absent class gets weight 0: its
  false positives are still punished by the cross-entropy of the voxels they cover).
- Dice: the class-weighted mean of per-class soft Dice over the batch.
- Cross-entropy: per-voxel CE weighted by the class weight of its label, normalised by the summed
  weights (``torch.nn.functional.cross_entropy``'s convention).
- Boundary: binary cross-entropy of every class probability against its one-hot target, on the
  voxels of a class boundary dilated by ``boundary_radius`` in the L-infinity norm (a cube), with
  class weights, divided by the number of boundary voxels so small and large structures pull alike.
- The three terms are summed with ``weights`` (the paper gives no values; we use 1, 1, 1).
- ``ignore_mask`` (True = unannotated, must not count) removes voxels from every term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTH = 1e-5


def _max_pool(x: torch.Tensor, radius: int) -> torch.Tensor:
    pool = F.max_pool3d if x.ndim == 5 else F.max_pool2d
    return pool(x, kernel_size=2 * radius + 1, stride=1, padding=radius)


def class_boundary(one_hot: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, *spatial) bool: voxels within ``radius`` (L-infinity) of a change of label."""
    present = _max_pool(one_hot, 1)
    absent = -_max_pool(-one_hot, 1)
    edge = (present != absent).any(dim=1, keepdim=True).to(one_hot.dtype)
    if radius > 1:
        edge = _max_pool(edge, radius - 1)
    return edge[:, 0] > 0


def inverse_frequency_weights(one_hot: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(K,) weights proportional to 1 / class frequency over valid voxels, summing to 1 over present classes."""
    reduce = [0] + list(range(2, one_hot.ndim))
    counts = (one_hot * valid.unsqueeze(1)).sum(dim=reduce)
    present = counts > 0
    inverse = torch.where(present, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    return inverse / inverse.sum().clamp(min=1e-12)


def dice_ce_boundary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_mask: torch.Tensor | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    boundary_radius: int = 1,
) -> torch.Tensor:
    """Weighted Dice + CE + boundary loss. ``logits`` (B, K, *spatial), ``target`` (B, *spatial)."""
    if logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} disagree")
    classes = logits.shape[1]
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_mask is None else ~ignore_mask.bool()
    safe_target = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    one_hot = F.one_hot(safe_target, classes).movedim(-1, 1).to(logits.dtype)
    valid_f = valid.to(logits.dtype)
    if valid_f.sum() == 0:
        return logits.sum() * 0.0  # nothing annotated: a zero that keeps the graph
    class_weights = inverse_frequency_weights(one_hot.detach(), valid_f).detach()

    probs = torch.softmax(logits, dim=1) * valid_f.unsqueeze(1)
    reduce = [0] + list(range(2, logits.ndim))
    intersection = (probs * one_hot).sum(dim=reduce)
    denominator = probs.sum(dim=reduce) + (one_hot * valid_f.unsqueeze(1)).sum(dim=reduce)
    dice = (2 * intersection + DICE_SMOOTH) / (denominator + DICE_SMOOTH)
    dice_loss = 1 - (class_weights * dice).sum()

    voxel_weight = class_weights[safe_target] * valid_f
    ce = F.cross_entropy(logits, safe_target, reduction="none")
    ce_loss = (ce * voxel_weight).sum() / voxel_weight.sum().clamp(min=1e-12)

    boundary = class_boundary(one_hot * valid_f.unsqueeze(1), boundary_radius) & valid
    if boundary.any():
        bce = F.binary_cross_entropy_with_logits(
            _class_logits(logits), one_hot, reduction="none"
        )  # (B, K, *spatial)
        per_voxel = (bce * class_weights.view(1, -1, *([1] * (logits.ndim - 2)))).sum(dim=1)
        boundary_loss = (per_voxel * boundary).sum() / boundary.sum()
    else:
        boundary_loss = logits.sum() * 0.0
    w_dice, w_ce, w_boundary = weights
    return w_dice * dice_loss + w_ce * ce_loss + w_boundary * boundary_loss


def _class_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-class binary logits whose sigmoid equals the softmax probability: log p - log(1 - p)."""
    log_p = torch.log_softmax(logits, dim=1)
    log_not_p = torch.log1p(-log_p.exp().clamp(max=1 - 1e-6))
    return log_p - log_not_p
