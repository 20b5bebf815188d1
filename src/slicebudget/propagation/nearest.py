"""Copy the nearest annotated slice into each gap: the simplest baseline."""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.common import (
    NEAREST,
    Propagator,
    ProgressCallback,
    PropagationResult,
    fill_inner_gaps,
)
from slicebudget.volume import SparseAnnotation


class NearestSlicePropagator(Propagator):
    """Fill each slice between two annotated slices with a copy of the nearer one.

    Ties (a slice exactly half-way) take the lower slice. An annotated-empty neighbour is copied like
    any other, so empty slices stay empty and nothing crosses them. Beyond the outermost annotated
    slices nothing is filled: copying a mask without looking at the image has no way to know where
    the object ends, so those slices stay background with confidence 0.

    Confidence follows :func:`~slicebudget.propagation.common.interpolation_confidence`.
    """

    fills_as = NEAREST

    def propagate(self, image: np.ndarray, annotation: SparseAnnotation,
                  progress: ProgressCallback | None = None) -> PropagationResult:
        return fill_inner_gaps(annotation, copy_nearer, progress, self.fills_as)


def copy_nearer(lower: np.ndarray, upper: np.ndarray, width: int) -> np.ndarray:
    """Each of the ``width - 1`` slices between ``lower`` and ``upper`` is a copy of the nearer one."""
    return np.stack([lower if k <= width - k else upper for k in range(1, width)])
