"""Per-slice feature vectors for core-set selection, from pluggable extractors.

Every extractor starts from the same thumbnails: each slice area-averaged down to a small square
and z-scored per volume (so volumes from different scanners share one scale in a dataset pool).
An extractor then has ``thumbnail_size`` and ``fit_transform(thumbnails (N, s, s), seed) -> (N, F)``;
it is fitted on exactly the slices it describes (one volume, or the pooled slices of a dataset).

- ``intensity``: the thumbnail's pixels reduced by PCA (scikit-learn, randomized solver, seeded).
- ``encoder``: the bottleneck of a small convolutional autoencoder trained briefly on the
  thumbnails themselves (see :mod:`slicebudget.selection.encoder`); no pretrained weights are
  downloaded or shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.errors import UserError


def _bin_edges(n: int, bins: int) -> np.ndarray:
    return np.floor(np.arange(bins) * n / bins).astype(np.intp)


def _area_mean(array: np.ndarray, bins: int, axis: int) -> np.ndarray:
    """Mean over ``bins`` near-equal runs along ``axis`` (runs of length 1 repeat when upsampling)."""
    n = array.shape[axis]
    edges = _bin_edges(n, bins)
    sums = np.add.reduceat(array, edges, axis=axis, dtype=np.float32)
    # reduceat gives a[edges[i]] when an edge repeats, i.e. a run of length one.
    counts = np.maximum(np.diff(np.append(edges, n)), 1).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = bins
    return sums / counts.reshape(shape)


def slice_thumbnails(volume: np.ndarray, size: int) -> np.ndarray:
    """(D, size, size) float32: each slice area-averaged to ``size`` x ``size``, z-scored per volume."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise UserError(f"expected a 3D volume, got shape {volume.shape}")
    thumbs = _area_mean(_area_mean(volume, size, axis=1), size, axis=2)
    std = float(thumbs.std())
    thumbs = thumbs - np.float32(thumbs.mean())
    # A constant volume has no structure to describe; leave it at zero rather than divide by 0.
    return thumbs / np.float32(std) if std > 0 else thumbs


@dataclass(eq=False)
class IntensityPCAFeatures:
    """Downsampled intensities reduced by PCA fitted on the slices being described.

    ``n_threads`` caps BLAS threads during the fit (None: the library default). One is the default
    because a volume's PCA is a few milliseconds of work, less than waking a thread pool, and on a
    shared machine oversubscribed OpenBLAS threads spin: a 300 x 1024 fit measured 0.07 s on one
    thread and 0.5 s on two under load (a 50,000-slice pool: 2.8 s against 9.4 s).
    """

    name = "intensity"
    thumbnail_size: int = 32
    n_features: int = 32
    n_threads: int | None = 1

    def fit_transform(self, thumbnails: np.ndarray, seed: int) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.n_threads, user_api="blas"):
            return self._fit_transform(thumbnails, seed)

    def _fit_transform(self, thumbnails: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.decomposition import PCA

        flat = np.asarray(thumbnails, dtype=np.float32).reshape(len(thumbnails), -1)
        k = min(int(self.n_features), *flat.shape)
        if k < 1:
            raise UserError("cannot compute features of an empty slice set")
        # The randomized solver is fast for the usual k << features; it needs k < min(shape).
        solver = "randomized" if k < min(flat.shape) else "full"
        self.pca_ = PCA(n_components=k, svd_solver=solver, random_state=int(seed))
        return self.pca_.fit_transform(flat).astype(np.float32)


def _encoder_class():
    from slicebudget.selection.encoder import ConvEncoderFeatures

    return ConvEncoderFeatures


# name -> zero-argument callable returning the class; the encoder imports torch only when asked for.
FEATURES = {
    "intensity": lambda: IntensityPCAFeatures,
    "encoder": _encoder_class,
}


def get_features(name: str, **params):
    """Build a feature extractor by name; unknown names list the valid ones."""
    if name not in FEATURES:
        raise UserError(f"unknown feature extractor {name!r}; choose one of: {', '.join(sorted(FEATURES))}")
    cls = FEATURES[name]()
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"bad parameters for feature extractor {name!r}: {exc}") from exc
