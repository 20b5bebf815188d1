"""Planning, propagation edits, autosave and the budget panel's logic (no Qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError

from napari_slicebudget.logic.autosave import has_session, load_session, save_session, session_folder
from slicebudget.report import read_recommendations as load_summary

from napari_slicebudget.logic.budget import LogEntry, pace, recommend
from napari_slicebudget.logic.ledger import SliceLedger
from napari_slicebudget.logic.planning import overlay_text, resolve_slice_count, slice_outlines, suggest_slices
from napari_slicebudget.logic.propagation import (
    clear_edits,
    copy_edits,
    drop_protected,
    run_propagation,
    separate_layer_data,
    working_layer_edits,
)


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


def test_overlay_tells_status_and_next_slice():
    ledger = SliceLedger(10).with_plan([2, 6])
    text = overlay_text(ledger, 2)
    assert "suggested slice 2" in text and "0 of 2 annotated" in text and "next to do: 6" in text


def _sparse_case(phantom):
    image, labels = phantom
    fg = np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))
    chosen = [int(fg[1]), int(fg[-2])]
    working = np.zeros(labels.shape, dtype=np.uint8)
    working[chosen] = labels.array[chosen]
    ledger = SliceLedger(labels.shape[0]).with_plan(chosen).with_painted(working, chosen)
    return image, labels, working, ledger, chosen


def test_propagation_edits_never_touch_human_slices(phantom):
    image, labels, working, ledger, chosen = _sparse_case(phantom)
    calls = []
    result = run_propagation(image.array, working, ledger, "sdf", progress=lambda d, t: calls.append((d, t)))
    edits = working_layer_edits(working, result, ledger)
    assert calls and calls[-1][0] == calls[-1][1]
    assert edits.size > 0 and not np.isin(edits.indices[0], chosen).any()
    assert set(edits.slices) == set(range(chosen[0] + 1, chosen[1]))
    applied = working.copy()
    applied[edits.indices] = edits.values
    np.testing.assert_array_equal(applied[chosen], working[chosen])
    inner = slice(chosen[0] + 1, chosen[1])
    overlap = (applied[inner] > 0) & (labels.array[inner] > 0)
    assert overlap.sum() > 0.5 * (labels.array[inner] > 0).sum()  # a sensible fill, not noise
    separate = separate_layer_data(result, ledger)
    assert not separate[chosen].any() and separate[inner].any()
    # the annotator paints a slice while propagation runs: that slice's edits are dropped
    painted_meanwhile = ledger.with_painted(applied, [chosen[0] + 1])
    kept = drop_protected(edits, painted_meanwhile)
    assert not np.isin(kept.indices[0], [chosen[0] + 1]).any() and kept.size < edits.size


def test_reject_and_accept_edits():
    data = np.zeros((4, 5, 5), np.uint8)
    data[1, 1:3, 1:3] = 2
    cleared = clear_edits(data, [1])
    out = data.copy()
    out[cleared.indices] = cleared.values
    assert not out.any() and cleared.size == 4
    source = np.zeros_like(data)
    source[2, 0, 0] = 1
    copied = copy_edits(data, source, [2])
    out = data.copy()
    out[copied.indices] = copied.values
    assert out[2, 0, 0] == 1 and out[1].sum() == 8


def test_autosave_round_trip_and_grid_check(phantom, tmp_path):
    image, labels = phantom
    folder = session_folder(tmp_path / "ct.nii.gz")
    assert folder.name == "ct.nii.gz.slicebudget" and not has_session(folder)
    s = int(np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))[2])
    painted = np.zeros(labels.shape, dtype=np.int32)
    painted[s] = labels.array[s]
    ledger = SliceLedger(labels.shape[0]).with_plan([s, 0], policy="fixed", seed=1).with_painted(painted, [s], now=1.0)
    ledger = ledger.with_empty(0, now=2.0)
    save_session(folder, painted, image, ledger)
    assert has_session(folder) and not list(folder.glob(".tmp-*"))
    back_labels, back = load_session(folder, image)
    np.testing.assert_array_equal(back_labels, painted)
    assert back.statuses() == ledger.statuses() and back.progress() == (2, 2) and back.log == ledger.log
    other = image.with_array(np.zeros((24, 40, 40), np.float32))
    from dataclasses import replace

    shifted = replace(other, geometry=replace(other.geometry, origin=(0.0, 0.0, 0.0)))
    with pytest.raises(UserError, match="geometry does not match"):
        load_session(folder, shifted)
    (folder / "state.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        load_session(folder, image)


SUMMARY = {
    "version": 1, "runs": [],
    "recommendations": [
        {"budget_slices": 60, "n_volumes": 6, "slices_per_volume": 10.0, "density": 0.1, "volume_fraction": 0.3,
         "policy": "fixed", "interpolation": "off", "model": "unet2d", "dims": 2, "mean_iou": 0.71,
         "ci95": [0.68, 0.74], "n_repeats": 3, "sentence": "For 60 slices, annotate 6 volumes at 10 slices each."},
        {"budget_slices": 240, "n_volumes": 12, "slices_per_volume": 20.0, "density": 0.2, "volume_fraction": 0.6,
         "policy": "random", "interpolation": "off", "model": "unet2d", "dims": 2, "mean_iou": 0.80,
         "ci95": None, "n_repeats": 1, "sentence": "For 240 slices, annotate 12 volumes at 20 slices each."},
    ],
}


def test_budget_panel_reads_summary_and_scales_to_budget(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    recs = load_summary(path)
    advice = recommend(recs, 300)
    assert advice.level.budget_slices == 240 and advice.slices_per_volume == 20 and advice.n_volumes == 15
    assert "annotate 15 volumes at 20 slices each" in advice.text()
    small = recommend(recs, 30)  # below every level: the smallest level's shape
    assert small.level.budget_slices == 60 and small.n_volumes == 3
    with pytest.raises(UserError, match="no recommendation"):
        recommend(recs, 100, dims=3)
    path.write_text(json.dumps({"version": 1, "recommendations": [{"budget_slices": 1}]}))
    with pytest.raises(UserError, match="lacks"):
        load_summary(path)
    with pytest.raises(UserError, match="file not found"):
        load_summary(tmp_path / "missing.json")


def test_pace_caps_breaks():
    log = [LogEntry(t, i, "annotated") for i, t in enumerate([0.0, 30.0, 90.0, 5000.0])]
    measured = pace(log, idle_cap=300.0)
    assert measured.n_done == 4 and measured.active_seconds == pytest.approx(30 + 60 + 300)
    assert measured.seconds_per_slice == pytest.approx(130.0)
    assert "4 of 10 planned slices" in measured.against(10)
    assert pace(log[:1]).seconds_per_slice is None
