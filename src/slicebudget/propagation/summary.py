"""What a study records about its propagated training labels: where they came from, how sure they were.

For the training volumes of one run (each a propagation result, its dense truth and which slices were
annotated), pooled over the volumes:

- ``foreground``: the share of the propagated foreground voxels (unannotated slices) per provenance
  that writes labels (``learned``, ``interpolation`` -- for sli2vol its fallback --, ``nearest``);
- ``slices``: the share of the unannotated slices per provenance (those three, plus ``stopped`` and
  ``none``, the slices left empty);
- ``confidence``: the mean calibrated confidence of the slices the method filled, and ``slice_iou``
  the mean IoU those same slices measured against the truth: calibration says the two should agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slicebudget.propagation.calibration import slice_ious
from slicebudget.propagation.common import FILLED, HUMAN, PROVENANCES, PropagationResult

FOREGROUND_KINDS = tuple(p for p in PROVENANCES if p in FILLED)
SLICE_KINDS = tuple(p for p in PROVENANCES if p != HUMAN)


def provenance_summary(items: Sequence[tuple[PropagationResult, np.ndarray, np.ndarray]]) -> dict | None:
    """``items``: (result, dense truth, annotated (D,) bool) per volume; None when no slice was propagated."""
    foreground = dict.fromkeys(FOREGROUND_KINDS, 0)
    slices = dict.fromkeys(SLICE_KINDS, 0)
    confidence, measured = [], []
    for result, truth, annotated in items:
        free = ~np.asarray(annotated, bool)
        area = (result.labels.reshape(len(free), -1) != 0).sum(axis=1)
        ious = slice_ious(truth, result.labels)
        filled = result.filled() & free
        for j in np.flatnonzero(free):
            kind = str(result.provenance[j])
            slices[kind] += 1
            if kind in foreground:
                foreground[kind] += int(area[j])
        confidence += result.confidence[filled].tolist()
        measured += ious[filled].tolist()
    n_slices, n_foreground = sum(slices.values()), sum(foreground.values())
    if n_slices == 0:
        return None
    return {
        "foreground": {k: (v / n_foreground if n_foreground else None) for k, v in foreground.items()},
        "slices": {k: v / n_slices for k, v in slices.items()},
        "confidence": float(np.mean(confidence)) if confidence else None,
        "slice_iou": float(np.mean(measured)) if measured else None,
        "filled_slices": len(confidence),
    }
