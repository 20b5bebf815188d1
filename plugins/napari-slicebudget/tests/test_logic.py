"""Planning, propagation, the budget panel's advice and the cost file (no Qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.propagation import PropagationResult

from napari_slicebudget.logic.budget import load_study, pace, recommend, session_costs
from napari_slicebudget.logic.costs import volume_costs, write_costs
from napari_slicebudget.logic.ledger import MachineLabel, Plan, SliceLedger
from napari_slicebudget.logic.planning import (
    describe_slice,
    overlay_text,
    resolve_slice_count,
    slice_list_rows,
    slice_outlines,
    suggest_slices,
)
from napari_slicebudget.logic.propagation import proposal, run_propagation
from napari_slicebudget.logic.work import VolumeWork
from tests_helpers import ArrayStore, Clock


def test_slice_count_and_suggestions_are_reproducible(phantom):
    image, _ = phantom
    assert resolve_slice_count(24, density=0.25) == 6
    assert resolve_slice_count(24, count=3) == 3
    with pytest.raises(UserError, match="between 1 and"):
        resolve_slice_count(24, count=30)
    for policy in ("fixed", "random", "coreset"):
        first = suggest_slices(image, policy, 5, seed=4)
        assert first.size == 5 and np.all(np.diff(first) > 0) and first.max() < 24
        np.testing.assert_array_equal(first, suggest_slices(image.array, policy, 5, seed=4))
    with pytest.raises(UserError, match="3D"):
        suggest_slices(np.zeros((5, 5)), "fixed", 1, 0)
    outline = slice_outlines([7], (24, 40, 40))[0]
    assert outline.shape == (4, 3) and set(outline[:, 0]) == {7}


def test_overlay_and_list_name_provenance():
    ledger = SliceLedger(10).with_plan(Plan("fixed", 0, 2, 0.2, (2, 6), 0.0))
    ledger = ledger.after_stroke({6: True}, claims=True).proposed({3: MachineLabel("sli2vol", "learned carry", 0.81)})
    text = overlay_text(ledger, 2)
    assert "suggested slice 2" in text and "to do" in text and "1 of 2 suggested" in text and "next to do: 2" in text
    assert describe_slice(ledger, 3) == "machine-proposed by sli2vol, learned carry, confidence 0.81"
    assert [(s, status) for s, status, _ in slice_list_rows(ledger)] == [
        (2, "to do"), (3, "machine-proposed"), (6, "human-painted")]


def test_propagation_reads_human_slices_and_proposes_elsewhere(phantom):
    image, labels = phantom
    fg = np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))
    chosen = [int(fg[1]), int(fg[-2])]
    store = ArrayStore(np.zeros(labels.shape, np.uint8))
    store.data[chosen] = labels.array[chosen]
    work = VolumeWork(store, SliceLedger(labels.shape[0]), clock=Clock())
    for s in chosen:
        work.stroke_done([s])
    calls = []
    result = run_propagation(image.array, store.data, work.ledger, "sdf", progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    plan = proposal(result, work.ledger, "sdf")
    assert set(plan.slices) == set(range(chosen[0] + 1, chosen[1])) and plan.stale.size == 0
    work.propose(result, "sdf")
    inner = slice(chosen[0] + 1, chosen[1])
    overlap = (store.data[inner] > 0) & (labels.array[inner] > 0)
    assert overlap.sum() > 0.5 * (labels.array[inner] > 0).sum()  # a sensible fill, not noise
    np.testing.assert_array_equal(store.data[chosen], labels.array[chosen])
    assert all(0 < work.ledger.machine[s].confidence < 1 for s in plan.slices.tolist())


def _study(tmp_path, statuses=None):
    """A finished synthetic study folder (the planner's known-surface benchmark data) with its summary.json."""
    from slicebudget.bench.planning import synthetic_runs, write_synthetic_study
    from slicebudget.study.store import StudyStore

    folder = write_synthetic_study(tmp_path / "study", synthetic_runs(seed=21))
    if statuses:
        with StudyStore(folder) as store:
            for run, status in zip(store.runs(), statuses):
                if status == "pending":
                    store.mark_pending(run["run_id"])
                elif status == "failed":
                    store.mark_failed(run["run_id"], "out of memory")
    (folder / "summary.json").write_text(json.dumps({"version": 1, "runs": [], "recommendations": []}))
    return folder


def test_advice_comes_from_the_planner_and_respects_budget_depth_and_volumes(tmp_path):
    study = load_study(_study(tmp_path) / "summary.json")
    assert study.unfinished == 0 and study.warning() == ""
    advice = recommend(study, 64, depth=20)
    plan = advice.plan
    assert advice.total <= 64 and plan.best.n_volumes <= 16  # the study's 16 volumes when none are given
    assert f"Expected IoU {plan.best.expected_iou:.3f} for a new campaign (80% interval" in advice.text()
    assert "Planner self-check: leave-one-cell-out MAE" in advice.text()
    assert "the study's; set the volumes you have" in advice.text()
    limited = recommend(study, 64, depth=20, available=5)
    assert limited.plan.best.n_volumes <= 5 and "(you have 5)" in limited.text()
    shallow = recommend(study, 64, depth=3, available=40)
    assert shallow.plan.best.slices_per_volume <= 3 and shallow.total <= 64
    hours = recommend(study, 1.5, depth=20, unit="hours")
    assert hours.plan.best.hours <= 1.5 and "For 1.5 hours" in hours.text()
    for budget in (1, 7, 50, 333):
        assert recommend(study, budget, depth=20).total <= budget
    with pytest.raises(UserError, match="no model"):
        recommend(study, 100, 20, dims=3)


def test_unfinished_study_is_marked_and_an_unstarted_one_refused(tmp_path):
    study = load_study(_study(tmp_path, ("done", "pending", "failed")))
    assert study.unfinished == 2
    assert study.warning().startswith("Unfinished study: 2 of 36 runs are not done (1 failed, 1 pending)")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="no study store"):
        load_study(alone / "summary.json")
    with pytest.raises(UserError, match="file not found"):
        load_study(tmp_path / "missing.json")


