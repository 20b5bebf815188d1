"""`budget-study data phantom` and `budget-study data check`: outputs and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.cli.main import main

SMALL = ["--shape", "12,32,32", "--cases", "2", "--test-cases", "1"]


@pytest.fixture
def phantom_dir(tmp_path):
    out = tmp_path / "ds"
    assert main(["data", "phantom", "--task", "vessel", "--out", str(out), "--seed", "4", *SMALL]) == 0
    return out


def test_phantom_writes_a_dataset(tmp_path, capsys):
    phantom_dir = tmp_path / "ds"
    assert main(["data", "phantom", "--task", "vessel", "--out", str(phantom_dir), *SMALL]) == 0
    assert "wrote 2 training + 1 test vessel phantom cases" in capsys.readouterr().out
    meta = json.loads((phantom_dir / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "vessel": 1} and meta["numTraining"] == 2
    image = sitk.ReadImage(str(phantom_dir / "imagesTr" / "case_0001_0000.nii.gz"))
    assert image.GetSize() == (32, 32, 12) and np.allclose(image.GetSpacing(), (0.8, 0.8, 2.5))


def test_phantom_spacing_option(tmp_path):
    out = tmp_path / "ds"
    assert main(["data", "phantom", "--out", str(out), "--spacing", "3,1,1.2", *SMALL]) == 0
    image = sitk.ReadImage(str(out / "imagesTr" / "case_0000_0000.nii.gz"))
    assert np.allclose(image.GetSpacing(), (1.2, 1.0, 3.0))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "liver"], "choose one of lesion, organ, vessel"),
        (["--shape", "12,32"], "--shape takes three"),
        (["--spacing", "a,b,c"], "--spacing takes three"),
    ],
)
def test_phantom_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["data", "phantom", "--out", str(out), *SMALL, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_phantom_refuses_existing_output(phantom_dir, capsys):
    assert main(["data", "phantom", "--out", str(phantom_dir), *SMALL]) == 2
    assert "not empty" in capsys.readouterr().err


def test_check_clean_dataset_exits_zero_and_writes_json(phantom_dir, tmp_path, capsys):
    capsys.readouterr()
    report_path = tmp_path / "report.json"
    assert main(["data", "check", str(phantom_dir), "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "case_0000" in out and "0 fatal problems" in out and "CT window" in out
    report = json.loads(report_path.read_text())
    assert [c["case_id"] for c in report["cases"]] == ["case_0000", "case_0001", "case_0002"]
    assert report["ok"] is True and report["issues"] == []
    assert report["normalization"]["modality"] == "ct"


def test_check_undeclared_label_exits_one_naming_the_file(phantom_dir, capsys, write_voxel):
    label = phantom_dir / "labelsTr" / "case_0000.nii.gz"
    write_voxel(label, (0, 0, 0), 5)
    capsys.readouterr()
    assert main(["data", "check", str(phantom_dir)]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fatal:")]
    assert lines == [f"fatal: {label}: label values [5] are not declared in dataset.json (declared: [0, 1])"]


def test_check_missing_dataset_json_exits_one(phantom_dir, capsys):
    (phantom_dir / "dataset.json").unlink()
    capsys.readouterr()
    assert main(["data", "check", str(phantom_dir)]) == 1
    err = capsys.readouterr().err
    assert f"fatal: {phantom_dir / 'dataset.json'}: dataset.json not found" in err
