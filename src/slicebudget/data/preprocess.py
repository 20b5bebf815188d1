"""MIST-style dataset analysis: intensity normalisation and target spacing.

Facts followed (MIST framework paper, "Data Analysis" and "Window & Normalize"):
- CT: one window and one mean/std for the whole dataset, from the voxels labelled non-zero in the
  training masks: window = their 0.5 and 99.5 percentiles; then z-score with their mean and std.
- MR and other modalities: per image, window at the image's own 0.5 / 99.5 percentiles and z-score
  with its own mean and std; when non-zero voxels are scarce (non-zero : zero below 0.2), the
  statistics come from the non-zero voxels only and zero voxels stay zero.
- Target spacing: the per-axis median; if that is anisotropic (largest / smallest > 3), the
  coarsest axis takes the 10th percentile instead; while any image resampled to it would exceed
  2 GB, every component grows by 25 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

PERCENTILES = (0.5, 99.5)
SPARSE_NONZERO_RATIO = 0.2
ANISOTROPY_RATIO = 3.0
ANISOTROPIC_PERCENTILE = 10.0
MAX_RESAMPLED_BYTES = 2 * 1024**3
SPACING_GROWTH = 1.25
# Percentiles of the dataset-wide foreground come from an even subsample per case: a CT dataset
# can hold 10^8 foreground voxels, while a few hundred thousand per case pin the 0.5 / 99.5
# percentiles to well within the noise. Mean and std use every voxel (running sums).
MAX_SAMPLES_PER_CASE = 200_000


class Normalization(BaseModel):
    """How to map raw intensities to network inputs.

    CT: fixed ``window`` and dataset ``mean`` / ``std``. MR: ``window``, ``mean`` and ``std`` are
    None and each image's own statistics are used when applied.
    """

    model_config = ConfigDict(frozen=True)

    modality: Literal["ct", "mr"]
    window: tuple[float, float] | None = None
    mean: float | None = None
    std: float | None = None

    def apply(self, array: np.ndarray) -> np.ndarray:
        """A new float32 array, windowed and z-scored."""
        data = np.asarray(array, dtype=np.float32)
        if self.modality == "ct":
            if self.window is None or self.mean is None or self.std is None:
                raise ValueError("a CT normalisation needs window, mean and std")
            out = np.clip(data, self.window[0], self.window[1])
            out -= np.float32(self.mean)
            out /= np.float32(max(self.std, 1e-8))
            return out
        return _per_image_zscore(data)


def _per_image_zscore(data: np.ndarray) -> np.ndarray:
    nonzero = data != 0
    n_nonzero = int(nonzero.sum())
    sparse = n_nonzero < SPARSE_NONZERO_RATIO * (data.size - n_nonzero)
    values = data[nonzero] if sparse and n_nonzero else data.ravel()
    if values.size == 0:
        return np.zeros_like(data, dtype=np.float32)
    lo, hi = np.percentile(values, PERCENTILES)
    clipped = np.clip(values, lo, hi)
    mean, std = float(clipped.mean()), float(clipped.std())
    out = np.clip(data, lo, hi)
    out -= np.float32(mean)
    out /= np.float32(max(std, 1e-8))
    if sparse:
        out *= nonzero  # keep the zero background at zero, as MIST does for skull-stripped MR
    return out


@dataclass(frozen=True)
class ForegroundSample:
    """What one training case contributes to the CT statistics."""

    count: int
    total: float
    total_sq: float
    values: np.ndarray  # even subsample for the percentiles


def foreground_sample(image: np.ndarray, labels: np.ndarray, ignore_label: int | None = None,
                      max_samples: int = MAX_SAMPLES_PER_CASE) -> ForegroundSample:
    """Intensity statistics of the labelled (non-background, non-ignore) voxels of one case."""
    mask = labels != 0
    if ignore_label is not None:
        mask &= labels != ignore_label
    values = np.asarray(image)[mask].astype(np.float64)
    step = max(1, int(np.ceil(values.size / max_samples)))
    return ForegroundSample(int(values.size), float(values.sum()), float((values**2).sum()),
                            values[::step].astype(np.float32))


def normalization_from_samples(samples: Iterable[ForegroundSample]) -> Normalization:
    """The dataset-wide CT normalisation from per-case foreground samples."""
    samples = list(samples)
    count = sum(s.count for s in samples)
    if count == 0:
        raise ValueError("no labelled voxels in any training case: cannot fit a CT normalisation")
    pooled = np.concatenate([s.values for s in samples])
    lo, hi = (float(v) for v in np.percentile(pooled, PERCENTILES))
    mean = sum(s.total for s in samples) / count
    variance = max(sum(s.total_sq for s in samples) / count - mean**2, 0.0)
    return Normalization(modality="ct", window=(lo, hi), mean=mean, std=float(np.sqrt(variance)))


def modality_of(channel_name: str) -> Literal["ct", "mr"]:
    return "ct" if channel_name.strip().lower() in {"ct", "computed tomography"} else "mr"


def fit_normalization(dataset, channel: int = 0, cases=None) -> Normalization:
    """Fit the normalisation of one channel of a ``slicebudget.io.Dataset`` on its training cases.

    ``cases`` restricts the fit (for example to the cases a data check kept).
    """
    modality = modality_of(dataset.channel_names.get(str(channel), ""))
    if modality == "mr":
        return Normalization(modality="mr")
    samples = []
    for case in dataset.cases if cases is None else cases:
        loaded = dataset.load_case(case)
        if loaded.label is None:
            continue
        samples.append(foreground_sample(loaded.images[channel].array, loaded.label.array, dataset.ignore_label))
    return normalization_from_samples(samples)


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]] | None = None,
                   max_bytes: int = MAX_RESAMPLED_BYTES, bytes_per_voxel: int = 4) -> tuple[float, float, float]:
    """MIST's target spacing for per-case spacings (any consistent axis order, e.g. canonical z, y, x).

    With ``shapes`` (voxels per axis, same order), the spacing is coarsened by 25 % steps until no
    case resampled to it would exceed ``max_bytes``.
    """
    spacings = np.asarray(spacings, dtype=float)
    if spacings.ndim != 2 or spacings.shape[0] == 0:
        raise ValueError("need at least one spacing triple")
    target = np.median(spacings, axis=0)
    if target.max() / target.min() > ANISOTROPY_RATIO:
        coarsest = int(np.argmax(target))
        target[coarsest] = np.percentile(spacings[:, coarsest], ANISOTROPIC_PERCENTILE)
    if shapes is not None:
        extents = np.asarray(shapes, dtype=float) * spacings  # physical size of each case (mm)
        while (np.prod(np.ceil(extents / target), axis=1) * bytes_per_voxel).max() > max_bytes:
            target = target * SPACING_GROWTH
    return tuple(float(t) for t in target)
