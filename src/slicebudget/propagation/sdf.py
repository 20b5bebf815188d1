"""Shape-based interpolation: blend signed distance maps of the two bounding annotated slices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from slicebudget.propagation.common import (
    Propagator,
    ProgressCallback,
    PropagationResult,
    fill_inner_gaps,
)
from slicebudget.volume import SparseAnnotation


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance in pixels, negative inside; shifted by half a pixel so the zero level lies on
    the boundary between an inside and an outside pixel (identical masks interpolate to themselves)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, 0.5 - inside, outside - 0.5).astype(np.float32)


class SignedDistancePropagator(Propagator):
    """Linear interpolation of per-class signed distance maps between two annotated slices.

    Each class is interpolated on its own; where two classes both claim a pixel, the one deeper
    inside (smaller signed distance) wins. When one bounding slice lacks a class (for instance it is
    annotated as empty), that side takes a constant distance as large as the other side's deepest
    inside point, so the shape shrinks and vanishes half-way across the gap: the empty slice stays
    empty and nothing crosses it. Distances are in pixels (in-plane spacing assumed isotropic).

    Beyond the outermost annotated slices nothing is filled (no second shape to interpolate towards);
    those slices stay background with confidence 0. Confidence inside a gap is
    ``1 - distance_to_nearer_annotated_slice / gap_width`` (0 between two empty slices).
    """

    def propagate(self, image: np.ndarray, annotation: SparseAnnotation,
                  progress: ProgressCallback | None = None) -> PropagationResult:
        return fill_inner_gaps(annotation, interpolate_gap, progress)


def interpolate_gap(lower: np.ndarray, upper: np.ndarray, width: int) -> np.ndarray:
    """Labels for the ``width - 1`` slices strictly between ``lower`` and ``upper``."""
    out = np.zeros((width - 1, *lower.shape), dtype=lower.dtype)
    best = np.full(out.shape, np.inf, dtype=np.float32)
    classes = np.union1d(np.unique(lower), np.unique(upper))
    t = (np.arange(1, width, dtype=np.float32) / width)[:, None, None]
    for c in classes[classes != 0]:
        d_lo, d_hi = signed_distance(lower == c), signed_distance(upper == c)
        # A side without the class gets a constant as large as the other side's depth: vanish half-way.
        if np.isinf(d_lo).all():
            d_lo = np.full_like(d_hi, -float(d_hi.min()))
        if np.isinf(d_hi).all():
            d_hi = np.full_like(d_lo, -float(d_lo.min()))
        blended = (1.0 - t) * d_lo[None] + t * d_hi[None]
        claim = (blended < 0) & (blended < best)
        out[claim] = c
        best = np.where(claim, blended, best)
    return out
