"""Unsupervised active learning by core-set: greedy k-center over per-slice feature vectors.

The slices chosen cover feature space as evenly as possible: every slice is close to some annotated
one. The slice-selection study ran this within each volume and found it no better than random or
fixed-interval picks; its discussion suggests selecting across the whole dataset might do better,
because similar volumes then share annotations. :meth:`CoresetPolicy.select_dataset` does that:
features are fitted on the pooled slices and k-center runs over the pool, with or without an equal
quota per volume.
"""

from __future__ import annotations

import numpy as np

from slicebudget.errors import UserError
from slicebudget.selection.base import SlicePolicy, split_by_volume
from slicebudget.selection.features import get_features, slice_thumbnails
from slicebudget.selection.kcenter import kcenter_greedy

STARTS = ("mean", "random")


class CoresetPolicy(SlicePolicy):
    """Greedy k-center over slice features.

    ``features``: an extractor name ("intensity" or "encoder") or an extractor object with
    ``thumbnail_size`` and ``fit_transform(thumbnails, seed)``. ``n_features`` and
    ``thumbnail_size`` (None: the extractor's default) configure a named extractor.
    ``start``: "mean" begins at the slice nearest the mean feature (deterministic, a typical slice
    rather than an outlier); "random" begins at a seeded random slice.
    """

    name = "coreset"

    def __init__(
        self,
        features="intensity",
        n_features: int = 32,
        thumbnail_size: int | None = None,
        start: str = "mean",
    ):
        self.features = features
        self.n_features = n_features
        self.thumbnail_size = thumbnail_size
        self.start = start

    def validate(self) -> None:
        if self.start not in STARTS:
            raise UserError(f"unknown coreset start {self.start!r}; choose one of: {', '.join(STARTS)}")
        self._extractor()

    def _extractor(self):
        if not isinstance(self.features, str):
            return self.features
        params = {"n_features": self.n_features}
        if self.thumbnail_size is not None:
            params["thumbnail_size"] = self.thumbnail_size
        return get_features(self.features, **params)

    def summarise(self, volume: np.ndarray) -> np.ndarray:
        return slice_thumbnails(volume, self._extractor().thumbnail_size)

    def _features(self, thumbnails: list[np.ndarray], rng: np.random.Generator):
        features = self._extractor().fit_transform(np.concatenate(thumbnails), seed=int(rng.integers(2**31 - 1)))
        first = int(rng.integers(len(features))) if self.start == "random" else None
        return features, first

    def _select(self, volume: np.ndarray, n_slices: int, rng: np.random.Generator) -> np.ndarray:
        features, first = self._features([self.summarise(volume)], rng)
        return np.sort(kcenter_greedy(features, n_slices, first=first))

    def _select_dataset(self, summaries, depths, total, rng, quotas):
        features, first = self._features(summaries, rng)
        groups = np.repeat(np.arange(len(depths)), depths) if quotas is not None else None
        if first is not None and quotas is not None:
            # a seeded start must fall in a volume that may receive slices at all
            open_points = np.flatnonzero(np.asarray(quotas)[groups] > 0)
            first = int(open_points[first % open_points.size])
        order = kcenter_greedy(features, total, first=first, groups=groups, quotas=quotas)
        return split_by_volume(order, depths)
