"""Run a propagation method on the annotator's slices, and decide which slices its result may write.

Propagation reads the human slices and the accepted machine slices, and writes machine proposals
only on the other slices where it found foreground. Human and accepted slices are never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation import PROPAGATORS, PropagationResult, propagate

from napari_slicebudget.logic.ledger import MachineLabel, SliceLedger, foreground_per_slice

METHODS = tuple(PROPAGATORS)
# How the review list orders machine slices: the fallback's interpolated slices and the least
# confident ones are where a reviewer's minutes buy the most.
SLICE_ORDER, INTERPOLATED_FIRST, ONLY_INTERPOLATED, LEAST_CONFIDENT = (
    "slice order", "interpolated first", "only interpolated", "least confident first")
REVIEW_ORDERS = (SLICE_ORDER, INTERPOLATED_FIRST, ONLY_INTERPOLATED, LEAST_CONFIDENT)


def run_propagation(image: np.ndarray, labels: np.ndarray, ledger: SliceLedger, method: str,
                    progress=None, model: Path | None = None) -> PropagationResult:
    """Propagate from the human and accepted slices with ``method``; ``progress(done, total)``;
    ``model``: an adapted sli2vol model file (None: the shipped one)."""
    annotation = ledger.sparse_annotation(labels, count_accepted=True)
    params = {"model": model} if method == "sli2vol" and model is not None else {}
    return propagate(np.asarray(image, dtype=np.float32), annotation, method=method, progress=progress, **params)


def adapt_to_images(volumes, out: Path, progress=None, settings=None) -> Path:
    """Fine-tune the shipped sli2vol model on ``volumes`` (the open images; labels unused) and write it
    to ``out``; ``progress(done, total)`` per training step; ``settings``: TrainingSettings (default:
    ``slicebudget.propagation.sli2vol.train.ADAPTATION``). Needs 2+ volumes of 3+ slices.

    Training runs in a child process: torch's optimiser imports triton lazily, and triton's LLVM
    crashes a process that already holds Qt's OpenGL stack (Mesa's LLVM under Xvfb). Call it from a
    worker thread; it returns when the child is done.
    """
    import multiprocessing

    from slicebudget.propagation.sli2vol.train import ADAPTATION, check_adaptation_input

    volumes = [np.asarray(v, dtype=np.float32) for v in volumes]
    check_adaptation_input(volumes)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(target=_adapt_in_child, args=(volumes, str(out), settings or ADAPTATION, messages), daemon=True)
    child.start()
    try:
        while True:
            kind, *rest = messages.get()
            if kind == "progress" and progress is not None:
                progress(*rest)
            elif kind == "done":
                return Path(out)
            elif kind == "user-error":
                raise UserError(rest[0])
            elif kind == "error":
                raise RuntimeError(f"adaptation failed in its child process:\n{rest[0]}")
    finally:
        child.join(timeout=10)


def _adapt_in_child(volumes, out: str, settings, messages) -> None:
    import traceback

    from slicebudget.propagation.sli2vol.train import adapt_and_save

    try:
        adapt_and_save(volumes, out, settings, [f"napari images ({len(volumes)} volumes)"], init="default",
                       progress=lambda done, total, loss: messages.put(("progress", done, total)))
        messages.put(("done",))
    except UserError as exc:
        messages.put(("user-error", str(exc)))
    except BaseException:  # noqa: BLE001 -- reported to the parent, which raises it in the GUI's terms
        messages.put(("error", traceback.format_exc()))


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


def review_order(slices, details: Mapping[int, MachineLabel], order: str = SLICE_ORDER) -> list[int]:
    """``slices`` in the review list's ``order``; ``details`` names each slice's source and confidence."""
    slices = sorted(int(s) for s in slices)
    interpolated = {s for s in slices if s in details and details[s].source == "interpolation"}
    if order == INTERPOLATED_FIRST:
        return sorted(slices, key=lambda s: (s not in interpolated, s))
    if order == ONLY_INTERPOLATED:
        return [s for s in slices if s in interpolated]
    if order == LEAST_CONFIDENT:
        return sorted(slices, key=lambda s: (details[s].confidence if s in details else 1.0, s))
    if order != SLICE_ORDER:
        raise UserError(f"unknown review order {order!r}; choose from {', '.join(REVIEW_ORDERS)}")
    return slices


def suggest_adaptive(image: np.ndarray, labels: np.ndarray, ledger: SliceLedger) -> tuple[int, ...]:
    """The plan's slices plus the next best slice: where propagating from the human and accepted
    slices (sli2vol) is expected to be wrong by the most voxels."""
    from slicebudget.propagation.next_slice import suggest_next_slice

    annotation = ledger.sparse_annotation(labels, count_accepted=True)
    if not annotation.annotated.any():
        raise UserError("adaptive: paint (or mark empty) at least one slice first; it suggests where to go next")
    chosen = suggest_next_slice(np.asarray(image, dtype=np.float32), annotation, "sli2vol").slice
    return tuple(sorted(set(ledger.suggested) | {chosen}))
