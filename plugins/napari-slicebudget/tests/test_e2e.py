"""End to end: sample -> plan -> paint two slices -> propagate -> export, with a screenshot."""

from __future__ import annotations

import shutil

import numpy as np

from slicebudget.io import open_dataset, read_labels

from tests_helpers import foreground_centre, paint_disk, wait_for_workers

PLUGIN = "napari-slicebudget"


def test_annotate_propagate_export(make_napari_viewer, qtbot, tmp_path, artifacts):
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1700, 1000)
    viewer.open_sample(PLUGIN, "organ_phantom")
    image_layer, reference_layer = viewer.layers
    assert image_layer.scale[0] > image_layer.scale[1] and abs(image_layer.translate[0]) > 1
    docks = {name: viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
             for name in ("Slice planner", "Propagate masks", "Export", "Budget panel")}
    planner, propagate, export = docks["Slice planner"], docks["Propagate masks"], docks["Export"]

    planner.folder_edit.setText(str(tmp_path / "session"))
    planner.policy_combo.setCurrentText("coreset")
    planner.mode_combo.setCurrentText("slice count")
    planner.count_spin.setValue(6)
    planner.suggest()
    wait_for_workers(qtbot, planner)
    session = planner.session()
    assert len(session.ledger.suggested) == 6 and len(session.marks_layer.data) == 6

    reference = reference_layer.data
    with_organ = [s for s in session.ledger.suggested if reference[s].any()]
    first, last = with_organ[0], with_organ[-1]
    for s in (first, last):
        session.go_to(s)
        paint_disk(session.labels_layer, s, *foreground_centre(reference, s), size=9)
    qtbot.waitUntil(lambda: session.ledger.progress()[0] == 2)
    assert f"2 of 6 annotated" in planner.progress_label.text()

    propagate.method_combo.setCurrentText("sdf")
    propagate.propagate()
    wait_for_workers(qtbot, propagate, timeout=60000)
    assert propagate.progress_bar.value() == propagate.progress_bar.maximum() > 0
    assert session.ledger.pending_review.size > 0
    propagate.review(True)

    export.folder_edit.setText(str(tmp_path / "Dataset777_Phantom"))
    export.count_accepted.setChecked(True)
    export.export()
    wait_for_workers(qtbot, export)
    result = export.last_result
    dataset = open_dataset(result.root)
    assert [c.case_id for c in dataset.cases] == [result.case_id] and dataset.ignore_label == 3
    sparse = read_labels(result.label).array
    annotated = ~(sparse == 3).reshape(sparse.shape[0], -1).all(axis=1)
    assert annotated[first] and annotated[last] and annotated.sum() == result.n_annotated > 2

    session.go_to(first)
    qtbot.wait(100)
    path = artifacts["dir"] / "e2e.png"
    shot = viewer.screenshot(str(path), canvas_only=False)
    assert path.is_file() and shot.shape[0] > 500 and shot.shape[1] > 1000
    assert np.unique(shot.reshape(-1, shot.shape[-1]), axis=0).shape[0] > 50  # a real picture, not blank
    if artifacts["save"]:
        artifacts["repo_copy"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, artifacts["repo_copy"])
