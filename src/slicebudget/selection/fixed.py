"""Fixed-interval selection: every n-th slice, with equal margins at both ends of the volume.

The slice-selection study found this as good as random or unsupervised active learning when each
volume gets the same number of slices, and recommends it for its simplicity.
"""

from __future__ import annotations

import numpy as np

from slicebudget.selection.base import SlicePolicy


def fixed_interval_indices(depth: int, n_slices: int) -> np.ndarray:
    """``n_slices`` indices spaced ``depth / n_slices`` apart, mirror-symmetric about the centre.

    Each pick sits at the centre of one of ``n_slices`` equal bins. The lower half is floored and the
    upper half mirrored from it, so the gap before the first pick equals the gap after the last one
    exactly (plain rounding of every centre would leave the two margins off by one).
    """
    step = depth / n_slices
    half = n_slices // 2
    lower = np.floor((np.arange(half) + 0.5) * step).astype(np.int64)
    upper = (depth - 1 - lower)[::-1]
    middle = np.array([(depth - 1) // 2], dtype=np.int64) if n_slices % 2 else np.empty(0, dtype=np.int64)
    return np.concatenate([lower, middle, upper])


class FixedIntervalPolicy(SlicePolicy):
    """Every n-th slice (n = D / n_slices), margins balanced. Ignores the seed: it is deterministic."""

    name = "fixed"

    def __init__(self):
        pass

    def _select(self, volume: np.ndarray, n_slices: int, rng: np.random.Generator) -> np.ndarray:
        return fixed_interval_indices(volume.shape[0], n_slices)
