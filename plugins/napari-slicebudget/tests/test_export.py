"""Export to an nnU-Net v2 raw dataset: sparse encoding, appending, refusing, nnU-Net's own check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.io import open_dataset, read_labels

from napari_slicebudget.logic.export import export_case
from napari_slicebudget.logic.ledger import SliceLedger


def _annotated(phantom):
    image, labels = phantom
    fg = np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))
    painted_slices = [int(fg[0]), int(fg[len(fg) // 2])]
    working = np.zeros(labels.shape, dtype=np.uint8)
    working[painted_slices] = labels.array[painted_slices]
    ledger = SliceLedger(labels.shape[0]).with_plan([*painted_slices, 0]).with_painted(working, painted_slices)
    ledger = ledger.with_empty(0)
    return image, working, ledger, painted_slices


def _snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_sparse_case_that_nnunet_accepts(phantom, tmp_path):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    image, working, ledger, painted = _annotated(phantom)
    root = tmp_path / "Dataset501_Phantom"
    first = export_case(root, "case_a", image, working, ledger, ["organ", "tumour"])
    assert first.n_annotated == 3 and first.n_training == 1
    dataset = open_dataset(root)
    assert dataset.labels == {"background": 0, "organ": 1, "tumour": 2, "ignore": 3}
    encoded = read_labels(first.label, like=image).array
    annotated = sorted([*painted, 0])
    for s in range(image.shape[0]):
        if s in annotated:
            np.testing.assert_array_equal(encoded[s], working[s])
        else:
            assert (encoded[s] == 3).all()
    manifest = json.loads(first.manifest.read_text())
    assert manifest["annotated_slices"] == annotated and manifest["statuses"][0] == "empty"
    second = export_case(root, "case_b", image, working, ledger, ["organ", "tumour"])
    assert second.n_training == 2 and json.loads((root / "dataset.json").read_text())["numTraining"] == 2
    assert not list(root.glob(".staging-*"))
    verify_dataset_integrity(str(root), num_processes=1)  # raises on any problem


def test_export_refuses_incompatible_dataset_and_changes_nothing(phantom, tmp_path):
    image, working, ledger, _ = _annotated(phantom)
    root = tmp_path / "Dataset502"
    export_case(root, "case_a", image, working, ledger, ["organ", "tumour"])
    before = _snapshot(root)
    with pytest.raises(UserError, match="dataset has labels"):
        export_case(root, "case_b", image, working, ledger, ["liver", "tumour"])
    with pytest.raises(UserError, match="dataset has channels"):
        export_case(root, "case_b", image, working, ledger, ["organ", "tumour"], channel_name="T1")
    with pytest.raises(UserError, match="already exists"):
        export_case(root, "case_a", image, working, ledger, ["organ", "tumour"])
    with pytest.raises(UserError, match="only classes 1..1"):
        export_case(root / "other", "case_a", image, working, ledger, ["organ"])
    with pytest.raises(UserError, match="no slice is annotated"):
        export_case(root, "case_c", image, working, SliceLedger(image.shape[0]), ["organ", "tumour"])
    assert _snapshot(root) == before
    assert not (root / "other" / "dataset.json").exists()
