"""The dock widgets in a real viewer, docked as napari docks them (behind its proxies), used in the
order people use them: repeat a click, undo, close, reopen."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest

from slicebudget.io import write_volume

from napari_slicebudget.logic.geometry import layer_kwargs
from napari_slicebudget.widgets import _common
from napari_slicebudget.widgets.planner import SHORTCUTS, SlicePlannerWidget
from napari_slicebudget.widgets.sessions import viewer_camera
from napari_slicebudget.widgets.propagate import INTO_SEPARATE
from napari_slicebudget.widgets.sessions import session_of, sessions
from tests_helpers import foreground_centre, make_volume, paint_disk, wait_for_workers

PLUGIN = "napari-slicebudget"


@pytest.fixture
def errors(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr(_common, "show_error", messages.append)
    import napari.utils.notifications as notifications

    monkeypatch.setattr(notifications, "show_error", messages.append)
    return messages


def dock(viewer, name: str):
    """The widget as napari docks it: it gets a proxied viewer, like every plugin widget."""
    return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]


def press(viewer, key, modifier=Qt.KeyboardModifier.NoModifier):
    """A real key press on the canvas, as the annotator makes it."""
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    QTest.keyClick(canvas, key, modifier)


def _planned(viewer, qtbot, phantom, policy="fixed", count=4, name="Slice planner"):
    image, labels = phantom
    viewer.add_image(image.array, **layer_kwargs(image, "phantom", "image", channel="CT"))
    planner = dock(viewer, name)
    planner.policy_combo.setCurrentText(policy)
    planner.mode_combo.setCurrentText("slice count")
    planner.count_spin.setValue(count)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    return planner, planner.session(), labels.array


def assert_marks_match(session) -> None:
    """The canvas frames exactly the slices the ledger says, each in its state's colour."""
    from napari_slicebudget.logic.planning import STATUS_COLORS, display_status, marked_slices

    marks = session.marks_layer()
    framed = [int(round(outline[0, 0])) for outline in marks.data]
    assert sorted(framed) == marked_slices(session.ledger)
    for s, color in zip(framed, marks.edge_color):
        np.testing.assert_allclose(color, STATUS_COLORS[display_status(session.ledger, s)])


def _organ_slices(reference: np.ndarray) -> np.ndarray:
    return np.flatnonzero(reference.reshape(reference.shape[0], -1).any(axis=1))


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
    cut = tmp_path / "cut.nii"
    write_volume(volume.array, volume, cut, compress=False)
    cut.write_bytes(cut.read_bytes()[:-200])
    assert viewer.open(str(cut), plugin=PLUGIN) == []
    assert len(viewer.layers) == 3 and "broken.nrrd" in errors[-2] and "cut.nii: truncated file" in errors[-1]


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


def test_suggesting_again_replans_the_same_session(make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom, "fixed", 4)
    s = int(session.ledger.suggested[1])
    paint_disk(session.labels_layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.progress()[0] == 1)
    planner.policy_combo.setCurrentText("coreset")
    planner.count_spin.setValue(5)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    again = planner.session()
    assert again.key == session.key and len(sessions(viewer)) == 1
    assert [layer.name for layer in viewer.layers] == ["phantom", "phantom annotation", "phantom slice marks"]
    assert again.ledger.plan.policy == "coreset" and [p.policy for p in again.ledger.past_plans] == ["fixed"]
    assert again.ledger.provenance[s] == "human-painted"
    assert len(session.marks_layer().data) == len(set(again.ledger.suggested) | {s})  # the plan, and slice s
    done = int(s in again.ledger.suggested)
    other = "" if done else " (+1 other annotated slices)"
    assert planner.progress_label.text() == f"coreset policy, seed 0: {done} of 5 suggested slices annotated{other}"
    assert planner.count_spin.value() == 5 and not errors


