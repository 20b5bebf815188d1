"""The slice ledger: statuses, provenance, navigation, progress and persistence (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError

from napari_slicebudget.logic.ledger import SliceLedger


def _labels(depth=10, painted=()):
    labels = np.zeros((depth, 6, 6), dtype=np.uint8)
    for s in painted:
        labels[s, 2:4, 2:4] = 1
    return labels


def test_statuses_follow_paint_and_empty_marks():
    ledger = SliceLedger(10).with_plan([2, 5, 8], policy="fixed", seed=0)
    labels = _labels(painted=[2, 3])
    ledger = ledger.with_painted(labels, [2, 3], now=100.0).with_empty(5, now=130.0)
    statuses = ledger.statuses()
    assert statuses[2] == "annotated" and statuses[3] == "annotated"
    assert statuses[5] == "empty" and statuses[8] == "suggested" and statuses[0] == "none"
    assert ledger.progress() == (2, 3)
    assert ledger.progress_text() == "2 of 3 annotated (+1 other slices)"
    assert [(e.slice, e.status, e.time) for e in ledger.log] == [(2, "annotated", 100.0), (3, "annotated", 100.0),
                                                                 (5, "empty", 130.0)]
    # erasing the paint puts the slice back to "suggested", not "empty"
    erased = ledger.with_labels(_labels(painted=[3]))
    assert erased.status(2) == "suggested"


def test_mark_empty_refuses_painted_slice():
    ledger = SliceLedger(4).with_painted(_labels(4, [1]), [1])
    with pytest.raises(UserError, match="slice 1 holds painted labels"):
        ledger.with_empty(1)
    with pytest.raises(UserError, match="outside the volume"):
        ledger.with_empty(7)


def test_navigation_wraps_and_skips_done_slices():
    ledger = SliceLedger(20).with_plan([3, 9, 15])
    assert ledger.next_suggested(3) == 9 and ledger.next_suggested(15) == 3
    assert ledger.next_suggested(3, -1) == 15 and ledger.next_suggested(10, -1) == 9
    ledger = ledger.with_painted(_labels(20, [9]), [9])
    assert ledger.next_unannotated(3) == 15 and ledger.next_unannotated(15) == 3
    done = ledger.with_empty(3).with_empty(15)
    assert done.next_unannotated(0) is None
    assert SliceLedger(5).next_suggested(0) is None


def test_propagated_slices_are_not_human_until_painted():
    labels = _labels(painted=[2, 4, 6])
    ledger = SliceLedger(10).with_plan([2, 6]).with_painted(labels, [2, 6])
    ledger = ledger.with_propagated([4]).with_labels(labels)
    assert ledger.status(4) == "propagated" and not ledger.human_annotated[4]
    assert len(ledger.log) == 2  # the machine-made slice is not logged as annotation work
    assert ledger.pending_review.tolist() == [4]
    accepted = ledger.with_reviewed([4], accept=True)
    assert accepted.status(4) == "accepted" and accepted.pending_review.size == 0
    assert accepted.sparse_annotation(labels).annotated.tolist() == ledger.human_annotated.tolist()
    assert accepted.sparse_annotation(labels, count_accepted=True).annotated[4]
    touched = ledger.with_painted(labels, [4])  # the annotator edits a propagated slice: it is theirs now
    assert touched.status(4) == "annotated" and touched.human_annotated[4]
    with pytest.raises(ValueError):
        touched.with_propagated([4])


def test_json_round_trip_keeps_everything():
    labels = _labels(painted=[1, 7])
    ledger = (SliceLedger(10).with_plan([1, 4, 7], policy="coreset", seed=3, density=0.3)
              .with_painted(labels, [1], now=5.0).with_empty(4, now=9.0).with_propagated([7]).with_labels(labels))
    back = SliceLedger.from_dict(ledger.to_dict())
    assert back.statuses() == ledger.statuses()
    assert back.plan == {"policy": "coreset", "seed": 3, "density": 0.3}
    assert back.log == ledger.log and back.suggested == (1, 4, 7)
    with pytest.raises(UserError, match="damaged"):
        SliceLedger.from_dict({"plan": {}}, "state.json")
