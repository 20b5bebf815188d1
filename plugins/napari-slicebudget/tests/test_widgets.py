"""The dock widgets in a real (offscreen) viewer: opening files, bad input, undo, review, autosave."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.io import write_volume

from napari_slicebudget.widgets import _common
from napari_slicebudget.widgets.budget import BudgetWidget
from napari_slicebudget.widgets.export import ExportWidget
from napari_slicebudget.widgets.planner import SHORTCUTS, SlicePlannerWidget
from napari_slicebudget.widgets.propagate import INTO_SEPARATE, PropagateWidget
from napari_slicebudget.widgets.session import session_of
from tests_helpers import foreground_centre, make_volume, paint_disk, wait_for_workers

PLUGIN = "napari-slicebudget"


@pytest.fixture
def errors(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr(_common, "show_error", messages.append)
    import napari.utils.notifications as notifications

    monkeypatch.setattr(notifications, "show_error", messages.append)
    return messages


def test_viewer_open_reads_images_and_labels_on_one_grid(make_napari_viewer, tmp_path, errors):
    volume = make_volume()
    image_path = tmp_path / "ct.nii.gz"
    label_path = tmp_path / "labelsTr" / "ct.nii.gz"
    write_volume(volume.array, volume, image_path)
    write_volume((volume.array > 0.5).astype(np.uint8), volume, label_path)
    write_volume((volume.array > 1).astype(np.uint8) * 2, volume, tmp_path / "seg.mha")
    viewer = make_napari_viewer()
    image, = viewer.open(str(image_path), plugin=PLUGIN)
    labels, = viewer.open(str(label_path), plugin=PLUGIN)
    forced, = viewer.open(str(tmp_path / "seg.mha"), plugin=PLUGIN, layer_type="labels")
    assert type(image).__name__ == "Image" and type(labels).__name__ == "Labels" and type(forced).__name__ == "Labels"
    np.testing.assert_allclose(image.scale, (3.0, 0.7, 0.8))
    for index in [(0, 0, 0), (5, 9, 13)]:
        np.testing.assert_allclose(labels.data_to_world(index), image.data_to_world(index), atol=1e-6)
    broken = tmp_path / "broken.nrrd"
    broken.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 4 4\n")
    assert viewer.open(str(broken), plugin=PLUGIN) == []
    assert len(viewer.layers) == 3 and errors and "broken.nrrd" in errors[-1]


def test_planner_refuses_2d_image_and_mismatched_labels(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    planner = SlicePlannerWidget(viewer)
    viewer.add_image(np.zeros((32, 32), np.float32), name="flat")
    planner.image_combo.setCurrentText("flat")
    planner.suggest()
    assert "2D" in errors[-1] and "flat" in errors[-1] and len(viewer.layers) == 1
    viewer.add_image(np.zeros((8, 16, 16), np.float32), name="vol")
    viewer.add_labels(np.zeros((8, 16, 15), np.uint8), name="wrong")
    planner.image_combo.setCurrentText("vol")
    planner.labels_combo.setCurrentText("wrong")
    planner.suggest()
    assert "'wrong' has shape (8, 16, 15)" in errors[-1] and session_of(viewer.layers["wrong"]) is None
    assert [layer.name for layer in viewer.layers] == ["flat", "vol", "wrong"]  # nothing added or lost


def _planned(viewer, qtbot, phantom, policy="fixed", count=4):
    from napari_slicebudget.logic.geometry import layer_kwargs

    image, labels = phantom
    viewer.add_image(image.array, **layer_kwargs(image, "phantom", "image"))
    planner = SlicePlannerWidget(viewer)
    planner.policy_combo.setCurrentText(policy)
    planner.mode_combo.setCurrentText("slice count")
    planner.count_spin.setValue(count)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    return planner, planner.session(), labels.array


def test_navigation_shortcuts_and_empty_mark(make_napari_viewer, qtbot, phantom, errors):
    from napari.utils.key_bindings import KeyBinding

    viewer = make_napari_viewer()
    planner, session, _ = _planned(viewer, qtbot, phantom)
    suggested = list(session.ledger.suggested)
    assert len(suggested) == 4 and session.current_slice() == suggested[0]
    keymap = {KeyBinding.from_str(str(k)): v for k, v in viewer.keymap.items()}
    keymap[KeyBinding.from_str(SHORTCUTS["next"])](viewer)
    assert session.current_slice() == suggested[1]
    keymap[KeyBinding.from_str(SHORTCUTS["previous"])](viewer)
    assert session.current_slice() == suggested[0]
    keymap[KeyBinding.from_str(SHORTCUTS["empty"])](viewer)
    assert session.ledger.status(suggested[0]) == "empty" and session.ledger.progress() == (1, 4)
    keymap[KeyBinding.from_str(SHORTCUTS["todo"])](viewer)
    assert session.current_slice() == suggested[1]
    assert planner.slice_list.count() == 4 and "1 of 4 annotated" in planner.progress_label.text()
    marks = session.marks_layer
    assert len(marks.data) == 4 and not np.allclose(marks.edge_color[0], marks.edge_color[1])
    assert "1 of 4 annotated" in _common.text_overlay(viewer).text


def test_propagation_is_undoable_and_reviewable(make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom)
    fg = np.flatnonzero(reference.reshape(reference.shape[0], -1).any(axis=1))
    first, last = int(fg[2]), int(fg[-3])
    layer = session.labels_layer
    for s in (first, last):
        paint_disk(layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.human_annotated.sum() == 2)
    human = layer.data[[first, last]].copy()
    widget = PropagateWidget(viewer)
    widget.method_combo.setCurrentText("nearest")
    widget.propagate()
    wait_for_workers(qtbot, widget)
    pending = session.ledger.pending_review
    assert set(pending) == set(range(first + 1, last)) and widget.review_list.count() == pending.size
    np.testing.assert_array_equal(layer.data[[first, last]], human)
    layer.undo()
    qtbot.waitUntil(lambda: session.ledger.pending_review.size == 0)
    assert not layer.data[first + 1:last].any()
    layer.redo()
    qtbot.waitUntil(lambda: session.ledger.pending_review.size == pending.size)
    widget.review(True, slices=[first + 1])
    widget.review(False)
    assert session.ledger.status(first + 1) == "accepted" and not layer.data[first + 2:last].any()
    np.testing.assert_array_equal(layer.data[[first, last]], human)
    # into a separate layer: the working layer is untouched until the annotator accepts
    widget.target_combo.setCurrentText(INTO_SEPARATE)
    widget.propagate()
    wait_for_workers(qtbot, widget)
    assert widget.separate_layer is not None and widget.separate_layer.data[first + 2].any()
    assert not layer.data[first + 2].any()
    widget.review(True, slices=[first + 2])
    assert layer.data[first + 2].any() and session.ledger.status(first + 2) == "accepted"


def test_autosave_and_resume(make_napari_viewer, qtbot, tmp_path, phantom, errors):
    image, labels = phantom
    path = tmp_path / "phantom.nii.gz"
    write_volume(image.array, image, path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    planner = SlicePlannerWidget(viewer)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    assert session.autosave_folder == tmp_path / "phantom.nii.gz.slicebudget"
    s = int(np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))[3])
    paint_disk(session.labels_layer, s, *foreground_centre(labels.array, s))
    qtbot.waitUntil(lambda: session.ledger.human_annotated[s])
    assert session._save_timer.isActive()  # debounced save pending
    session.save_now()
    wait_for_workers(qtbot, session)
    saved = session.labels_layer.data.copy()
    statuses = session.ledger.statuses()
    viewer.layers.clear()
    viewer.open(str(path), plugin=PLUGIN)
    restored = planner.session()
    assert restored is not None and restored is not session
    assert restored.ledger.statuses() == statuses and restored.ledger.suggested == session.ledger.suggested
    np.testing.assert_array_equal(restored.labels_layer.data, saved)


def test_export_into_incompatible_dataset_notifies(make_napari_viewer, qtbot, tmp_path, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, _ = _planned(viewer, qtbot, phantom, count=2)
    planner.mark_empty()
    root = tmp_path / "Dataset9"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2"}, "labels": {"background": 0, "a": 1},
                                                   "numTraining": 0, "file_ending": ".nii.gz"}))
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    (root / "imagesTr" / "x_0000.nii.gz").write_bytes(b"")
    (root / "labelsTr" / "x.nii.gz").write_bytes(b"")
    before = sorted(p.name for p in root.rglob("*"))
    widget = ExportWidget(viewer)
    widget.folder_edit.setText(str(root))
    widget.export()
    wait_for_workers(qtbot, widget)
    assert errors and "Export failed" in errors[-1] and "channels" in errors[-1]
    assert sorted(p.name for p in root.rglob("*")) == before
    assert "left as it was" in widget.status.text()


def test_budget_panel_shows_recommendation_and_pace(make_napari_viewer, qtbot, tmp_path, phantom, errors):
    from test_logic import SUMMARY

    viewer = make_napari_viewer()
    _planned(viewer, qtbot, phantom, count=2)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    widget = BudgetWidget(viewer)
    widget.summary_edit.setText(str(path))
    widget.load()
    widget.budget_spin.setValue(120)
    assert "annotate 12 volumes at 10 slices each" in widget.advice_label.text()
    assert "Time against plan" not in widget.pace_label.text()
    widget.summary_edit.setText(str(tmp_path / "nope.json"))
    widget.load()
    assert "file not found" in errors[-1]
