"""Run a propagation method on the annotator's slices, and decide which slices its result may write.

Propagation reads the human slices and the accepted machine slices, and writes machine proposals
only on the other slices where it found foreground. Human and accepted slices are never written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.propagation import PROPAGATORS, PropagationResult, propagate

from napari_slicebudget.logic.ledger import MachineLabel, SliceLedger, foreground_per_slice

METHODS = tuple(PROPAGATORS)


def run_propagation(image: np.ndarray, labels: np.ndarray, ledger: SliceLedger, method: str,
                    progress=None) -> PropagationResult:
    """Propagate from the human and accepted slices with ``method``; ``progress(done, total)``."""
    annotation = ledger.sparse_annotation(labels, count_accepted=True)
    return propagate(np.asarray(image, dtype=np.float32), annotation, method=method, progress=progress)


@dataclass(frozen=True)
class Proposal:
    """What a result may write: ``slices`` get machine labels, ``stale`` earlier proposals are cleared,
    ``found_nothing`` counts slices the method reached without finding foreground (left alone)."""

    slices: np.ndarray
    stale: np.ndarray
    found_nothing: int
    details: dict[int, MachineLabel]


def proposal(result: PropagationResult, ledger: SliceLedger, method: str) -> Proposal:
    protected = ledger.annotated(count_accepted=True)
    reached = result.filled() & ~protected
    found = foreground_per_slice(result.labels)
    slices = np.flatnonzero(reached & found)
    stale = np.setdiff1d(ledger.pending_review, slices)
    # each slice's source is its provenance (learned, interpolation, nearest): a fallback is visible
    details = {int(s): MachineLabel(method, str(result.provenance[s]), float(result.confidence[s])) for s in slices}
    return Proposal(slices, stale, int((reached & ~found).sum()), details)


def slice_edits(current: np.ndarray, slices, new_slices: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """(indices, values) that turn ``current[slices]`` into ``new_slices``, changed voxels only
    (the form ``Labels.data_setitem`` takes, so napari's undo takes them back)."""
    slices = np.asarray(list(slices), dtype=int)
    if slices.size == 0:
        return (np.zeros(0, int),) * np.ndim(current), np.zeros(0, dtype=np.asarray(current).dtype)
    old = np.asarray(current)[slices]
    new = np.asarray(new_slices).astype(old.dtype, copy=False)
    k, rows, cols = np.nonzero(old != new)
    return (slices[k], rows, cols), new[k, rows, cols]
