"""The slice ledger: provenance states, their transitions, navigation, progress and its file format."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError

from napari_slicebudget.logic.ledger import (
    HUMAN_EMPTY,
    HUMAN_PAINTED,
    MACHINE_ACCEPTED,
    MACHINE_PROPOSED,
    NOT_ANNOTATED,
    MachineLabel,
    Plan,
    SliceLedger,
)


def plan(slices, policy="fixed", seed=0) -> Plan:
    return Plan(policy, seed, len(slices), 0.3, tuple(slices), 1000.0)


def sdf(confidence=0.8) -> MachineLabel:
    return MachineLabel("sdf", "sdf", confidence)


def test_strokes_claim_in_plane_and_only_downgrade_across_slices():
    ledger = SliceLedger(10).with_plan(plan([2, 5, 8]))
    ledger = ledger.after_stroke({2: True}, claims=True).after_stroke({3: True}, claims=True).marked_empty(5)
    assert ledger.provenance[2] == ledger.provenance[3] == HUMAN_PAINTED and ledger.provenance[5] == HUMAN_EMPTY
    assert ledger.progress() == (2, 3) and ledger.progress_text() == "2 of 3 suggested slices annotated (+1 other annotated slices)"
    erased = ledger.after_stroke({2: False}, claims=True)  # erasing every label un-annotates the slice
    assert erased.provenance[2] == NOT_ANNOTATED
    # a stroke across slices (reformatted view) never makes a slice human, and undoes what it contradicts
    across = ledger.after_stroke({4: True, 5: True, 6: False}, claims=False)
    assert across.provenance[4] == NOT_ANNOTATED and across.provenance[5] == NOT_ANNOTATED
    assert across.provenance[3] == HUMAN_PAINTED


def test_machine_states_never_become_human_without_a_stroke():
    ledger = SliceLedger(10).after_stroke({2: True}, claims=True).after_stroke({6: True}, claims=True)
    ledger = ledger.proposed({3: sdf(), 4: sdf(1.0), 5: sdf(0.5)})
    assert [ledger.provenance[s] for s in (3, 4, 5)] == [MACHINE_PROPOSED] * 3
    assert ledger.machine[4].confidence == 0.99  # never shown at full confidence
    assert not ledger.human[3:6].any() and ledger.pending_review.tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="must not write slice 2"):
        ledger.proposed({2: sdf()})
    reviewed = ledger.reviewed([3], accept=True).reviewed([5], accept=False)
    assert reviewed.provenance[3] == MACHINE_ACCEPTED and reviewed.machine[3].method == "sdf"
    assert reviewed.provenance[5] == NOT_ANNOTATED and 5 not in reviewed.machine
    assert reviewed.annotated().tolist() == reviewed.human.tolist()
    assert reviewed.annotated(count_accepted=True)[3] and not reviewed.human[3]
    rerun = reviewed.proposed({7: sdf()}, cleared=[3, 4])  # accepted slices are not cleared by a rerun
    assert rerun.provenance[3] == MACHINE_ACCEPTED and rerun.provenance[4] == NOT_ANNOTATED
    claimed = rerun.after_stroke({7: True}, claims=True)  # the annotator paints a proposal: theirs now
    assert claimed.provenance[7] == HUMAN_PAINTED and 7 not in claimed.machine
    with pytest.raises(ValueError, match="human"):
        claimed.accepted_from({7: sdf()})


def test_contradictions_and_downgrades():
    ledger = SliceLedger(5).after_stroke({0: True}, claims=True).marked_empty(1).proposed({2: sdf()})
    fg = np.array([False, True, True, True, False])
    assert ledger.contradictions(fg) == [0, 1]  # painted without labels, empty with labels
    assert ledger.downgraded([0, 1]).provenance[:3] == (NOT_ANNOTATED, NOT_ANNOTATED, MACHINE_PROPOSED)


def test_sparse_annotation_reads_provenance_only():
    labels = np.zeros((4, 3, 3), np.uint8)
    labels[:, 1, 1] = 1  # every slice holds labels, whoever put them there
    ledger = SliceLedger(4).after_stroke({0: True}, claims=True).proposed({1: sdf()}).reviewed([1], True)
    ledger = ledger.proposed({2: sdf()})
    sparse = ledger.sparse_annotation(labels)
    assert sparse.annotated.tolist() == [True, False, False, False] and not sparse.labels[1:].any()
    assert ledger.sparse_annotation(labels, count_accepted=True).annotated.tolist() == [True, True, False, False]
    empty = SliceLedger(4).marked_empty(3).sparse_annotation(labels)
    assert empty.annotated[3] and not empty.labels[3].any()  # marked empty exports as background


def test_navigation_wraps_and_skips_done_slices():
    ledger = SliceLedger(20).with_plan(plan([3, 9, 15]))
    assert ledger.next_suggested(3) == 9 and ledger.next_suggested(15) == 3
    assert ledger.next_suggested(3, -1) == 15 and ledger.next_suggested(10, -1) == 9
    ledger = ledger.after_stroke({9: True}, claims=True)
    assert ledger.next_unannotated(3) == 15 and ledger.next_unannotated(15) == 3
    assert ledger.proposed({3: sdf()}).next_unannotated(0) == 3  # machine slices are still to do
    assert ledger.marked_empty(3).marked_empty(15).next_unannotated(0) is None
    assert SliceLedger(5).next_suggested(0) is None


def test_replanning_keeps_states_and_history():
    ledger = SliceLedger(10).with_plan(plan([1, 4])).after_stroke({4: True}, claims=True)
    again = ledger.with_plan(plan([4, 7], "random", 3))
    assert again.provenance[4] == HUMAN_PAINTED and again.progress() == (1, 2)
    assert [p.policy for p in again.past_plans] == ["fixed"] and again.plan.policy == "random"


def test_json_round_trip_and_refusals():
    ledger = (SliceLedger(10).with_plan(plan([1, 4, 7])).with_plan(plan([1, 2], "coreset", 3))
              .after_stroke({1: True}, claims=True).marked_empty(4).proposed({7: sdf(0.42)}).reviewed([7], True)
              .proposed({8: MachineLabel("sli2vol", "learned carry", 0.7)}).with_time(1, 10.0, 50.0, 40.0)
              .with_active(55.0))
    back = SliceLedger.from_dict(ledger.to_dict())
    assert back == ledger and back.machine[8].source == "learned carry"
    with pytest.raises(UserError, match="format 1 .*propagated slices as painted"):
        SliceLedger.from_dict({"version": 1, "depth": 10, "flags": {}}, "state.json")
    with pytest.raises(UserError, match="version 3"):
        SliceLedger.from_dict({**ledger.to_dict(), "version": 3})
    damaged = ledger.to_dict()
    damaged["slices"]["human-painted"] = [42]
    with pytest.raises(UserError, match="damaged"):
        SliceLedger.from_dict(damaged, "state.json")
