"""The aggregation block (the paper's Eq. 6): blend Gaussian-weighted patch predictions with the
upsampled global prediction through a learnable per-class weight.

Eq. 6 gives one patch region ``sigma(c) * p_w * y_patch + (1 - sigma(c)) * y_up``. Overlapping
patches and the K = N limit need that made precise, so here every voxel takes a normalised,
weighted average of logits over the N windows of the grid that cover it (exactly the sliding
window's blend), where a chosen window contributes its local prediction with weight
``sigma(c) * z * p_w`` and a window that was NOT chosen is stood in for by the global prediction
with weight ``(1 - sigma(c)) * p_w``:

    y_high = (sigma(c) * sum_chosen z p_w y_k + (1 - sigma(c)) * W_skipped * y_up)
             / (sigma(c) * sum_chosen z p_w    + (1 - sigma(c)) * W_skipped)

``W_skipped`` is the Gaussian mass of the windows that were skipped. Consequences: a voxel no chosen
patch touches keeps the global prediction; a voxel inside one isolated patch gets Eq. 6's
sigma(c)-versus-(1 - sigma(c)) trade-off; with K = N nothing is skipped and the result IS the sliding
window's Gaussian blend. ``z`` is the selection's soft value during training (1 at evaluation), so
the loss on ``y_high`` also tells the sampler how much each chosen patch helped.

Random-foreground (the paper's RF baseline) ignores the global prediction wherever a patch exists:
pass ``class_logit=None``.
"""

from __future__ import annotations

import torch

from slicebudget.models.nmsw.patches import PatchGrid, full_coverage, gaussian_importance_map

DENOMINATOR_FLOOR = 1e-12


