"""Dataset layouts open into one description; what slicebudget writes passes nnU-Net v2's check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.errors import UserError
from slicebudget.io import NnUNetWriter, atomic_dir, open_dataset, read_volume
from slicebudget.volume import SparseAnnotation


def make_volume(tmp_path, name="src.nii.gz", shape=(6, 8, 9), seed=0):
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.normal(size=shape).astype(np.float32))
    img.SetSpacing((0.8, 0.8, 2.5))
    img.SetOrigin((-12.0, 40.0, 7.5))
    sitk.WriteImage(img, str(tmp_path / name))
    return read_volume(tmp_path / name)


def write_dataset(root, tmp_path, n=3, sparse=False, tests=1):
    labels = {"background": 0, "organ": 1, "tumour": 2}
    if sparse:
        labels["ignore"] = 3
    writer = NnUNetWriter(root, {"0": "CT"}, labels)
    for i in range(n + tests):
        vol = make_volume(tmp_path, f"v{i}.nii.gz", seed=i)
        dense = np.zeros(vol.shape, np.uint8)
        dense[2:5, 2:6, 2:7] = 1
        dense[3, 3:5, 3:5] = 2
        split = "Tr" if i < n else "Ts"
        label = SparseAnnotation.from_dense(dense, [1, 3]).encode(3) if sparse and split == "Tr" else dense
        writer.write_case(f"case_{i:04d}", [vol], label, split=split)
    writer.finish()
    return root


def test_nnunet_write_and_open(tmp_path):
    with atomic_dir(tmp_path / "ds") as tmp:
        write_dataset(tmp, tmp_path)
    ds = open_dataset(tmp_path / "ds")
    assert ds.layout == "nnunetv2"
    assert [c.case_id for c in ds.cases] == ["case_0000", "case_0001", "case_0002"]
    assert [c.case_id for c in ds.test_cases] == ["case_0003"]
    assert ds.classes == {"organ": 1, "tumour": 2} and ds.ignore_label is None and ds.modality == "ct"
    loaded = ds.load_case(ds.cases[1])
    assert loaded.label.array.max() == 2 and loaded.images[0].same_grid(loaded.label)
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["numTraining"] == 3


def test_sparse_dataset_passes_nnunet_integrity_check(tmp_path):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    write_dataset(tmp_path / "ds", tmp_path, sparse=True)
    verify.verify_dataset_integrity(str(tmp_path / "ds"), num_processes=1)
    ds = open_dataset(tmp_path / "ds")
    assert ds.ignore_label == 3 and ds.classes == {"organ": 1, "tumour": 2}


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "ds") as tmp:
            write_dataset(tmp, tmp_path, n=1, tests=0)
            raise RuntimeError("crash mid-write")
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_dir_refuses_to_clobber(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("precious")
    with pytest.raises(UserError, match="already exists"):
        with atomic_dir(tmp_path / "ds"):
            pass
    assert (tmp_path / "ds" / "keep.txt").read_text() == "precious"


def test_msd_layout(tmp_path):
    vol = make_volume(tmp_path)
    (tmp_path / "msd" / "imagesTr").mkdir(parents=True)
    (tmp_path / "msd" / "labelsTr").mkdir()
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "src.nii.gz")), str(tmp_path / "msd/imagesTr/liver_0.nii.gz"))
    lab = sitk.Cast(sitk.ReadImage(str(tmp_path / "src.nii.gz")) > 0, sitk.sitkUInt8)
    sitk.WriteImage(lab, str(tmp_path / "msd/labelsTr/liver_0.nii.gz"))
    meta = {
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver"},
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
        "test": [],
    }
    (tmp_path / "msd" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(tmp_path / "msd")
    assert ds.layout == "msd" and ds.classes == {"liver": 1}
    loaded = ds.load_case("liver_0")
    assert np.array_equal(loaded.images[0].array, vol.array)
    assert set(np.unique(loaded.label.array)) <= {0, 1}


def test_msd_four_dimensional_channels(tmp_path):
    arr = np.stack([np.full((5, 6, 7), c, np.float32) for c in range(2)])  # (C, z, y, x)
    img = sitk.JoinSeries([sitk.GetImageFromArray(a) for a in arr])
    (tmp_path / "msd" / "imagesTr").mkdir(parents=True)
    sitk.WriteImage(img, str(tmp_path / "msd/imagesTr/brain_0.nii.gz"))
    meta = {"modality": {"0": "FLAIR", "1": "T1w"}, "labels": {"0": "background", "1": "tumour"},
            "training": [{"image": "./imagesTr/brain_0.nii.gz", "label": None}]}
    (tmp_path / "msd" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(tmp_path / "msd")
    loaded = ds.load_case("brain_0")
    assert [float(v.array.mean()) for v in loaded.images] == [0.0, 1.0] and ds.modality == "mr"


def test_per_patient_layout(tmp_path):
    make_volume(tmp_path)
    src = sitk.ReadImage(str(tmp_path / "src.nii.gz"))
    for pid in ("p01", "p02"):
        folder = tmp_path / "pp" / "train" / pid
        folder.mkdir(parents=True)
        sitk.WriteImage(src, str(folder / f"{pid}_t1.nii.gz"))
        sitk.WriteImage(src, str(folder / f"{pid}_t2.nii.gz"))
        sitk.WriteImage(sitk.Cast(src > 0, sitk.sitkUInt8), str(folder / f"{pid}_seg.nii.gz"))
    meta = {"modality": "mr", "train-data": "train", "images": {"t1": ["*_t1.nii.gz"], "t2": ["*_t2.nii.gz"]},
            "mask": ["*_seg.nii.gz"], "labels": [0, 1]}
    (tmp_path / "pp" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(tmp_path / "pp")
    assert ds.layout == "per-patient" and [c.case_id for c in ds.cases] == ["p01", "p02"]
    assert len(ds.load_case("p02").images) == 2 and ds.channel_names == {"0": "t1", "1": "t2"}


def test_bad_dataset_folders(tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="dataset.json not found"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "empty" / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        open_dataset(tmp_path / "empty")
    write_dataset(tmp_path / "ds", tmp_path, n=2, tests=0)
    (tmp_path / "ds" / "labelsTr" / "case_0001.nii.gz").unlink()
    with pytest.raises(UserError, match="case_0001 has no label"):
        open_dataset(tmp_path / "ds")
