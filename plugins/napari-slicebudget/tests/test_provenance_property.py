"""No machine-made slice is ever exported as human, whatever the order of the annotator's actions.

Hypothesis draws sequences of the plugin's actions (strokes in and across slices, erasing, marking
empty with one or two presses, propagating, accepting, rejecting, accepting from a preview, undo,
redo, a new plan, labels changed behind the plugin's back, closing and reopening the autosave) and
runs them on the real work, ledger, autosave and export. The test's own witness is independent of
the ledger: the label store remembers, slice by slice and through its own undo history, who wrote
the labels there last.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from slicebudget.io import read_labels
from slicebudget.propagation import PropagationResult

from napari_slicebudget.logic.autosave import Autosaver, load_session
from napari_slicebudget.logic.export import export_case
from napari_slicebudget.logic.ledger import MachineLabel, Plan, SliceLedger, foreground_per_slice
from napari_slicebudget.logic.work import VolumeWork
from tests_helpers import ArrayStore, Clock, make_volume

DEPTH, SIZE = 6, 8
IMAGE = make_volume(shape=(DEPTH, SIZE, SIZE))
UNTRUSTED = {"machine", "mixed", "outside"}  # writers whose slices must never export as human


class WitnessStore(ArrayStore):
    """An ArrayStore that also records who last wrote each slice; its history restores that too."""

    def __init__(self, data, writer=None):
        super().__init__(data)
        self.writer = np.full(DEPTH, "none", dtype=object) if writer is None else writer.copy()
        self.author = "machine"  # the next write's author, set by the test before each action

    def write(self, indices, values) -> None:
        slices = np.unique(indices[0])
        before = self.writer[slices].copy()
        super().write(indices, values)
        fg = foreground_per_slice(self.data, slices)
        for s, has, old in zip(slices, fg, before):
            if self.author == "human-across":  # an edit from another view keeps a human or machine slice's author
                self.writer[s] = (old if old in ("human", "machine") else "mixed") if has else "none"
            elif self.author in ("human", "machine"):
                self.writer[s] = self.author if has else "none"
            else:  # "empty" (cleared by a mark) or "none" (cleared by a reject)
                self.writer[s] = self.author
        self._undo[-1] += (slices, before, self.writer[slices].copy())

    def undo(self) -> None:
        if self._undo:
            item = self._undo[-1]
            super().undo()
            self.writer[item[3]] = item[4]

    def redo(self) -> None:
        if self._redo:
            item = self._redo[-1]
            super().redo()
            self.writer[item[3]] = item[5]


slices = st.integers(0, DEPTH - 1)
ACTIONS = st.one_of(
    st.tuples(st.just("stroke"), slices, st.integers(0, 2), st.integers(0, SIZE - 3)),
    st.tuples(st.just("across"), slices, slices, st.integers(0, 2)),
    st.tuples(st.just("empty"), slices, st.booleans()),
    st.tuples(st.just("propagate"), st.integers(0, 2**16)),
    st.tuples(st.just("review"), st.integers(0, 2**16), st.booleans()),
    st.tuples(st.just("preview"), st.integers(0, 2**16)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
    st.tuples(st.just("plan"), st.integers(0, 2**16)),
    st.tuples(st.just("outside"), slices),
    st.tuples(st.just("reopen")),
)


def _random_result(seed: int) -> PropagationResult:
    # an adversarial propagation: foreground and confidence anywhere, human slices included
    rng = np.random.default_rng(seed)
    labels = (rng.random((DEPTH, SIZE, SIZE)) < 0.3).astype(np.uint8) * rng.integers(1, 3, (DEPTH, 1, 1)).astype(np.uint8)
    confidence = rng.random(DEPTH) * (rng.random(DEPTH) < 0.8)
    return PropagationResult(labels, confidence, np.where(confidence > 0, "learned", "stopped").astype(object))


class Day:
    """The work as the plugin drives it, journaled to a session folder like the plugin's autosave."""

    def __init__(self, folder: Path):
        self.folder, self.clock = folder, Clock()
        self.store = WitnessStore(np.zeros((DEPTH, SIZE, SIZE), np.uint8))
        self.work = VolumeWork(self.store, SliceLedger(DEPTH), clock=self.clock)
        self.saver = Autosaver(folder, IMAGE)
        self.saver.checkpoint(self.store.data.copy(), self.work.ledger)

    def do(self, action) -> None:
        kind, *args = action
        self.clock.advance(3)
        change = getattr(self, kind)(*args)
        if change is not None and not change.confirm:
            self.saver.record(self.work.ledger, list(change.slices), self.store.data[list(change.slices)].copy())

    def stroke(self, s, value, at):
        self.store.author = "human"
        return self.work.stroke_done(self.store.paint(s, slice(at, at + 3), slice(at, at + 2), value))

    def across(self, a, b, value):
        self.store.author = "human-across" if a != b else "human"
        return self.work.stroke_done(self.store.paint(sorted({a, b}), slice(0, 2), slice(0, 2), value))

    def empty(self, s, twice):
        self.store.author = "empty"
        change = self.work.mark_empty(s)
        return self.work.mark_empty(s) if twice and change.confirm else change

    def propagate(self, seed):
        self.store.author = "machine"
        return self.work.propose(_random_result(seed), "sdf")

    def review(self, seed, accept):
        pending = self.work.ledger.pending_review
        if not pending.size:
            return None
        chosen = np.random.default_rng(seed).choice(pending, size=max(1, pending.size // 2), replace=False)
        self.store.author = "none"
        return self.work.review(chosen.tolist(), accept)

    def preview(self, seed):
        result = _random_result(seed)
        details = {s: MachineLabel("nearest", "nearest", 0.5) for s in range(DEPTH) if result.labels[s].any()
                   and self.work.ledger.provenance[s] not in ("human-painted", "human-marked-empty")}
        if not details:
            return None
        self.store.author = "machine"
        return self.work.accept_from(result.labels, details)

    def undo(self):
        return self.work.undo()

    def redo(self):
        return self.work.redo()

    def plan(self, seed):
        chosen = tuple(sorted(np.random.default_rng(seed).choice(DEPTH, size=3, replace=False).tolist()))
        return self.work.replan(Plan("random", seed, 3, 0.5, chosen, self.clock()))

    def outside(self, s):
        # a script or an undo outside the plugin changes the labels: no history item, no event
        before = self.store.data[s].copy()
        self.store.data[s, 0, :] = 2
        if not np.array_equal(before, self.store.data[s]):  # a write that changes nothing changes no author
            self.store.writer[s] = "outside"
        change = self.work.reconcile()
        self.saver.checkpoint(self.store.data.copy(), self.work.ledger)  # as the session does after one
        return change

    def reopen(self):
        """Close (everything journaled) and reopen from disk: labels and ledger as they were."""
        self.saver.drain()
        restored = load_session(self.folder, IMAGE)
        np.testing.assert_array_equal(restored.labels, self.store.data)
        assert restored.ledger == self.work.ledger and restored.downgraded == ()
        self.store = WitnessStore(np.array(restored.labels, dtype=np.uint8), self.store.writer)
        self.work = VolumeWork(self.store, restored.ledger, clock=self.clock)
        self.saver = Autosaver(self.folder, IMAGE, restored.seq)
        return None


def _exported(day: Day, root: Path, count_accepted: bool) -> np.ndarray | None:
    if not day.work.ledger.annotated(count_accepted).any():
        return None
    result = export_case(root, "case", IMAGE, day.store.data, day.work.ledger, ["a", "b"], "CT", count_accepted)
    return read_labels(result.label).array


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=25))
# found by a random draw: a script's labels, then a stroke that paints nothing, then the same script
# again (the witness once called that unchanged slice "outside" while the ledger rightly kept it human)
@example([("outside", 0), ("stroke", 0, 0, 1), ("outside", 0)])
def test_no_machine_slice_is_ever_exported_as_human(actions):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        day = Day(tmp / "session")
        try:
            for action in actions:
                day.do(action)
        finally:
            day.saver.drain()
        day.reopen()
        writer, labels = day.store.writer, day.store.data
        for count_accepted in (False, True):
            encoded = _exported(day, tmp / f"Dataset{int(count_accepted)}", count_accepted)
            annotated = np.zeros(DEPTH, bool) if encoded is None else ~(encoded == 3).all(axis=(1, 2))
            for s in np.flatnonzero(annotated):
                allowed = {"human", "empty", "none"} | ({"machine"} if count_accepted else set())
                assert writer[s] in allowed, (s, writer[s], day.work.ledger.provenance[s])
                expected = labels[s] if writer[s] in ("human", "machine") else 0
                np.testing.assert_array_equal(encoded[s], expected)
            # and the annotator's own painted slices are all there
            for s in range(DEPTH):
                if writer[s] == "human" and labels[s].any():
                    assert annotated[s], (s, day.work.ledger.provenance[s])
        assert not ({"outside", "mixed"} & set(writer[day.work.ledger.annotated(True)]))
