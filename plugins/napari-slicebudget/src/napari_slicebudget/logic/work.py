"""The annotator's work on one volume: labels, ledger, one undo history and the clock, without a GUI.

Every action changes the labels (through a :class:`LabelStore`, napari's Labels layer in the plugin)
and the ledger together, and becomes one step of one undo history: painting, marking a slice empty,
propagating, accepting and rejecting are undone and redone alike. A labels change the work did not
make (an undo outside the plugin, a script writing the layer) is found by per-slice fingerprints
and only ever downgrades the slices it touched to not annotated.

Time (see the plugin README): activity (moving between slices, the pointer on the canvas, any
action) keeps the clock running; a gap between two activities longer than ``idle_cutoff`` is a break
and does not count. Active time since arriving on a slice (or since the last stroke or mark there)
counts for that slice when a stroke or an empty mark ends it; time that ends in moving on, or in a
volume-wide action (propagating, reviewing, a new plan), is per-volume overhead. Undo never takes
time back.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation import PropagationResult

from napari_slicebudget.logic.ledger import (
    HUMAN,
    HUMAN_EMPTY,
    NOT_ANNOTATED,
    MachineLabel,
    Plan,
    SliceLedger,
    foreground_per_slice,
)
from napari_slicebudget.logic.propagation import proposal, slice_edits

HISTORY_LIMIT = 100  # steps; napari keeps as many Labels history items, so the two never drift apart
IDLE_CUTOFF_SECONDS = 120.0


class LabelStore(Protocol):
    """Where the labels live, with an undo history of its own (napari's Labels layer)."""

    @property
    def data(self) -> np.ndarray: ...

    def write(self, indices: tuple[np.ndarray, ...], values: np.ndarray) -> None:
        """Write as one undoable step (only called with at least one changed voxel)."""

    def undo(self) -> None: ...

    def redo(self) -> None: ...


@dataclass(frozen=True)
class Step:
    name: str
    before: SliceLedger
    after: SliceLedger
    slices: tuple[int, ...]
    wrote_labels: bool  # whether the store holds an undo item for this step
    # fingerprints of the step's watched slices before and after it: undo and redo check them
    before_prints: dict[int, int]
    after_prints: dict[int, int]


@dataclass(frozen=True)
class Change:
    """What an action did: the slices whose labels or state changed, and a line for the user.
    ``confirm`` is set when the action waits for a second press instead."""

    slices: tuple[int, ...] = ()
    message: str = ""
    confirm: bool = False


class VolumeWork:
    def __init__(self, store: LabelStore, ledger: SliceLedger, clock: Callable[[], float] = time.time,
                 idle_cutoff: float = IDLE_CUTOFF_SECONDS):
        self.store, self.ledger, self.clock, self.idle_cutoff = store, ledger, clock, idle_cutoff
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._last_activity: float | None = None
        self._since: float | None = None  # start of the interval not yet credited to a slice
        self._on_slice = 0.0  # its active seconds
        self._confirm_empty: int | None = None
        self._prints: dict[int, int] = {}
        self._fingerprint(range(ledger.depth))

    # ---- time ----------------------------------------------------------------------------------
    def activity(self) -> None:
        """Something happened now: the time since the last activity counts, unless it was a break."""
        now = self.clock()
        last, self._last_activity = self._last_activity, now
        if self._since is None:
            self._since = now
        if last is not None and 0 <= now - last <= self.idle_cutoff:
            self.ledger = self.ledger.with_active(now - last)
            self._on_slice += now - last

    def arrived(self) -> None:
        """The annotator moved to another slice: the time before it was overhead."""
        self._credit(())

    def pause(self) -> None:
        """The session closes: the time until it reopens is not work."""
        self._credit(())
        self._last_activity = None

    def _credit(self, slices) -> None:
        """End the running interval: its active time goes to ``slices`` (none: overhead)."""
        self.activity()
        slices, now = list(slices), self._last_activity
        if slices and self._on_slice > 0:
            for s in slices:
                self.ledger = self.ledger.with_time(s, self._since, now, self._on_slice / len(slices))
        self._on_slice, self._since = 0.0, now

    # ---- actions -------------------------------------------------------------------------------
    def stroke_done(self, slices: Iterable[int]) -> Change:
        """A human stroke (already in the store, with its own undo item) touched ``slices``."""
        idx = sorted({int(s) for s in slices if 0 <= int(s) < self.ledger.depth})
        claims = len(idx) == 1  # a stroke in the slice plane; strokes across slices never claim
        fg = foreground_per_slice(self.store.data, idx).tolist() if idx else []
        # a step even when nothing changed: the store holds an undo item for every stroke
        change = self._step("stroke", self.ledger.after_stroke(dict(zip(idx, fg)), claims), idx, True)
        self._credit(idx if claims else ())
        return change

    def mark_empty(self, index: int) -> Change:
        """Mark slice ``index`` empty. If it holds labels, the first press only warns; a second press
        (with nothing else in between) clears them, in the same undo step."""
        index = int(index)
        if not 0 <= index < self.ledger.depth:
            raise UserError(f"slice {index} is outside the volume (0..{self.ledger.depth - 1})")
        state = self.ledger.provenance[index]
        if state == HUMAN_EMPTY:
            return Change(message=f"slice {index} is already marked empty")
        current = np.asarray(self.store.data[index])
        wrote = False
        if current.any():
            if self._confirm_empty != index:
                self._confirm_empty = index
                return Change(message=f"slice {index} holds labels ({state}); press Mark empty again to erase "
                                      "them and mark the slice empty", confirm=True)
            wrote = self._write([index], np.zeros((1, *current.shape), current.dtype))
        self._step("mark empty", self.ledger.marked_empty(index), [index], wrote)
        self._credit([index])
        return Change((index,), f"slice {index} marked empty" + (" (its labels erased)" if wrote else ""))

    def propose(self, result: PropagationResult, method: str) -> Change:
        """Write a propagation result as machine proposals (the annotator may have painted meanwhile:
        what is human now is left alone)."""
        if result.labels.shape != np.shape(self.store.data):
            raise UserError(f"propagation result {result.labels.shape} does not fit the labels {np.shape(self.store.data)}")
        plan = proposal(result, self.ledger, method)
        touched = np.union1d(plan.slices, plan.stale)
        new = np.zeros((touched.size, *result.labels.shape[1:]), dtype=np.asarray(self.store.data).dtype)
        is_target = np.isin(touched, plan.slices)
        new[is_target] = result.labels[touched[is_target]]
        wrote = self._write(touched, new)
        change = self._step(f"propagate ({method})", self.ledger.proposed(plan.details, plan.stale), touched, wrote)
        self._credit(())
        note = f" ({plan.found_nothing} more reached, nothing found there)" if plan.found_nothing else ""
        return Change(change.slices, f"{method}: proposed {plan.slices.size} slices for review{note}")

    def review(self, slices: Iterable[int], accept: bool) -> Change:
        """Accept (keep as machine-accepted) or reject (erase) proposed ``slices``."""
        pending = set(self.ledger.pending_review.tolist())
        idx = sorted({int(s) for s in slices} & pending)
        if not idx:
            raise UserError("no proposed slice to review")
        wrote = False
        if not accept:
            shape = np.shape(self.store.data)[1:]
            wrote = self._write(idx, np.zeros((len(idx), *shape), np.asarray(self.store.data).dtype))
        self._step("accept" if accept else "reject", self.ledger.reviewed(idx, accept), idx, wrote)
        self._credit(())
        return Change(tuple(idx), f"{'accepted' if accept else 'rejected'} {len(idx)} proposed slices")

    def accept_from(self, preview: np.ndarray, details: dict[int, MachineLabel]) -> Change:
        """Copy machine labels from a preview layer and accept them in one step (human slices skipped)."""
        idx = sorted(s for s in details if self.ledger.provenance[s] not in HUMAN)
        if not idx:
            raise UserError("no previewed slice to accept")
        wrote = self._write(idx, np.asarray(preview)[idx])
        self._step("accept", self.ledger.accepted_from({s: details[s] for s in idx}), idx, wrote)
        self._credit(())
        return Change(tuple(idx), f"accepted {len(idx)} previewed slices")

    def replan(self, plan: Plan) -> Change:
        """A new plan; annotated slices keep their state (the old plan goes to the ledger's history)."""
        self.ledger = self.ledger.with_plan(plan)
        self._credit(())
        return Change(message=f"{plan.describe()}: {len(plan.suggested)} slices suggested")

    def undo(self) -> Change:
        return self._travel(self._undo, self._redo, undo=True)

    def redo(self) -> Change:
        return self._travel(self._redo, self._undo, undo=False)

    def reconcile(self) -> Change:
        """Downgrade slices whose labels changed without an action of this work (see module doc).

        Such a change may have been an undo in the store's own history, which then no longer matches
        this one step for step: the undo history starts afresh rather than undo the wrong things.
        """
        changed = [s for s in self._prints if self._print_of(s) != self._prints[s]]
        if not changed:
            return Change()
        self.ledger = self.ledger.downgraded(changed)
        self._fingerprint(changed)
        self._undo.clear()
        self._redo.clear()
        return Change(tuple(changed), f"labels changed outside the plugin on slices {changed}: not annotated now; "
                                      "the undo history starts again from here")

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # ---- internals -----------------------------------------------------------------------------
    def _write(self, slices, new_slices: np.ndarray) -> bool:
        indices, values = slice_edits(self.store.data, slices, new_slices)
        if values.size == 0:
            return False
        self.store.write(indices, values)
        return True

    def _step(self, name: str, after: SliceLedger, slices, wrote: bool) -> Change:
        idx = tuple(int(s) for s in slices)
        before, before_prints = self.ledger, {s: self._prints[s] for s in idx if s in self._prints}
        self.ledger = after
        self._fingerprint(idx)
        self._undo.append(Step(name, before, after, idx, wrote, before_prints,
                               {s: self._prints[s] for s in idx if s in self._prints}))
        del self._undo[:-HISTORY_LIMIT]
        self._redo.clear()
        self._confirm_empty = None
        return Change(idx, name)

    def _travel(self, source: list[Step], target: list[Step], undo: bool) -> Change:
        self._confirm_empty = None
        if not source:
            return Change(message=f"nothing to {'undo' if undo else 'redo'}")
        step = source.pop()
        if step.wrote_labels:
            self.store.undo() if undo else self.store.redo()
        self.ledger = self.ledger.with_provenance_of(step.before if undo else step.after, step.slices)
        target.append(step)
        expected = step.before_prints if undo else step.after_prints
        for s in step.slices:  # what the labels must hold now; reconcile checks they do
            self._prints.pop(s, None)
            if self.ledger.provenance[s] != NOT_ANNOTATED:
                self._prints[s] = expected[s]
        self.activity()
        surprise = self.reconcile()  # the store undid something else: the histories had drifted
        message = f"{'undid' if undo else 'redid'} {step.name}" + (f"; {surprise.message}" if surprise.slices else "")
        return Change(tuple(sorted(set(step.slices) | set(surprise.slices))), message)

    def _print_of(self, s: int) -> int:
        return zlib.crc32(np.ascontiguousarray(self.store.data[s]).view(np.uint8))

    def _fingerprint(self, slices: Iterable[int]) -> None:
        # only slices with a state to lose are watched; reading them costs ~0.1 ms per 512 x 512 slice
        for s in slices:
            if self.ledger.provenance[s] == NOT_ANNOTATED:
                self._prints.pop(s, None)
            else:
                self._prints[s] = self._print_of(s)