def _bounding_box(starts: torch.Tensor, patch_size: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    first = starts.min(dim=0).values.tolist()
    last = (starts + torch.tensor(patch_size, device=starts.device)).max(dim=0).values.tolist()
    return tuple(slice(int(a), int(b)) for a, b in zip(first, last, strict=True))


class PatchBlender:
    """Accumulates Gaussian-weighted patch predictions over the bounding box of the chosen patches,
    chunk by chunk (so inference never holds all K patch predictions at once), then blends them
    with the upsampled global prediction.

    ``all_starts`` (K, 3): every patch that will be added (fixes the box). ``weighted``: patches
    come with selection values ``z`` (training); otherwise each counts with weight 1.
    """

    def __init__(self, grid: PatchGrid, all_starts: torch.Tensor, n_classes: int, device, weighted: bool = False):
        self.grid = grid
        self.all_starts = all_starts
        self.box = _bounding_box(all_starts, grid.patch_size) if all_starts.shape[0] else None
        self.box_shape = tuple(s.stop - s.start for s in self.box) if self.box else (0, 0, 0)
        self.importance = gaussian_importance_map(grid.patch_size).to(device)
        # Sum of z * p_w over chosen windows, only when z varies (training). The plain sum of p_w
        # depends on the chosen starts alone, so ``write`` computes it, after the local network's
        # activations are freed: one box-sized tensor less at inference's peak.
        self.weighted = torch.zeros(self.box_shape, device=device) if weighted else None
        self.numerator = torch.zeros((n_classes, *self.box_shape), device=device)

    def _region(self, start: list[int]) -> tuple[slice, slice, slice]:
        offset = [s.start for s in self.box]
        return tuple(slice(s - o, s - o + p) for s, o, p in zip(start, offset, self.grid.patch_size, strict=True))

    def add(self, patch_logits: torch.Tensor, starts: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add (k, C, *patch) predictions at ``starts`` (k, 3), each scaled by ``weights`` (k,)."""
        for k, start in enumerate(starts.tolist()):
            region = self._region(start)
            weight = self.importance if weights is None else self.importance * weights[k]
            if self.weighted is not None:
                self.weighted[region] += weight
            self.numerator[(slice(None), *region)] += weight * patch_logits[k]

    def coverage(self) -> torch.Tensor:
        """Sum of p_w over all chosen windows, on the box (a new tensor)."""
        covered = torch.zeros(self.box_shape, device=self.importance.device)
        for start in self.all_starts.tolist():
            covered[self._region(start)] += self.importance
        return covered

    def write(self, source: torch.Tensor, target: torch.Tensor, class_logit: torch.Tensor | None) -> torch.Tensor:
        """Blend into ``target`` (C, D, H, W) with ``source`` as the upsampled global logits; ``target``
        may be ``source`` itself when no gradient is needed. ``class_logit`` None: local only."""
        if self.box is None:
            return target
        box = self.box
        covered = self.coverage()
        weighted = covered if self.weighted is None else self.weighted
        touched = covered > 0
        if class_logit is None:
            skipped = None
            local_share = global_share = None
        else:
            # In place: the full coverage is a fresh tensor, and ``covered`` needs no gradient.
            skipped = full_coverage(self.grid, box).to(source.device).sub_(covered).clamp_(min=0)
            local_share = torch.sigmoid(class_logit).view(-1, 1, 1, 1)
            global_share = torch.sigmoid(-class_logit).view(-1, 1, 1, 1)
        if torch.is_grad_enabled():
            # All classes at once: each slice of a full-volume tensor costs a full-volume gradient.
            up = source[(slice(None), *box)]
            blended = self._combine(up, self.numerator, weighted, skipped, local_share, global_share)
            target[(slice(None), *box)] = torch.where(touched, blended, up)
            return target
        # Inference: one class at a time, reusing this blender's sums as scratch, keeps the
        # temporaries to two channels of the box (the blend must not raise NMSW's peak memory).
        for c in range(source.shape[0]):
            up = source[(c, *box)]
            shares = (None, None) if skipped is None else (local_share[c, 0], global_share[c, 0])
            blended = self._combine_in_place(up, self.numerator[c], weighted, skipped, *shares)
            target[(c, *box)] = torch.where(touched, blended, up)
            del blended
        return target

    @staticmethod
    def _combine_in_place(up, numerator, weighted, skipped, local_share, global_share) -> torch.Tensor:
        """``_combine`` without autograd, overwriting ``numerator`` (the blender is spent after it)."""
        if skipped is None:
            return numerator.div_(weighted.clamp(min=DENOMINATOR_FLOOR))
        stand_in = skipped * global_share
        denominator = torch.add(stand_in, weighted, alpha=float(local_share)).clamp_(min=DENOMINATOR_FLOOR)
        return numerator.mul_(local_share).addcmul_(stand_in, up).div_(denominator)

    @staticmethod
    def _combine(up, numerator, weighted, skipped, local_share, global_share) -> torch.Tensor:
        if skipped is None:
            return numerator / weighted.clamp(min=DENOMINATOR_FLOOR)
        stand_in = global_share * skipped
        return (local_share * numerator + stand_in * up) / (local_share * weighted + stand_in).clamp(
            min=DENOMINATOR_FLOOR
        )


def blend_predictions(
    up: torch.Tensor,
    patch_logits: torch.Tensor,
    starts: torch.Tensor,
    grid: PatchGrid,
    class_logit: torch.Tensor | None,
    patch_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """New (C, D, H, W) logits: ``up`` (the upsampled global logits) blended with the K patch
    predictions ``patch_logits`` (K, C, *patch) at ``starts`` (K, 3).

    ``class_logit`` (C,): the learnable per-class weight before the sigmoid; ``None`` = local only.
    ``patch_weights`` (K,): each patch's selection value (training); ``None`` = 1. Differentiable.
    """
    blender = PatchBlender(grid, starts, up.shape[0], up.device, weighted=patch_weights is not None)
    if starts.shape[0]:
        blender.add(patch_logits, starts, patch_weights)
    return blender.write(up, up.clone(), class_logit)
