"""Uniform random selection without replacement."""

from __future__ import annotations

import numpy as np

from slicebudget.selection.base import SlicePolicy


class RandomPolicy(SlicePolicy):
    """Uniformly random slices without replacement.

    The picks are the first ``n`` entries of one seeded permutation, so for a fixed seed a higher
    density keeps every slice a lower density chose (nested budgets make paired comparisons cleaner).
    """

    name = "random"

    def __init__(self):
        pass

    def _select(self, volume: np.ndarray, n_slices: int, rng: np.random.Generator) -> np.ndarray:
        return np.sort(rng.permutation(volume.shape[0])[:n_slices])
