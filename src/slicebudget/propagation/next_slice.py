"""Next best slice: after some slices are painted, which one should the annotator paint next?

The slice where the propagated result is expected to lose the most volume IoU. Volume IoU is scored per
class and averaged over classes, so a voxel of a small class (a tumour inside an organ) weighs as
much as its share of that class: a wrong voxel costs ``1 / (the class's propagated volume)``. For
each slice not yet annotated and each class, the expected loss is
``(1 - confidence) x size / volume`` plus the disagreement between the learned result and the
signed-distance interpolation (pixels of that class where the two differ, over the same volume):

- ``confidence`` is the calibrated one (the IoU the slice is expected to have);
- ``size`` is the class's area the slice is believed to hold: its propagated area, or for a slice
  left empty, the area of the nearest slice that holds the class (what would be missed if the
  object went on there);
- the disagreement is the count of pixels where the two methods differ (both can be wrong, but
  where they disagree at least one is).

Within a class, a slice through the middle of a large uncertain object is worth more than a thin
uncertain end. A painted slice also fixes its neighbours (they are propagated from it),
so a candidate is scored by the expected error summed over the unannotated slices within ``reach``
of it: the centre of an uncertain stretch beats its edge next to a painted slice. A volume with no
painted slice has nothing to propagate from: refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation.calibration import believed_size
from slicebudget.propagation.common import PropagationResult
from slicebudget.volume import SparseAnnotation

REACH = 2  # slices either side a painted slice is credited with fixing


@dataclass(frozen=True)
class SliceSuggestion:
    """The suggested slice; every slice's expected loss of volume IoU (0 on annotated slices) and its
    score as a candidate (the expected error within ``reach`` of it; 0 on annotated slices)."""

    slice: int
    expected_error: np.ndarray
    score: np.ndarray


def _areas(labels: np.ndarray) -> np.ndarray:
    return (labels.reshape(labels.shape[0], -1) != 0).sum(axis=1).astype(float)


def expected_error(result: PropagationResult, other: PropagationResult | None = None) -> np.ndarray:
    """(D,) expected loss of volume IoU per slice of ``result``, summed over its classes (see the module
    docstring)."""
    error = np.zeros(result.labels.shape[0])
    classes = np.unique(result.labels)
    for c in classes[classes != 0]:
        mask = result.labels == c
        volume = float(mask.sum())
        error += (1.0 - result.confidence) * believed_size(mask) / volume
        if other is not None:
            error += _areas(mask != (other.labels == c)) / volume
    return np.where(result.provenance == "human", 0.0, error)


def suggest_next_slice(
    image: np.ndarray,
    annotation: SparseAnnotation,
    method: str = "sli2vol",
    result: PropagationResult | None = None,
    reach: int = REACH,
    **params,
) -> SliceSuggestion:
    """The unannotated slice with the largest expected error; ``result`` reuses a propagation of
    ``annotation`` with ``method`` already made. Ties go to the slice farthest from annotated ones."""
    from slicebudget.propagation import propagate

    if not annotation.annotated.any():
        raise UserError("next best slice needs at least one painted slice to propagate from")
    if annotation.annotated.all():
        raise UserError("every slice is already annotated; there is no next slice to suggest")
    result = result if result is not None else propagate(image, annotation, method=method, **params)
    other = propagate(image, annotation, method="sdf") if method != "sdf" else None
    error = expected_error(result, other)
    kernel = np.ones(2 * reach + 1)
    gain = np.where(annotation.annotated, 0.0, np.convolve(np.where(annotation.annotated, 0.0, error), kernel, "same"))
    free = np.flatnonzero(~annotation.annotated)
    distance = np.abs(free[:, None] - annotation.annotated_slices[None, :]).min(axis=1)
    # Largest error first, then the slice farthest from any annotated one, then the lowest index.
    order = np.lexsort((free, -distance, -gain[free]))
    return SliceSuggestion(int(free[order[0]]), error, gain)
