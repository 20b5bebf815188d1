"""Data checks: a clean phantom passes; header mismatches warn and exclude; bad labels are fatal."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.data.checks import check_dataset, orientation_code
from slicebudget.data.phantoms import write_phantom_dataset
from slicebudget.data.preprocess import fit_normalization, target_spacing

SHAPE = (12, 32, 32)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("check") / "clean"
    return write_phantom_dataset(root, "organ", cases=3, seed=5, shape=SHAPE, test_cases=1)


@pytest.fixture
def copy(clean, tmp_path):
    return shutil.copytree(clean, tmp_path / "copy")


def _rewrite(path, change):
    image = sitk.ReadImage(str(path))
    new = change(image)
    sitk.WriteImage(new, str(path))


def test_clean_dataset_passes(clean):
    from slicebudget.io import open_dataset

    report = check_dataset(clean)
    assert report.ok and report.issues == []
    assert report.layout == "nnunetv2" and report.modality == "ct"
    assert [c.case_id for c in report.cases] == ["case_0000", "case_0001", "case_0002", "case_0003"]
    assert [c.split for c in report.cases] == ["Tr", "Tr", "Tr", "Ts"]
    assert report.usable_cases == ["case_0000", "case_0001", "case_0002"]
    for case in report.cases:
        assert case.shape == SHAPE
        assert case.spacing == pytest.approx((2.5, 0.8, 0.8))
        assert case.orientation == "RAS"  # the phantom writes an RAS-style NIfTI header
        assert case.header_agrees is True and case.label_values == [0, 1, 2]
        (z0, z1), _, _ = case.foreground_bbox
        assert 0 < z0 < z1 < SHAPE[0] and case.foreground_slices == z1 - z0
    # Dataset-level figures are exactly what preprocess computes.
    dataset = open_dataset(clean)
    assert report.target_spacing == pytest.approx(target_spacing([(2.5, 0.8, 0.8)] * 3))
    assert report.normalization == fit_normalization(dataset)


def test_label_with_other_geometry_is_warned_and_excluded(copy):
    label = copy / "labelsTr" / "case_0001.nii.gz"
    _rewrite(label, lambda im: (im.SetOrigin((0.0, 0.0, 0.0)), im)[1])
    report = check_dataset(copy)
    assert report.ok  # a warning, not fatal
    assert report.usable_cases == ["case_0000", "case_0002"]
    (warning,) = report.warnings
    assert "case_0001" in warning.message and "origin" in warning.message
    assert warning.path == str(label)
    excluded = next(c for c in report.cases if c.case_id == "case_0001")
    assert excluded.excluded and excluded.header_agrees is False


def test_label_with_other_shape_is_warned_and_excluded(copy):
    label = copy / "labelsTr" / "case_0000.nii.gz"
    _rewrite(label, lambda im: im[:, :, :-1])
    report = check_dataset(copy)
    assert report.usable_cases == ["case_0001", "case_0002"]
    assert "shape" in report.warnings[0].message


def test_undeclared_label_value_is_fatal(copy, write_voxel):
    label = copy / "labelsTr" / "case_0002.nii.gz"
    write_voxel(label, (0, 0, 0), 7)
    report = check_dataset(copy)
    assert not report.ok
    (fatal,) = report.fatal
    assert fatal.path == str(label) and "[7]" in fatal.message


def test_nan_image_is_fatal(copy, write_voxel):
    image_path = copy / "imagesTr" / "case_0000_0000.nii.gz"
    write_voxel(image_path, (1, 2, 3), np.nan)
    report = check_dataset(copy)
    assert not report.ok
    assert report.fatal[0].path == str(image_path) and "NaN" in report.fatal[0].message
    assert "case_0000" not in report.usable_cases


def test_missing_dataset_json_is_fatal(copy):
    (copy / "dataset.json").unlink()
    report = check_dataset(copy)
    assert not report.ok and report.cases == []
    assert report.fatal[0].path.endswith("dataset.json")


def test_no_usable_case_is_fatal(copy):
    for label in (copy / "labelsTr").iterdir():
        _rewrite(label, lambda im: (im.SetSpacing((1.0, 1.0, 1.0)), im)[1])
    report = check_dataset(copy)
    assert not report.ok
    assert any("no readable training case" in i.message for i in report.fatal)
    assert len(report.warnings) == 3


def test_orientation_codes():
    assert orientation_code((1, 0, 0, 0, 1, 0, 0, 0, 1)) == "LPS"
    assert orientation_code((-1, 0, 0, 0, -1, 0, 0, 0, 1)) == "RAS"
