"""Copy the nearest annotated slice into each gap: the simplest baseline."""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.common import (
    ProgressCallback,
    PropagationResult,
    find_gaps,
    interpolation_confidence,
    report,
    start_result,
)
from slicebudget.volume import SparseAnnotation


class NearestSlicePropagator:
    """Fill each slice between two annotated slices with a copy of the nearer one.

    Ties (a slice exactly half-way) take the lower slice. An annotated-empty neighbour is copied like
    any other, so empty slices stay empty and nothing crosses them. Beyond the outermost annotated
    slices nothing is filled: copying a mask without looking at the image has no way to know where
    the object ends, so those slices stay background with confidence 0.

    Confidence follows :func:`~slicebudget.propagation.common.interpolation_confidence`.
    """

    def __init__(self):
        pass

    def propagate(
        self,
        image: np.ndarray,
        annotation: SparseAnnotation,
        progress: ProgressCallback | None = None,
    ) -> PropagationResult:
        labels, confidence = start_result(annotation)
        gaps = [g for g in find_gaps(annotation.annotated) if g.before is not None and g.after is not None]
        for done, gap in enumerate(gaps):
            for j in gap.slices:
                nearer = gap.before if j - gap.before <= gap.after - j else gap.after
                labels[j] = annotation.labels[nearer]
                confidence[j] = interpolation_confidence(annotation, gap, j)
            report(progress, done + 1, len(gaps))
        return PropagationResult(labels, confidence)