def _timed_ledger() -> SliceLedger:
    clock = Clock(1_800_000_000.0)
    store = ArrayStore(np.zeros((12, 6, 6), np.uint8))
    work = VolumeWork(store, SliceLedger(12), clock=clock)
    work.activity()
    for s, seconds in ((3, 40.0), (5, 25.0)):
        clock.advance(seconds)
        work.stroke_done(store.paint(s))
    clock.advance(3.5)
    work.mark_empty(9)
    clock.advance(12.0)
    work.propose(PropagationResult(np.ones((12, 6, 6), np.uint8), np.full(12, 0.5),
                                   np.full(12, "interpolation", dtype=object)), "sdf")
    clock.advance(6.0)
    work.activity()
    work.arrived()
    clock.advance(600.0)  # on to slice 11, a break, then a stroke: no measured time for that slice
    work.stroke_done(store.paint(11))
    return work.ledger


def test_cost_file_holds_human_slices_with_their_time(tmp_path):
    ledger = _timed_ledger()
    entry = volume_costs(ledger, "case_0003")
    assert entry["n_slices"] == 12 and entry["idle_cutoff_seconds"] == 120
    assert [(e["slice"], e["kind"], e["seconds"]) for e in entry["slices"]] == [
        (3, "object", 40.0), (5, "object", 25.0), (9, "empty", 3.5)]  # machine slices never appear
    assert entry["active_seconds"] == pytest.approx(40 + 25 + 3.5 + 12 + 6)
    assert entry["slices"][0]["started"] == "2027-01-15T08:00:00+00:00"
    assert entry["slices"][0]["finished"] == "2027-01-15T08:00:40+00:00"
    path = write_costs(tmp_path / "case_0003.costs.json", [entry])
    raw = json.loads(path.read_text())
    assert raw["format"] == "slicebudget-annotation-costs" and raw["version"] == 1 and raw["volumes"] == [entry]
    assert sum(e["seconds"] for e in entry["slices"]) <= entry["active_seconds"]


def test_pace_counts_human_slices_over_active_time():
    measured = pace(_timed_ledger())
    assert measured.n_done == 4 and measured.seconds_per_slice == pytest.approx(86.5 / 4)
    assert "4 of 10 planned slices in 1.4 active min" in measured.against(10)
    assert "after the first" in pace(SliceLedger(4)).against(10)


def test_review_order_puts_the_fallbacks_slices_first_or_alone():
    from napari_slicebudget.logic.propagation import review_order

    details = {2: MachineLabel("sli2vol", "learned", 0.9), 3: MachineLabel("sli2vol", "interpolation", 0.7),
               5: MachineLabel("sli2vol", "learned", 0.4), 7: MachineLabel("sli2vol", "interpolation", 0.8)}
    assert review_order([7, 5, 3, 2], details) == [2, 3, 5, 7]
    assert review_order([7, 5, 3, 2], details, "interpolated first") == [3, 7, 2, 5]
    assert review_order([7, 5, 3, 2], details, "only interpolated") == [3, 7]
    assert review_order([7, 5, 3, 2], details, "least confident first") == [5, 3, 7, 2]
    with pytest.raises(UserError, match="unknown review order"):
        review_order([2], details, "by colour")


def test_adaptive_needs_a_painted_slice_and_adds_one_unannotated_slice(phantom):
    from napari_slicebudget.logic.propagation import suggest_adaptive

    image, labels = phantom
    ledger = SliceLedger(image.shape[0]).with_plan(Plan("fixed", 0, 1, 0.05, (3,), 0.0))
    with pytest.raises(UserError, match="at least one slice"):
        suggest_adaptive(image.array, np.zeros_like(labels.array), ledger)
    middle = image.shape[0] // 2
    painted = np.zeros_like(labels.array)
    painted[middle] = labels.array[middle]
    ledger = ledger.after_stroke({middle: True}, claims=True)
    slices = suggest_adaptive(image.array, painted, ledger)
    assert 3 in slices and len(slices) == 2 and middle not in (set(slices) - {3})


def test_hours_are_converted_with_the_annotators_own_pace(tmp_path):
    from slicebudget.planning.costs import from_config

    study = load_study(_study(tmp_path))
    fallback = from_config(None)
    assert session_costs(SliceLedger(12), fallback) is fallback  # nothing timed yet
    costs = session_costs(_timed_ledger(), fallback)
    assert costs.seconds_per_object_slice == pytest.approx(32.5) and costs.seconds_per_empty_slice == 3.5
    assert costs.seconds_per_volume == pytest.approx(18.0) and "this session" in costs.source
    fast = recommend(study, 1.0, depth=20, unit="hours", costs=costs)
    slow = recommend(study, 1.0, depth=20, unit="hours")
    assert fast.total > slow.total  # a faster annotator buys more slices with the same hour
    assert "Hours from costs measured from this session" in fast.text()
