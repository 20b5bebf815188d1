"""The session folder: checkpoints plus a journal, crash at any point, old and foreign formats."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from slicebudget.errors import UserError

from napari_slicebudget.logic.autosave import (
    Autosaver,
    has_session,
    load_session,
    session_folder,
    write_checkpoint,
)
from napari_slicebudget.logic.ledger import HUMAN_EMPTY, HUMAN_PAINTED, NOT_ANNOTATED, SliceLedger


def _painted(labels_shape, slices, value=1):
    labels = np.zeros(labels_shape, np.uint8)
    ledger = SliceLedger(labels_shape[0])
    for s in slices:
        labels[s, 5:9, 5:9] = value
        ledger = ledger.after_stroke({s: True}, claims=True)
    return labels, ledger


def _started(folder, image, stroke: int):
    """A saver with its first checkpoint (nothing painted) and one journaled stroke on ``stroke``."""
    saver = Autosaver(folder, image)
    saver.checkpoint(np.zeros(image.shape, np.uint8), SliceLedger(image.shape[0]))
    labels, ledger = _painted(image.shape, [stroke])
    saver.record(ledger, [stroke], labels[[stroke]].copy())
    return saver, labels, ledger


def test_journal_replays_every_action_after_the_checkpoint(phantom, tmp_path):
    image, _ = phantom
    folder = session_folder(tmp_path / "ct.nii.gz")
    assert folder.name == "ct.nii.gz.slicebudget" and not has_session(folder)
    saver, labels, ledger = _started(folder, image, 3)
    ledger = ledger.marked_empty(7)
    saver.record(ledger, [7], labels[[7]].copy())
    saver.drain()
    assert has_session(folder) and len(list(folder.glob("journal-*.bin"))) == 1
    restored = load_session(folder, image)
    assert restored.replayed == 2 and restored.seq == 2
    np.testing.assert_array_equal(restored.labels, labels)
    assert restored.ledger == ledger
    saver.checkpoint(labels.copy(), ledger)  # the checkpoint covers the journal, which goes
    saver.drain()
    assert not list(folder.glob("journal-*.bin")) and load_session(folder, image).replayed == 0


def test_a_torn_last_record_is_dropped_and_the_rest_kept(phantom, tmp_path):
    image, _ = phantom
    folder = tmp_path / "s"
    saver, _, _ = _started(folder, image, 2)
    labels2, ledger2 = _painted(image.shape, [2, 9])
    saver.record(ledger2, [9], labels2[[9]].copy())
    saver.drain()
    journal, = folder.glob("journal-*.bin")
    blob = journal.read_bytes()
    journal.write_bytes(blob[:-10])  # killed while appending the second record
    restored = load_session(folder, image)
    assert restored.replayed == 1 and restored.ledger.provenance[2] == HUMAN_PAINTED
    assert restored.ledger.provenance[9] == NOT_ANNOTATED and not restored.labels[9].any()


def test_crash_between_checkpoint_files_loses_nothing(phantom, tmp_path):
    image, _ = phantom
    folder = tmp_path / "s"
    saver, labels, ledger = _started(folder, image, 4)
    saver.drain()
    state_before = (folder / "state.json").read_text()
    # a checkpoint that wrote its labels but was killed before its state file (and so kept the journal)
    later = labels.copy()
    later[11, 0, 0] = 2
    write_checkpoint(folder, later, image, ledger, seq=1)
    (folder / "state.json").write_text(state_before)
    (folder / "journal-000000001.bin").write_bytes(b"")  # (re-created: the deletion came after the state)
    saver2 = Autosaver(folder, image, seq=0)
    saver2.record(ledger, [4], labels[[4]].copy())
    saver2.drain()
    restored = load_session(folder, image)
    np.testing.assert_array_equal(restored.labels[4], labels[4])
    assert restored.ledger.provenance[4] == HUMAN_PAINTED


def test_saved_state_the_labels_contradict_is_downgraded(phantom, tmp_path):
    image, _ = phantom
    labels, ledger = _painted(image.shape, [2, 5])
    ledger = ledger.marked_empty(8)
    labels[5] = 0  # painted slice without labels
    labels[8, 1, 1] = 1  # empty slice with labels
    write_checkpoint(tmp_path, labels, image, ledger, 0)
    restored = load_session(tmp_path, image)
    assert restored.downgraded == (5, 8) and restored.ledger.provenance[2] == HUMAN_PAINTED
    assert restored.ledger.provenance[5] == restored.ledger.provenance[8] == NOT_ANNOTATED


def test_old_foreign_and_mismatched_sessions_are_refused(phantom, tmp_path):
    image, _ = phantom
    labels, ledger = _painted(image.shape, [1])
    write_checkpoint(tmp_path, labels, image, ledger.marked_empty(3), 0)
    assert load_session(tmp_path, image).ledger.provenance[3] == HUMAN_EMPTY
    state = tmp_path / "state.json"
    good = state.read_text()
    state.write_text(json.dumps({"version": 1, "depth": image.shape[0], "flags": {}, "statuses": []}))
    with pytest.raises(UserError, match="napari-slicebudget 0.1 .format 1.*not resumed.*labels.nii.gz"):
        load_session(tmp_path, image)
    state.write_text(json.dumps({**json.loads(good), "version": 3}))
    with pytest.raises(UserError, match="version 3"):
        load_session(tmp_path, image)
    state.write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        load_session(tmp_path, image)
    state.write_text(good)
    shifted = replace(image, geometry=replace(image.geometry, origin=(0.0, 0.0, 0.0)))
    with pytest.raises(UserError, match="geometry does not match"):
        load_session(tmp_path, shifted)
    with pytest.raises(UserError, match="slices, the image"):
        load_session(tmp_path, replace(image, array=np.zeros((5, *image.shape[1:]), np.float32)))