def test_shortcuts_mark_empty_warns_and_ctrl_z_takes_it_back(make_napari_viewer, qtbot, phantom, errors):
    from napari.utils.key_bindings import KeyBinding

    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom)
    suggested = list(session.ledger.suggested)
    assert len(suggested) == 4 and session.current_slice() == suggested[0]
    keymap = {KeyBinding.from_str(str(k)): v for k, v in viewer.keymap.items()}
    keymap[KeyBinding.from_str(SHORTCUTS["next"])](viewer)
    assert session.current_slice() == suggested[1]
    keymap[KeyBinding.from_str(SHORTCUTS["previous"])](viewer)
    assert session.current_slice() == suggested[0]
    keymap[KeyBinding.from_str(SHORTCUTS["empty"])](viewer)
    assert session.ledger.provenance[suggested[0]] == "human-marked-empty" and session.ledger.progress() == (1, 4)
    keymap[KeyBinding.from_str(SHORTCUTS["todo"])](viewer)
    assert session.current_slice() == suggested[1]
    assert planner.slice_list.count() == 4 and "1 of 4 suggested slices annotated" in planner.progress_label.text()
    assert "1 of 4 suggested" in _common.text_overlay(viewer).text
    press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undoes the empty mark
    assert session.ledger.provenance[suggested[0]] == "not-annotated" and session.ledger.progress() == (0, 4)
    press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert session.ledger.provenance[suggested[0]] == "human-marked-empty"
    # a slice with labels: the first press only warns, the second erases and marks, one undo restores
    s = int(_organ_slices(reference)[len(_organ_slices(reference)) // 2])
    session.go_to(s)
    paint_disk(session.labels_layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.provenance[s] == "human-painted")
    painted = session.labels_layer.data[s].copy()
    planner.mark_empty()
    assert "press Mark empty again" in planner.message_label.text() and session.ledger.provenance[s] == "human-painted"
    planner.mark_empty()
    assert session.ledger.provenance[s] == "human-marked-empty" and not session.labels_layer.data[s].any()
    marks = session.marks_layer()
    assert not np.allclose(marks.edge_color[0], marks.edge_color[1])
    press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.ledger.provenance[s] == "human-painted"
    np.testing.assert_array_equal(session.labels_layer.data[s], painted)


def test_review_list_follows_undo_and_counts_what_it_says(make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom)
    fg = _organ_slices(reference)
    first, last = int(fg[2]), int(fg[-3])
    layer = session.labels_layer
    for s in (first, last):
        paint_disk(layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.human.sum() == 2)
    human = layer.data[[first, last]].copy()
    widget = dock(viewer, "Propagate masks")
    widget.method_combo.setCurrentText("nearest")
    widget.propagate()
    assert widget.progress_bar.maximum() == 0  # busy until the method reports
    wait_for_workers(qtbot, widget)
    pending = session.ledger.pending_review
    assert set(pending) == set(range(first + 1, last)) and widget.review_list.count() == pending.size
    assert f"proposed {pending.size} slices" in widget.status.text()
    assert_marks_match(session)
    assert "machine-proposed by nearest" in widget.review_list.item(0).text()
    np.testing.assert_array_equal(layer.data[[first, last]], human)
    press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.ledger.pending_review.size == 0 and widget.review_list.count() == 0
    assert not layer.data[first + 1:last].any()
    assert_marks_match(session)
    session.redo()
    assert widget.review_list.count() == pending.size
    widget.review(True, slices=[first + 1])
    widget.review(False)
    assert session.ledger.provenance[first + 1] == "machine-accepted" and not layer.data[first + 2:last].any()
    assert widget.review_list.count() == 0
    assert_marks_match(session)
    np.testing.assert_array_equal(layer.data[[first, last]], human)
    # into a preview layer: the working layer is untouched until the annotator accepts
    widget.target_combo.setCurrentText(INTO_SEPARATE)
    widget.propagate()
    wait_for_workers(qtbot, widget)
    preview = widget.preview_layer()
    assert preview is not None and preview.data[first + 2].any() and not layer.data[first + 2].any()
    assert session.ledger.provenance[first + 2] == "not-annotated"
    widget.review(True, slices=[first + 2])
    assert layer.data[first + 2].any() and session.ledger.provenance[first + 2] == "machine-accepted"
    assert not preview.data[first + 2].any()


def test_a_stroke_right_before_close_is_kept_and_the_reader_resumes(make_napari_viewer, qtbot, tmp_path, phantom,
                                                                    errors):
    image, labels = phantom
    path = tmp_path / "phantom_0000.nii.gz"
    write_volume(image.array, image, path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    planner = dock(viewer, "Slice planner")
    planner.policy_combo.setCurrentText("random")
    planner.seed_spin.setValue(7)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    assert session.autosave_folder == tmp_path / "phantom_0000.nii.gz.slicebudget"
    s = int(_organ_slices(labels.array)[3])
    paint_disk(session.labels_layer, s, *foreground_centre(labels.array, s))
    saved = session.labels_layer.data.copy()
    viewer.layers.clear()  # closing at once: the stroke was not even read yet
    assert session.closed
    # reopening the image restores the session with no widget docked
    other = make_napari_viewer()
    other.open(str(path), plugin=PLUGIN)
    restored, = sessions(other)
    assert restored.ledger.provenance[s] == "human-painted" and restored.ledger.plan.seed == 7
    np.testing.assert_array_equal(restored.labels_layer.data, saved)
    shown = dock(other, "Slice planner")
    assert shown.policy_combo.currentText() == "random" and shown.seed_spin.value() == 7
    assert shown.session().key == restored.key and len(other.layers) == 3
    # the plugin's sessions are saved in format 2; an autosave of the 0.1 plugin is refused, not misread
    other.layers.clear()
    (restored.autosave_folder / "state.json").write_text(json.dumps({"version": 1, "depth": 24, "flags": {}}))
    other.open(str(path), plugin=PLUGIN)
    assert len(other.layers) == 1 and "format 1" in errors[-1]
    assert (restored.autosave_folder / "labels.nii.gz").is_file()
    planner = dock(other, "Slice planner")
    planner.suggest()
    assert "format 1" in errors[-1] and len(other.layers) == 1  # nor overwritten by a new session


def test_export_defaults_fit_the_data_and_status_recovers(make_napari_viewer, qtbot, tmp_path, errors):
    volume = make_volume(shape=(10, 16, 16))
    mri = volume.with_array(np.abs(volume.array) * 400)
    path = tmp_path / "brain_0003_0000.nii.gz"
    write_volume(mri.array, mri, path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    planner = dock(viewer, "Slice planner")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    session.go_to(2)
    planner.mark_empty()
    export = dock(viewer, "Export")
    export.fill_defaults()
    assert export.case_edit.text() == "brain_0003" and export.channel_combo.currentText() == ""
    assert "not CT Hounsfield units" in export.channel_note.text()
    export.folder_edit.setText(str(tmp_path / "Dataset5_Brain"))
    export.classes_edit.setText("hippocampus")
    export.export()
    wait_for_workers(qtbot, export)
    assert "choose the image's channel name" in errors[-1] and "Export failed" in export.status.text()
    export.channel_combo.setCurrentText("T2")
    export.export()
    wait_for_workers(qtbot, export)
    assert export.last_result.case_id == "brain_0003" and "Wrote case brain_0003" in export.status.text()
    export.export()  # the same case again: refused, and the status says so (not "Exporting...")
    wait_for_workers(qtbot, export)
    assert "already exists" in errors[-1] and export.status.text().startswith("Export failed")
    fresh = dock(viewer, "Export")
    fresh.folder_edit.setText(str(tmp_path / "Dataset5_Brain"))
    fresh.fill_defaults()
    assert fresh.channel_combo.currentText() == "T2" and fresh.classes_edit.text() == "hippocampus"


def test_budget_panel_plans_with_the_study_planner_on_own_depth(make_napari_viewer, qtbot, tmp_path, phantom, errors):
    from slicebudget.bench.planning import synthetic_runs, write_synthetic_study
    from slicebudget.study.store import StudyStore

    viewer = make_napari_viewer()
    _planned(viewer, qtbot, phantom, count=2)
    folder = write_synthetic_study(tmp_path / "study", synthetic_runs(seed=22))
    with StudyStore(folder) as store:
        first = store.runs()[0]["run_id"]
        store.mark_pending(first)
    widget = dock(viewer, "Budget panel")
    assert widget.depth_spin.value() == 24  # the annotator's volume, not the study's
    widget.summary_edit.setText(str(folder))
    widget.load()
    assert "Unfinished study: 1 of 36 runs are not done" in widget.warning_label.text()
    widget.volumes_spin.setValue(6)
    widget.budget_spin.setValue(30)
    text = widget.advice_label.text()
    assert text.startswith("For 30 slices on volumes of 24 slices: annotate")
    assert "Expected IoU" in text and "80% interval" in text and "Planner self-check" in text
    assert int(text.split("annotate ")[1].split(" volume")[0]) <= 6
    widget.unit_combo.setCurrentText("hours")
    widget.budget_spin.setValue(1.0)
    assert widget.advice_label.text().startswith("For 1 hours on volumes of 24 slices")
    assert "No slice annotated yet" in widget.pace_label.text()
    widget.summary_edit.setText(str(tmp_path / "nope.json"))
    widget.load()
    assert "file not found" in errors[-1] and widget.warning_label.text() == ""


def test_reformatted_views_show_superior_up(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    _planned(viewer, qtbot, phantom)
    assert viewer_camera(viewer).orientation2d[0] == "down"  # axial: anterior at the top, as usual
    viewer.dims.order = (1, 0, 2)  # coronal: the slice axis is drawn vertically
    assert viewer_camera(viewer).orientation2d[0] == "up"
    viewer.dims.order = (2, 0, 1)  # sagittal
    assert viewer_camera(viewer).orientation2d[0] == "up"
    viewer.dims.order = (0, 1, 2)
    assert viewer_camera(viewer).orientation2d[0] == "down"


def test_labels_changed_behind_the_plugin_are_never_counted_as_human(make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    image, labels = phantom
    viewer.add_image(image.array, **layer_kwargs(image, "phantom", "image"))
    prior = viewer.add_labels(labels.array.astype(np.uint8), **layer_kwargs(image, "prediction", "labels"))
    planner = dock(viewer, "Slice planner")
    planner.labels_combo.setCurrentText("prediction")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    assert session.labels_layer.name == "prediction" and not session.ledger.human.any()  # loaded, not painted
    organ = _organ_slices(labels.array)
    a, b = int(organ[2]), int(organ[-3])
    for s in (a, b):
        paint_disk(prior, s, *foreground_centre(labels.array, s), label=2)
    qtbot.waitUntil(lambda: session.ledger.human.sum() == 2)
    widget = dock(viewer, "Propagate masks")
    widget.method_combo.setCurrentText("nearest")
    widget.propagate()
    wait_for_workers(qtbot, widget)
    target = int(session.ledger.pending_review[0])
    paint_disk(prior, target, *foreground_centre(labels.array, target), label=3, size=3)
    qtbot.waitUntil(lambda: session.ledger.provenance[target] == "human-painted")
    checkpoints = []
    session.checkpoint = lambda: checkpoints.append(1)
    for s in (a, b, target):  # moving between slices refreshes the layer, and is not a labels change
        session.go_to(s)
    qtbot.wait(200)
    assert not checkpoints
    prior.undo()  # an undo outside the plugin: the machine's labels are back on that slice
    qtbot.waitUntil(lambda: session.ledger.provenance[target] == "not-annotated")
    assert prior.data[target].any() and session.ledger.provenance[a] == "human-painted"
    # napari's history and the plugin's no longer match: the plugin's starts afresh, undoing nothing wrong
    planner.nav_buttons["Undo"].click()
    assert "nothing to undo" in planner.message_label.text() and session.ledger.pending_review.size > 0
    assert checkpoints  # saved in full: the outside change may touch slices no record carries
    session.go_to(next(s for s in range(prior.data.shape[0]) if not prior.data[s].any()))
    planner.nav_buttons["Mark slice empty"].click()
    planner.nav_buttons["Undo"].click()
    assert planner.message_label.text() == "undid mark empty"


def test_quitting_saves_and_pointer_moves_count_as_activity(make_napari_viewer, qtbot, tmp_path, phantom, errors):
    from qtpy.QtWidgets import QApplication

    from napari_slicebudget.logic.autosave import load_session
    from tests_helpers import Clock

    image, labels = phantom
    path = tmp_path / "ct.nii.gz"
    write_volume(image.array, image, path)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin=PLUGIN)
    planner = dock(viewer, "Slice planner")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    clock = session.work.clock = Clock()
    session.work.arrived()
    clock.advance(90)
    canvas = viewer.window._qt_viewer.canvas.native
    QTest.mouseMove(canvas, canvas.rect().center())  # looking at the slice, pointer on the canvas
    qtbot.wait(50)
    clock.advance(90)
    s = int(_organ_slices(labels.array)[4])
    paint_disk(session.labels_layer, s, *foreground_centre(labels.array, s))
    session.read_strokes()
    assert session.ledger.timing[s].seconds == 180  # two 90 s intervals, neither a break
    QApplication.instance().aboutToQuit.emit()
    assert session.closed
    restored = load_session(session.autosave_folder, session.image)
    assert restored.ledger.provenance[s] == "human-painted" and restored.ledger.timing[s].seconds == 180


def test_review_list_puts_interpolated_slices_first_and_adaptive_suggests_the_next_slice(
        make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom)
    fg = _organ_slices(reference)
    first, last = int(fg[2]), int(fg[-3])
    for s in (first, last):
        paint_disk(session.labels_layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.human.sum() == 2)
    widget = dock(viewer, "Propagate masks")
    widget.method_combo.setCurrentText("sdf")
    widget.propagate()
    wait_for_workers(qtbot, widget)
    rows = [widget.review_list.item(i).text() for i in range(widget.review_list.count())]
    assert rows and all("by sdf, interpolation, confidence" in r for r in rows)
    widget.order_combo.setCurrentText("only interpolated")
    assert widget.review_list.count() == len(rows)  # every sdf slice is interpolated
    widget.order_combo.setCurrentText("least confident first")
    shown = [int(widget.review_list.item(i).data(256)) for i in range(widget.review_list.count())]
    confidences = [session.ledger.machine[s].confidence for s in shown]
    assert confidences == sorted(confidences)
    # adaptive: one more suggested slice, never an annotated one
    before = set(session.ledger.suggested)
    planner.policy_combo.setCurrentText("adaptive")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    added = set(session.ledger.suggested) - before
    assert len(added) == 1 and not session.ledger.human[list(added)].any()
    assert session.ledger.plan.policy == "adaptive" and not errors


def test_adaptive_without_a_painted_slice_says_so(make_napari_viewer, qtbot, phantom, errors):
    viewer = make_napari_viewer()
    planner, session, _ = _planned(viewer, qtbot, phantom)
    planner.policy_combo.setCurrentText("adaptive")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    assert any("paint (or mark empty) at least one slice" in m for m in errors), errors
    assert session.ledger.plan.policy == "fixed"  # nothing changed


def test_adapt_to_these_images_in_a_worker_then_propagate_with_it(make_napari_viewer, qtbot, phantom, errors):
    from slicebudget.propagation.sli2vol.model_io import load_model
    from slicebudget.propagation.sli2vol.train import TrainingSettings

    viewer = make_napari_viewer()
    planner, session, reference = _planned(viewer, qtbot, phantom)
    widget = dock(viewer, "Propagate masks")
    widget.adaptation = TrainingSettings(iterations=3, batch=2, crop=16, seed=0)
    widget.adapt()
    wait_for_workers(qtbot, widget)
    assert any("at least 2 open 3D images, 1 open" in m for m in errors) and widget.model_path is None
    image, _ = phantom
    viewer.add_image(image.array[::-1].copy(), name="second")
    widget.adapt()
    wait_for_workers(qtbot, widget, timeout=180000)  # a child process starts torch: slow on a busy machine
    assert widget.model_path is not None and load_model(widget.model_path)[1] == load_model()[1]
    assert "propagation uses it from now on" in widget.status.text()
    s = int(_organ_slices(reference)[3])
    paint_disk(session.labels_layer, s, *foreground_centre(reference, s))
    qtbot.waitUntil(lambda: session.ledger.human.sum() == 1)
    widget.method_combo.setCurrentText("sli2vol")
    widget.propagate()
    wait_for_workers(qtbot, widget)
    assert session.ledger.pending_review.size > 0
    assert all(session.ledger.machine[p].source == "learned" for p in session.ledger.pending_review)
