"""The paper's random-foreground (RF) baseline, in the same harness as NMSW.

RF uses the same global network, but instead of ranking patches it draws K of them uniformly,
without replacement, among the patches whose low-resolution footprint the coarse prediction marks
as foreground anywhere; where a chosen patch exists its (Gaussian-blended) prediction replaces the
global one, elsewhere the upsampled global prediction is kept. When fewer than K patches hold
foreground, all of them are taken (RF never spends patches on background).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from slicebudget.inference.nmsw.inferer import resolve_nmsw_model, run_patch_inference, validate_k
from slicebudget.models.nmsw.model import NMSWModel
from slicebudget.models.nmsw.patches import PatchGrid, box_means, low_resolution_boxes


def foreground_patches(coarse: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """(N,) bool: patches whose footprint on the coarse grid holds a voxel predicted as foreground."""
    foreground = (coarse.argmax(dim=0) != 0).float()
    boxes = low_resolution_boxes(grid, foreground.shape).to(coarse.device)
    return box_means(foreground, boxes) > 0


def draw_foreground(coarse: torch.Tensor, grid: PatchGrid, k: int, rng: np.random.Generator) -> torch.Tensor:
    """Up to ``k`` distinct foreground patch positions, uniformly at random."""
    candidates = torch.nonzero(foreground_patches(coarse, grid)).flatten().cpu().numpy()
    if candidates.size == 0:
        return torch.zeros(0, dtype=torch.int64, device=coarse.device)
    chosen = rng.choice(candidates, size=min(k, candidates.size), replace=False)
    return torch.as_tensor(np.sort(chosen), dtype=torch.int64, device=coarse.device)


class RandomForegroundInferer:
    """``inferer(image, network=None)`` -> logits; ``seed`` fixes the draw (same for every call)."""

    needs_nmsw_model = True  # it draws among the patches NMSW's global network marks as foreground

    def __init__(self, model: NMSWModel, k: int, seed: int = 0, batch_size: int = 4):
        self.model = model
        self.k = validate_k(k)
        self.seed = int(seed)
        self.batch_size = int(batch_size)

    @classmethod
    def build(cls, network, patch_size: Sequence[int], *, k: int, batch_size: int = 4, checkpoint: str | None = None,
              seed: int = 0) -> RandomForegroundInferer:
        return cls(resolve_nmsw_model("random_foreground", network, patch_size, checkpoint), k, int(seed), batch_size)

    def __call__(self, inputs: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        rng = np.random.default_rng(self.seed)

        def choose(coarse: torch.Tensor, patch_logits: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
            return draw_foreground(coarse, grid, self.k, rng)

        return run_patch_inference(self.model, inputs, network, choose, self.batch_size, local_only=True)
