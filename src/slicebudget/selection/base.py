"""The slice-policy contract shared by every selection strategy, and its argument checks.

A policy picks which slices (indices along canonical axis 0) of a volume an annotator labels.
Policies follow scikit-learn's habit: ``__init__`` only stores keyword arguments, so a policy can be
rebuilt from ``get_params()``; anything random comes from the ``seed`` passed to ``select``.
Random choices are returned as concrete, sorted index arrays, so a run can be replayed from its
manifest without the seed (TorchIO's lesson).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import numpy as np

from slicebudget.errors import UserError

Seed = int | np.random.Generator


def as_generator(seed: Seed) -> np.random.Generator:
    """A numpy Generator from an int seed (or the Generator itself, used as given)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed must be an integer or numpy Generator, got {seed!r}")
    if seed < 0:
        raise UserError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(int(seed))


def check_density(density: float, name: str = "density") -> float:
    """``density`` must lie in (0, 1]; it is the share of slices (or volumes) annotated."""
    try:
        value = float(density)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} must be a number in (0, 1], got {density!r}") from exc
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise UserError(f"{name} must be in (0, 1], got {density}")
    return value


def n_slices_for_density(n_total: int, density: float) -> int:
    """How many of ``n_total`` slices an annotation density stands for: round, but at least 1.

    Rounding (not flooring) keeps rho * D unbiased; at least one slice so a chosen volume always
    carries some annotation.
    """
    density = check_density(density)
    if int(n_total) < 1:
        raise UserError(f"a volume needs at least one slice, got {n_total}")
    # floor(x + 0.5) rounds halves up, so 0.5 * 3 slices -> 2, not Python's banker's 2 / 0 surprises
    return int(min(n_total, max(1, math.floor(density * int(n_total) + 0.5))))


def check_n_slices(n_slices: int, depth: int, name: str | None = None) -> int:
    """``n_slices`` must be an integer in [1, depth]."""
    if isinstance(n_slices, (bool, np.bool_)) or not isinstance(n_slices, (int, np.integer)):
        raise UserError(f"number of slices must be an integer, got {n_slices!r}", name)
    if n_slices < 1:
        raise UserError(f"number of slices must be at least 1, got {n_slices}", name)
    if n_slices > depth:
        raise UserError(f"asked for {n_slices} slices but the volume has only {depth}", name)
    return int(n_slices)


def check_volume(volume: np.ndarray, name: str | None = None) -> np.ndarray:
    array = np.asarray(volume)
    if array.ndim != 3:
        raise UserError(f"expected a 3D volume (D, H, W), got an array of shape {array.shape}", name)
    if array.shape[0] < 1:
        raise UserError("volume has no slices", name)
    return array


def split_by_volume(pool_indices: np.ndarray, depths: Sequence[int]) -> list[np.ndarray]:
    """Turn indices into the concatenated slice pool back into sorted per-volume slice indices."""
    offsets = np.concatenate([[0], np.cumsum(depths)])
    pool_indices = np.sort(np.asarray(pool_indices, dtype=np.int64))
    return [
        pool_indices[(pool_indices >= lo) & (pool_indices < hi)] - lo
        for lo, hi in zip(offsets[:-1], offsets[1:])
    ]


class SlicePolicy(ABC):
    """Base class: validate arguments, then ask the strategy for indices.

    Subclasses implement :meth:`_select` (one volume) and may override :meth:`_select_dataset`
    (several volumes at once, for dataset-level selection).
    """

    name = "base"

    def get_params(self) -> dict:
        """The keyword arguments ``__init__`` stored (scikit-learn convention)."""
        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in params if k != "self"}

    def validate(self) -> None:
        """Check the stored parameters; called before use (scikit-learn checks at fit, not in __init__)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def select(self, volume: np.ndarray, n_slices: int, seed: Seed) -> np.ndarray:
        """Sorted, unique slice indices (axis 0) to annotate; exactly ``n_slices`` of them."""
        self.validate()
        array = check_volume(volume)
        n = check_n_slices(n_slices, array.shape[0])
        chosen = np.asarray(self._select(array, n, as_generator(seed)), dtype=np.int64)
        return _checked(chosen, n, array.shape[0], self.name)

    def select_dataset(
        self,
        volumes: Iterable[np.ndarray],
        total: int,
        seed: Seed,
        quotas: Sequence[int] | None = None,
    ) -> list[np.ndarray]:
        """Pick ``total`` slices across several volumes; per-volume sorted indices come back.

        With ``quotas`` each volume gets exactly its quota (they must sum to ``total``); without,
        the policy decides how the budget spreads, and a volume may get none. ``volumes`` is read
        once, in order, keeping only :meth:`summarise` of each, so a generator that loads volumes
        from disk holds one volume in memory at a time.
        """
        self.validate()
        summaries, depths = [], []
        for volume in volumes:
            array = check_volume(volume)
            depths.append(int(array.shape[0]))
            summaries.append(self.summarise(array))
        return self.select_pooled(summaries, depths, total, seed, quotas)

    def summarise(self, volume: np.ndarray):
        """What dataset-level selection keeps of a volume; positions-only policies need nothing."""
        return None

    def select_pooled(
        self,
        summaries: Sequence,
        depths: Sequence[int],
        total: int,
        seed: Seed,
        quotas: Sequence[int] | None = None,
    ) -> list[np.ndarray]:
        """:meth:`select_dataset` from the volumes' summaries and slice counts."""
        self.validate()
        depths = [int(d) for d in depths]
        if not depths or len(summaries) != len(depths):
            raise UserError("dataset-level selection needs one summary and slice count per volume")
        total = check_n_slices(total, sum(depths))
        if quotas is not None:
            quotas = [check_n_slices(q, d) for q, d in zip(quotas, depths, strict=True)]
            if sum(quotas) != total:
                raise UserError(f"per-volume quotas sum to {sum(quotas)}, not the budget {total}")
        result = self._select_dataset(list(summaries), depths, total, as_generator(seed), quotas)
        result = [np.asarray(r, dtype=np.int64) for r in result]
        if sum(r.size for r in result) != total:
            raise RuntimeError(f"{self.name} picked {sum(r.size for r in result)} slices, not {total}")
        return [_checked(r, r.size, d, self.name) for r, d in zip(result, depths)]

    @abstractmethod
    def _select(self, volume: np.ndarray, n_slices: int, rng: np.random.Generator) -> np.ndarray:
        """The strategy: ``n_slices`` distinct indices into ``volume``'s axis 0 (checked by ``select``)."""

    def _select_dataset(self, summaries: list, depths: list[int], total: int, rng, quotas) -> list[np.ndarray]:
        """Default for policies that look only at positions: quotas -> per-volume selection,
        no quotas -> the same rule applied to the concatenated slice pool."""
        if quotas is not None:
            return [self._select(_positions_only(d), q, rng) for d, q in zip(depths, quotas)]
        return split_by_volume(self._select(_positions_only(sum(depths)), total, rng), depths)


def _positions_only(depth: int) -> np.ndarray:
    # a stand-in volume with slices but no pixels, for policies that never look at pixels
    return np.empty((depth, 0, 0), dtype=np.float32)


def _checked(chosen: np.ndarray, n: int, depth: int, policy: str) -> np.ndarray:
    # The contract every consumer relies on; a violation is a bug in the policy, not user input.
    chosen = np.sort(chosen)
    if chosen.size != n or (chosen.size and (chosen[0] < 0 or chosen[-1] >= depth)) or np.any(np.diff(chosen) == 0):
        raise RuntimeError(f"policy {policy} returned invalid indices {chosen.tolist()} for n={n}, depth={depth}")
    return chosen
