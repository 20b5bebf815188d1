"""Run a propagation method on the annotator's slices and turn its result into undoable edits.

Edits are (indices, values) pairs for ``Labels.data_setitem``, so napari's undo takes them back.
Slices a person annotated (or accepted) are never part of an edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.propagation import PROPAGATORS, PropagationResult, propagate

from napari_slicebudget.logic.ledger import SliceLedger

METHODS = tuple(PROPAGATORS)


@dataclass(frozen=True, eq=False)
class Edits:
    """Voxels to change (a tuple of index arrays), their new values, and the slices touched."""

    indices: tuple[np.ndarray, ...]
    values: np.ndarray
    slices: np.ndarray

    @property
    def size(self) -> int:
        return int(self.values.size)


def protected_slices(ledger: SliceLedger) -> np.ndarray:
    """Human-annotated and accepted slices: propagation reads them and never writes them."""
    return ledger.human_annotated | (ledger.accepted & ledger.has_foreground)


def run_propagation(image: np.ndarray, labels: np.ndarray, ledger: SliceLedger, method: str,
                    progress=None) -> PropagationResult:
    """Propagate from the protected slices with ``method``; ``progress(done, total)`` as it goes."""
    annotation = ledger.sparse_annotation(labels, count_accepted=True)
    return propagate(np.asarray(image, dtype=np.float32), annotation, method=method, progress=progress)


def target_slices(result: PropagationResult, ledger: SliceLedger) -> np.ndarray:
    """Slices the result fills: reached by propagation (confidence > 0) and not protected."""
    return np.flatnonzero((result.confidence > 0) & ~protected_slices(ledger))


def _edits_from_mask(changed: np.ndarray, new_values: np.ndarray, slices) -> Edits:
    indices = np.nonzero(changed)
    return Edits(indices, new_values[indices], np.asarray(sorted(set(int(s) for s in slices)), dtype=int))


def working_layer_edits(current: np.ndarray, result: PropagationResult, ledger: SliceLedger) -> Edits:
    """Edits writing the result into the working labels layer.

    Target slices take the propagated labels; slices still pending from an earlier run that this run
    does not reach are cleared, so the layer shows only this run's output.
    """
    current = np.asarray(current)
    targets = target_slices(result, ledger)
    stale = np.setdiff1d(ledger.pending_review, targets)
    new = np.array(current, copy=True)
    new[targets] = result.labels[targets].astype(current.dtype, copy=False)
    new[stale] = 0
    touched = np.union1d(targets, stale)
    changed = np.zeros(current.shape, dtype=bool)
    changed[touched] = current[touched] != new[touched]
    return _edits_from_mask(changed, new, targets)


def separate_layer_data(result: PropagationResult, ledger: SliceLedger, dtype=np.uint8) -> np.ndarray:
    """Data for a separate "propagated" layer: only the machine-made slices."""
    out = np.zeros(result.labels.shape, dtype=dtype)
    targets = target_slices(result, ledger)
    out[targets] = result.labels[targets]
    return out


def clear_edits(labels: np.ndarray, slices) -> Edits:
    """Edits setting every voxel of ``slices`` back to background (rejecting them)."""
    labels = np.asarray(labels)
    slices = np.asarray(list(slices), dtype=int)
    changed = np.zeros(labels.shape, dtype=bool)
    changed[slices] = labels[slices] != 0
    return _edits_from_mask(changed, np.zeros_like(labels), slices)


def copy_edits(target: np.ndarray, source: np.ndarray, slices) -> Edits:
    """Edits copying ``slices`` of ``source`` into ``target`` (accepting from a separate layer)."""
    target, source = np.asarray(target), np.asarray(source)
    slices = np.asarray(list(slices), dtype=int)
    new = np.array(target, copy=True)
    new[slices] = source[slices].astype(target.dtype, copy=False)
    changed = np.zeros(target.shape, dtype=bool)
    changed[slices] = target[slices] != new[slices]
    return _edits_from_mask(changed, new, slices)


def drop_protected(edits: Edits, ledger: SliceLedger) -> Edits:
    """Remove edits on slices that became protected while a background run was going on."""
    keep = ~protected_slices(ledger)[edits.indices[0]] if edits.size else np.zeros(0, dtype=bool)
    return Edits(tuple(ix[keep] for ix in edits.indices), edits.values[keep],
                 edits.slices[~protected_slices(ledger)[edits.slices]] if edits.slices.size else edits.slices)
