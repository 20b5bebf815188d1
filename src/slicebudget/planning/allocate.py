"""Integer allocations (n volumes, k slices each, level) at a budget, and the searches over them.

At a budget, each n gets the most slices per volume the budget pays for (never more than the
volumes' depth); spending less is never better on a surface that rises in k, and the user can
always annotate fewer. n never exceeds the volumes available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.planning.costs import CostModel

UNITS = ("slices", "hours")
# The target search evaluates at most this many (n, k) pairs per level; larger grids are thinned
# geometrically (the cheapest allocation found is then within a few percent of the cheapest).
MAX_N_VALUES, MAX_K_VALUES = 400, 120


@dataclass(frozen=True)
class Allocations:
    n: np.ndarray
    k: np.ndarray
    level: np.ndarray

    def __len__(self) -> int:
        return int(self.n.size)

    def slices(self) -> np.ndarray:
        return self.n * self.k

    def take(self, index) -> Allocations:
        return Allocations(self.n[index], self.k[index], self.level[index])


def _across_levels(n: np.ndarray, k: np.ndarray, n_levels: int) -> Allocations:
    return Allocations(np.tile(n, n_levels), np.tile(k, n_levels), np.repeat(np.arange(n_levels), n.size))


def at_budget(budget: float, unit: str, costs: CostModel, n_max: int, depth: int, n_levels: int,
              n_min: int = 1, k_min: int = 1) -> Allocations:
    """For each n in n_min..n_max the largest k within the budget and ``depth`` (k >= k_min), at every level."""
    n = np.arange(max(int(n_min), 1), max(int(n_max), 0) + 1, dtype=float)
    if unit == "slices":
        k = np.floor(budget / n + 1e-9)
    else:
        k = costs.slices_within(budget * 3600.0, n)
    k = np.minimum(k, depth)
    keep = k >= max(k_min, 1)
    return _across_levels(n[keep], k[keep], n_levels)


def _thinned(top: int, count: int) -> np.ndarray:
    if top <= count:
        return np.arange(1, top + 1, dtype=float)
    return np.unique(np.round(np.geomspace(1, top, count))).astype(float)


def full_grid(n_max: int, depth: int, n_levels: int, n_min: int = 1, k_min: int = 1) -> Allocations:
    """Every (n, k, level) with n_min <= n <= n_max and k_min <= k <= depth (thinned when large)."""
    n, k = np.meshgrid(_thinned(n_max, MAX_N_VALUES), _thinned(depth, MAX_K_VALUES), indexing="ij")
    keep = (n >= n_min) & (k >= k_min)
    return _across_levels(n[keep], k[keep], n_levels)


def cost_of(alloc: Allocations, unit: str, costs: CostModel) -> np.ndarray:
    """Cost in the budget's unit: slices, or hours from the cost model."""
    if unit == "slices":
        return alloc.slices()
    return costs.seconds(alloc.n, alloc.k) / 3600.0


def materially_different(alloc: Allocations, best: int) -> np.ndarray:
    """Allocations a user would call another plan than ``best``: another level, or at least 25% more
    or fewer volumes (n = 8 against n = 9 is the same advice)."""
    ratio = alloc.n / alloc.n[best]
    return (alloc.level != alloc.level[best]) | (ratio >= 1.25) | (ratio <= 1 / 1.25)
