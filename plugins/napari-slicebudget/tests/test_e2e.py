"""The annotator's day, end to end in a real viewer: open, suggest, suggest again, paint, mark empty,
propagate, undo, redo, review, close, reopen, export; nnU-Net accepts the dataset, and exactly the
slices the annotator made are exported as annotated."""

from __future__ import annotations

import json
import shutil

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest

from slicebudget.io import open_dataset, read_labels, write_volume

from napari_slicebudget.sample_data import phantom_volumes
from napari_slicebudget.widgets.sessions import sessions
from tests_helpers import foreground_centre, paint_disk, wait_for_workers

PLUGIN = "napari-slicebudget"
DOCKS = ("Slice planner", "Propagate masks", "Export", "Budget panel")


def _press(viewer, key, modifier=Qt.KeyboardModifier.NoModifier):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    QTest.keyClick(canvas, key, modifier)


def _open(make_napari_viewer, path):
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1700, 1000)
    viewer.open(str(path), plugin=PLUGIN)
    return viewer, {name: viewer.window.add_plugin_dock_widget(PLUGIN, name)[1] for name in DOCKS}


def test_the_annotators_day(make_napari_viewer, qtbot, tmp_path, artifacts):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    image, reference = phantom_volumes(shape=(32, 64, 64), seed=11)
    reference = reference.array
    path = tmp_path / "case_0007_0000.nii.gz"
    write_volume(image.array, image, path)
    viewer, docks = _open(make_napari_viewer, path)
    planner, propagate, export = docks["Slice planner"], docks["Propagate masks"], docks["Export"]

    # suggest, then try another policy: one session, one marks layer, the new plan
    planner.mode_combo.setCurrentText("slice count")
    planner.count_spin.setValue(6)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    planner.policy_combo.setCurrentText("coreset")
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    assert len(sessions(viewer)) == 1 and len(viewer.layers) == 3 and session.ledger.plan.policy == "coreset"

    # paint two organ slices and one more, mark an empty one (Alt-E)
    organ = np.flatnonzero(reference.reshape(reference.shape[0], -1).any(axis=1))
    painted = [int(organ[1]), int(organ[len(organ) // 2]), int(organ[-2])]
    for s in painted:
        session.go_to(s)
        paint_disk(session.labels_layer, s, *foreground_centre(reference, s), size=9)
    empty = int(next(s for s in range(reference.shape[0]) if not reference[s].any()))
    session.go_to(empty)
    _press(viewer, Qt.Key.Key_E, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: int(session.ledger.human.sum()) == 4)

    # propagate, undo and redo it, accept one proposal, edit another (it becomes the annotator's)
    propagate.method_combo.setCurrentText("sdf")
    propagate.propagate()
    wait_for_workers(qtbot, propagate, timeout=60000)
    pending = session.ledger.pending_review.tolist()
    assert pending and propagate.review_list.count() == len(pending)
    _press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.ledger.pending_review.size == 0 and propagate.review_list.count() == 0
    _press(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert session.ledger.pending_review.tolist() == pending
    propagate.review(True, slices=[pending[0]])
    edited = pending[-1]
    session.go_to(edited)
    paint_disk(session.labels_layer, edited, *foreground_centre(reference, edited), label=2, size=3)
    qtbot.waitUntil(lambda: session.ledger.provenance[edited] == "human-painted")
    human = sorted([*painted, empty, edited])
    still_pending = session.ledger.pending_review.tolist()
    assert still_pending and propagate.review_list.count() == len(still_pending)
    before_close = session.ledger
    labels_before = session.labels_layer.data.copy()

    # close the viewer, reopen the image: everything is back, in a new session
    viewer.close()
    viewer, docks = _open(make_napari_viewer, path)
    planner, export, budget = docks["Slice planner"], docks["Export"], docks["Budget panel"]
    restored = planner.session()
    # tomorrow's review list shows what was left to review, before anything is propagated again
    listed = [docks["Propagate masks"].review_list.item(i).data(256) for i in range(len(still_pending))]
    assert docks["Propagate masks"].review_list.count() == len(still_pending) and sorted(listed) == still_pending
    assert restored.ledger.provenance == before_close.provenance and restored.ledger.plan == before_close.plan
    np.testing.assert_array_equal(restored.labels_layer.data, labels_before)
    assert planner.policy_combo.currentText() == "coreset" and budget.depth_spin.value() == 32
    assert np.flatnonzero(restored.ledger.human).tolist() == human

    # export: the defaults fit the data; only the annotator's slices are annotated
    export.folder_edit.setText(str(tmp_path / "Dataset777_Phantom"))
    export.fill_defaults()
    assert export.case_edit.text() == "case_0007" and export.channel_combo.currentText() == "CT"
    export.classes_edit.setText("organ, tumour")
    export.export()
    wait_for_workers(qtbot, export)
    result = export.last_result
    assert result is not None and result.case_id == "case_0007", export.status.text()
    verify_dataset_integrity(str(result.root), num_processes=1)  # raises on any problem
    dataset = open_dataset(result.root)
    assert [c.case_id for c in dataset.cases] == ["case_0007"] and dataset.ignore_label == 3
    sparse = read_labels(result.label).array
    annotated = np.flatnonzero(~(sparse == 3).reshape(sparse.shape[0], -1).all(axis=1)).tolist()
    assert annotated == human
    for s in human:
        np.testing.assert_array_equal(sparse[s], labels_before[s])
    costs = json.loads(result.costs.read_text())["volumes"][0]
    assert sorted(e["slice"] for e in costs["slices"]) == human and costs["n_slices"] == 32

    restored.go_to(painted[1])
    qtbot.wait(100)
    shot_path = artifacts["dir"] / "e2e.png"
    shot = viewer.screenshot(str(shot_path), canvas_only=False)
    assert shot.shape[0] > 500 and shot.shape[1] > 1000
    assert np.unique(shot.reshape(-1, shot.shape[-1]), axis=0).shape[0] > 50  # a real picture, not blank
    if artifacts["save"]:
        artifacts["repo_copy"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot_path, artifacts["repo_copy"])
