"""Export to an nnU-Net v2 raw dataset: sparse encoding, appending, refusing, nnU-Net's own check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from slicebudget.errors import UserError
from slicebudget.io import open_dataset, read_labels

from napari_slicebudget.logic.export import export_case
from napari_slicebudget.logic.export_defaults import case_id_for, dataset_defaults, guess_channel, layer_class_names
from napari_slicebudget.logic.ledger import MachineLabel, SliceLedger
from tests_helpers import make_volume


def _annotated(phantom):
    """Two painted slices, one marked empty, and a machine-accepted slice that must not export as human."""
    image, labels = phantom
    fg = np.flatnonzero(labels.array.reshape(labels.shape[0], -1).any(axis=1))
    painted_slices = [int(fg[0]), int(fg[len(fg) // 2])]
    machine = int(fg[-1])
    working = np.zeros(labels.shape, dtype=np.uint8)
    working[[*painted_slices, machine]] = labels.array[[*painted_slices, machine]]
    ledger = SliceLedger(labels.shape[0]).after_stroke({s: True for s in painted_slices}, claims=True)
    ledger = ledger.marked_empty(0).proposed({machine: MachineLabel("sdf", "sdf", 0.7)}).reviewed([machine], True)
    return image, working, ledger, painted_slices


def _snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_sparse_case_that_nnunet_accepts(phantom, tmp_path):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    image, working, ledger, painted = _annotated(phantom)
    root = tmp_path / "Dataset501_Phantom"
    first = export_case(root, "case_a", image, working, ledger, ["organ", "tumour"], "CT")
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
    assert manifest["annotated_slices"] == annotated and manifest["slices"]["human-marked-empty"] == [0]
    assert manifest["machine"] and not manifest["accepted_machine_slices_counted"]
    costs = json.loads(first.costs.read_text())
    assert first.costs == root / "slicebudget_costs" / "case_a.costs.json" and costs["volumes"][0]["volume"] == "case_a"
    second = export_case(root, "case_b", image, working, ledger, ["organ", "tumour"], "CT", count_accepted=True)
    assert second.n_annotated == 4 and (read_labels(second.label).array[int(np.flatnonzero(ledger.accepted)[0])] != 3).all()
    assert second.n_training == 2 and json.loads((root / "dataset.json").read_text())["numTraining"] == 2
    assert not list(root.glob(".staging-*"))
    verify_dataset_integrity(str(root), num_processes=1)  # raises on any problem


def test_export_refuses_incompatible_dataset_and_changes_nothing(phantom, tmp_path):
    image, working, ledger, _ = _annotated(phantom)
    root = tmp_path / "Dataset502"
    export_case(root, "case_a", image, working, ledger, ["organ", "tumour"], "CT")
    before = _snapshot(root)
    with pytest.raises(UserError, match="dataset has labels"):
        export_case(root, "case_b", image, working, ledger, ["liver", "tumour"], "CT")
    with pytest.raises(UserError, match="dataset has channels"):
        export_case(root, "case_b", image, working, ledger, ["organ", "tumour"], channel_name="T1")
    with pytest.raises(UserError, match="choose the image's channel name"):
        export_case(root, "case_b", image, working, ledger, ["organ", "tumour"], channel_name=" ")
    with pytest.raises(UserError, match="already exists"):
        export_case(root, "case_a", image, working, ledger, ["organ", "tumour"], "CT")
    with pytest.raises(UserError, match="only classes 1..1"):
        export_case(root / "other", "case_a", image, working, ledger, ["organ"], "CT")
    with pytest.raises(UserError, match="no slice is annotated by a person"):
        machine_only = SliceLedger(image.shape[0]).proposed({3: MachineLabel("sdf", "sdf", 0.5)}).reviewed([3], True)
        export_case(root, "case_c", image, working, machine_only, ["organ", "tumour"], "CT")
    assert _snapshot(root) == before
    assert not (root / "other" / "dataset.json").exists()


def test_defaults_come_from_the_data(tmp_path):
    assert case_id_for("/data/case_0003_0000.nii.gz") == "case_0003"
    assert case_id_for("brain mri #3.nrrd") == "brain_mri_3" and case_id_for("liver_12") == "liver_12"
    ct = make_volume()
    ct = ct.with_array(np.where(np.arange(ct.array.size).reshape(ct.shape) % 3 == 0, -1000.0, 40.0).astype(np.float32))
    assert guess_channel(ct).value == "CT" and "Hounsfield" in guess_channel(ct).reason
    mri = make_volume().with_array(np.abs(make_volume().array) * 300)
    guess = guess_channel(mri)
    assert guess.value == "" and "name the channel" in guess.reason  # never a silent CT
    assert guess_channel(mri, known="T2").value == "T2"
    # a header that names the modality wins over the intensities
    path = tmp_path / "mr.nrrd"
    image = sitk.GetImageFromArray(np.full((4, 5, 6), -1000, np.int16))
    image.SetMetaData("modality", "MR")
    sitk.WriteImage(image, str(path))
    assert guess_channel(ct, str(path)).value == "MR"
    assert layer_class_names({"slicebudget": {"classes": ["liver", "tumour"]}}, None) == ["liver", "tumour"]
    features = pd.DataFrame({"name": ["background", "hippocampus"]})
    assert layer_class_names({}, features) == ["hippocampus"] and layer_class_names({}, pd.DataFrame()) == []
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2"}, "file_ending": ".nii.gz",
                                                       "labels": {"background": 0, "b": 2, "a": 1, "ignore": 3}}))
    assert dataset_defaults(tmp_path) == ("T2", ["a", "b"]) and dataset_defaults(tmp_path / "none") is None
