"""The annotator's work without a GUI: one undo history for every action, outside changes, timing."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.propagation import PropagationResult

from napari_slicebudget.logic.ledger import HUMAN_EMPTY, HUMAN_PAINTED, MACHINE_ACCEPTED, MACHINE_PROPOSED
from napari_slicebudget.logic.ledger import NOT_ANNOTATED, MachineLabel, SliceLedger
from napari_slicebudget.logic.work import HISTORY_LIMIT, VolumeWork
from tests_helpers import ArrayStore, Clock


def _work(depth=8, clock=None) -> tuple[VolumeWork, ArrayStore]:
    store = ArrayStore(np.zeros((depth, 8, 8), np.uint8))
    return VolumeWork(store, SliceLedger(depth), clock=clock or Clock()), store


def _result(depth=8, fill=(), confidence=0.6) -> PropagationResult:
    labels = np.zeros((depth, 8, 8), np.uint8)
    for s in fill:
        labels[s, 1:6, 1:6] = 1
    provenance = np.full(depth, "interpolation" if confidence > 0 else "none", dtype=object)
    return PropagationResult(labels, np.full(depth, confidence), provenance)


def test_strokes_undo_redo_follow_the_store():
    work, store = _work()
    work.stroke_done(store.paint(2))
    work.stroke_done(store.paint(2, value=2, rows=slice(0, 1)))
    assert work.ledger.provenance[2] == HUMAN_PAINTED
    work.undo()
    work.undo()
    assert work.ledger.provenance[2] == NOT_ANNOTATED and not store.data.any()
    work.redo()
    assert work.ledger.provenance[2] == HUMAN_PAINTED and store.data[2].max() == 1
    work.stroke_done(store.paint([3, 4, 5], rows=slice(0, 1)))  # a stroke across slices claims nothing
    assert work.ledger.provenance[3:6] == (NOT_ANNOTATED,) * 3
    assert work.undo().slices == (3, 4, 5) and not store.data[3:6].any()
    assert work.redo().slices == (3, 4, 5) and store.data[4].any()


def test_mark_empty_warns_on_labels_and_undoes_with_them():
    work, store = _work()
    work.stroke_done(store.paint(1))
    first = work.mark_empty(1)
    assert first.confirm and "holds labels (human-painted)" in first.message
    assert work.ledger.provenance[1] == HUMAN_PAINTED and store.data[1].any()  # nothing happened yet
    work.mark_empty(1)
    assert work.ledger.provenance[1] == HUMAN_EMPTY and not store.data[1].any()
    work.undo()  # one step: labels and state come back together
    assert work.ledger.provenance[1] == HUMAN_PAINTED and store.data[1].any()
    # a press in between resets the confirmation
    assert work.mark_empty(1).confirm
    work.stroke_done(store.paint(1, value=2, rows=slice(0, 1)))
    assert work.mark_empty(1).confirm
    assert not work.mark_empty(0).confirm and work.ledger.provenance[0] == HUMAN_EMPTY  # no labels: at once
    assert "already" in work.mark_empty(0).message
    with pytest.raises(UserError, match="outside the volume"):
        work.mark_empty(8)


def test_propagation_proposes_only_where_nothing_human_and_undoes_as_one_step():
    work, store = _work()
    work.stroke_done(store.paint(1, value=2))
    work.mark_empty(4)
    change = work.propose(_result(fill=[1, 2, 3, 4, 6]), "sdf")  # the result claims human slices too
    assert work.ledger.pending_review.tolist() == [2, 3, 6]
    assert "proposed 3 slices" in change.message and "3 more reached, nothing found" in change.message
    assert store.data[1].max() == 2 and not store.data[4].any()  # human slices untouched
    assert work.ledger.machine[2] == MachineLabel("sdf", "interpolation", 0.6)
    work.review([2], accept=True)
    work.review([3], accept=False)
    assert work.ledger.provenance[2] == MACHINE_ACCEPTED and not store.data[3].any()
    with pytest.raises(UserError, match="no proposed slice"):
        work.review([1, 4], accept=True)
    work.propose(_result(fill=[5]), "nearest")  # a rerun clears its stale proposals, keeps accepted ones
    assert work.ledger.pending_review.tolist() == [5] and not store.data[6].any()
    assert work.ledger.provenance[2] == MACHINE_ACCEPTED
    for _ in range(3):
        work.undo()
    assert work.ledger.provenance[2] == MACHINE_PROPOSED and work.ledger.pending_review.tolist() == [2, 3, 6]
    assert store.data[3].any() and store.data[6].any()


def test_accept_from_preview_skips_human_slices():
    work, store = _work()
    work.stroke_done(store.paint(2))
    preview = _result(fill=[2, 3]).labels * 3
    work.accept_from(preview, {2: MachineLabel("sdf", "sdf", 0.5), 3: MachineLabel("sdf", "sdf", 0.5)})
    assert work.ledger.provenance[3] == MACHINE_ACCEPTED and store.data[3].max() == 3
    assert work.ledger.provenance[2] == HUMAN_PAINTED and store.data[2].max() == 1


def test_outside_changes_only_downgrade():
    work, store = _work()
    work.stroke_done(store.paint(1))
    work.propose(_result(fill=[3]), "sdf")
    work.stroke_done(store.paint(3, value=2, rows=slice(0, 1)))  # claimed: human now
    store.undo()  # an undo the work did not make: slice 3 holds the machine's labels again
    change = work.reconcile()
    assert change.slices == (3,) and work.ledger.provenance[3] == NOT_ANNOTATED
    assert work.ledger.provenance[1] == HUMAN_PAINTED
    assert not work.can_undo  # the store's history no longer matches the work's: it starts afresh
    store.redo()  # the human stroke comes back, unseen: still not counted as human
    work.reconcile()
    assert work.ledger.provenance[3] == NOT_ANNOTATED
    assert work.reconcile().slices == ()


def test_an_undo_that_reaches_further_than_its_step_is_caught():
    work, store = _work()
    work.propose(_result(fill=[3, 4]), "sdf")
    work.stroke_done(store.paint(3, value=2, rows=slice(0, 1)))  # claimed
    store._undo.pop()  # the store lost the stroke's item (e.g. undone behind the plugin's back, then redone)
    change = work.undo()  # the work's undo of the stroke now undoes the propagation in the store
    assert {3, 4} <= set(change.slices) and "outside the plugin" in change.message
    assert work.ledger.provenance[4] == NOT_ANNOTATED and work.ledger.provenance[3] == NOT_ANNOTATED
    assert not work.ledger.human.any() and not work.can_undo and not work.can_redo


def test_history_is_capped_like_napari():
    work, store = _work()
    for i in range(HISTORY_LIMIT + 5):
        work.stroke_done(store.paint(i % 8, value=1 + i % 2, rows=slice(0, 1)))
    undone = 0
    while work.can_undo:
        work.undo()
        undone += 1
    assert undone == HISTORY_LIMIT


def test_time_is_attributed_to_the_slice_an_action_ends_on():
    clock = Clock()
    work, store = _work(clock=clock)
    work.activity()  # the session opens
    clock.advance(5)
    work.arrived()  # moved to slice 2: the 5 s before were overhead
    clock.advance(30)
    work.stroke_done(store.paint(2))  # 30 s looking and painting: slice 2
    clock.advance(10)
    work.stroke_done(store.paint(2, value=2, rows=slice(0, 1)))
    clock.advance(2)
    work.arrived()  # on to slice 5, a break there, then 4 s of work
    clock.advance(500)
    work.activity()
    clock.advance(4)
    work.mark_empty(5)
    clock.advance(20)
    work.undo()  # undo never takes time back; the 20 s are overhead
    timing = work.ledger.timing
    assert timing[2].seconds == pytest.approx(40) and timing[2].finished - timing[2].started == pytest.approx(40)
    assert timing[5].seconds == pytest.approx(4)
    assert work.ledger.active_seconds == pytest.approx(5 + 40 + 2 + 4 + 20)
    work.pause()
    clock.advance(60)
    work.activity()  # reopening after a pause adds nothing
    assert work.ledger.active_seconds == pytest.approx(71)
