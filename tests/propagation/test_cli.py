"""`budget-study propagate`: geometry kept exactly, and bad inputs refused with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.cli.main import main

IGNORE = 3
ANNOTATED = [5, 10]


def _oblique_image(array: np.ndarray, spacing=(0.7, 0.9, 2.5)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    angle = np.deg2rad(12.0)  # rotated in-plane: oblique, but the slice axis stays the third
    c, s = np.cos(angle), np.sin(angle)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    image.SetSpacing(spacing)
    image.SetOrigin((-12.5, 30.25, 101.0))
    return image


@pytest.fixture
def files(tmp_path, make_blob):
    image, dense = make_blob(depth=16, size=24, first=3, last=12)
    sparse = np.full(dense.shape, IGNORE, dtype=np.uint8)
    sparse[ANNOTATED] = dense[ANNOTATED]
    sitk.WriteImage(_oblique_image(image), str(tmp_path / "img.nrrd"))
    sitk.WriteImage(_oblique_image(sparse), str(tmp_path / "sparse.nrrd"))
    return tmp_path, image, dense, sparse


def _run(tmp_path, *extra, labels="sparse.nrrd", image="img.nrrd", ignore=IGNORE, method="sdf"):
    out = tmp_path / "dense.nrrd"
    argv = ["propagate", "--image", str(tmp_path / image), "--labels", str(tmp_path / labels),
            "--ignore-label", str(ignore), "--method", method, "--out", str(out), *extra]
    return main(argv), out


@pytest.mark.parametrize("method", ["sdf", "sli2vol"])
def test_output_keeps_geometry_exactly(files, method):
    # NRRD stores the direction in double precision, so "exactly" can be checked bit for bit.
    tmp_path, _, dense, sparse = files
    code, out = _run(tmp_path, method=method)
    assert code == 0
    written = sitk.ReadImage(str(out))
    source = sitk.ReadImage(str(tmp_path / "img.nrrd"))
    assert written.GetSize() == source.GetSize()
    assert written.GetSpacing() == source.GetSpacing()
    assert written.GetOrigin() == source.GetOrigin()
    assert written.GetDirection() == source.GetDirection()
    labels = sitk.GetArrayFromImage(written)
    np.testing.assert_array_equal(labels[ANNOTATED], sparse[ANNOTATED])
    assert labels[7].any() and set(np.unique(labels)) <= {0, 1, 2}


def _assert_refused(capsys, code, out, fragment):
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert err.startswith("error:") and fragment in err and len(err.splitlines()) == 1, err


def test_no_annotated_slice(files, capsys):
    tmp_path, image, _, sparse = files
    sitk.WriteImage(_oblique_image(np.full_like(sparse, IGNORE)), str(tmp_path / "none.nrrd"))
    code, out = _run(tmp_path, labels="none.nrrd")
    _assert_refused(capsys, code, out, "no annotated slice")


def test_undeclared_label_value(files, capsys):
    tmp_path, _, _, sparse = files
    bad = sparse.copy()
    bad[5, 0, 0] = 7
    sitk.WriteImage(_oblique_image(bad), str(tmp_path / "bad.nrrd"))
    code, out = _run(tmp_path, labels="bad.nrrd")
    _assert_refused(capsys, code, out, "label value 7")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1, "core": 2}}))
    bad[5, 0, 0] = 2
    bad[10, 0, 0] = 4
    sitk.WriteImage(_oblique_image(bad), str(tmp_path / "bad.nrrd"))
    code, out = _run(tmp_path, "--dataset", str(tmp_path), labels="bad.nrrd", ignore=5)
    _assert_refused(capsys, code, out, "not declared")


def test_ignore_label_colliding_with_a_class(files, capsys):
    tmp_path, *_ = files
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1, "core": 2, "ignore": 3}}))
    code, out = _run(tmp_path, "--dataset", str(tmp_path / "dataset.json"), ignore=2)
    _assert_refused(capsys, code, out, "collides with class 'core'")
    code, out = _run(tmp_path, ignore=2)  # without a dataset.json: the real ignore value 3 lies above it
    _assert_refused(capsys, code, out, "above the ignore label 2")
    code, out = _run(tmp_path, ignore=1)  # still colliding: class 2 and ignore 3 lie above 1
    _assert_refused(capsys, code, out, "above the ignore label 1")


def test_geometry_mismatch(files, capsys):
    tmp_path, _, _, sparse = files
    sitk.WriteImage(_oblique_image(sparse, spacing=(0.7, 0.9, 3.0)), str(tmp_path / "moved.nrrd"))
    code, out = _run(tmp_path, labels="moved.nrrd")
    _assert_refused(capsys, code, out, "geometry does not match")


def test_missing_model_file(files, capsys):
    tmp_path, *_ = files
    code, out = _run(tmp_path, "--model", str(tmp_path / "nope.pt"), method="sli2vol")
    _assert_refused(capsys, code, out, "model file not found")


def test_unknown_method(files, capsys):
    tmp_path, *_ = files
    code, out = _run(tmp_path, method="magic")
    _assert_refused(capsys, code, out, "valid methods")


def test_speed_bench_times_a_whole_volume(capsys):
    assert main(["bench", "propagation-speed", "--size", "64", "--depth", "12", "--threads", "1", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("sli2vol, 12 x 64 x 64, 1 thread(s):") and "s per pair" in line
    pairs = int(line.split(" slice pairs")[0].rsplit(" ", 1)[-1])
    assert 0 < pairs <= 11  # one annotated slice, propagated until the disc or the volume ends


def test_sidecar_names_each_slice_source_and_confidence(files, capsys):
    tmp_path, *_ = files
    code, out = _run(tmp_path, "--max-beyond", "1", method="sli2vol")
    assert code == 0
    sidecar = json.loads((tmp_path / "dense.provenance.json").read_text())
    assert sidecar["format"] == "slicebudget-propagation" and sidecar["labels"] == "dense.nrrd"
    assert sidecar["parameters"] == {"max_beyond": 1}
    slices = sidecar["slices"]
    assert [s["slice"] for s in slices] == list(range(16))
    assert [s["slice"] for s in slices if s["provenance"] == "human"] == ANNOTATED
    assert all(s["confidence"] == 1.0 for s in slices if s["provenance"] == "human")
    assert all(s["confidence"] < 1.0 for s in slices if s["provenance"] != "human")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    # max_beyond 1: one slice past each outermost annotated slice at most, the rest stopped
    assert [s["provenance"] for s in slices[:4]] == ["stopped"] * 4 and not labels[:4].any()
    assert slices[4]["provenance"] == "learned" and slices[7]["provenance"] in ("learned", "interpolation")
    assert "dense.provenance.json" in capsys.readouterr().out


def test_sli2vol_options_with_another_method_are_refused(files, capsys):
    tmp_path, *_ = files
    code, out = _run(tmp_path, "--fallback", "none", method="sdf")
    _assert_refused(capsys, code, out, "--fallback applies to method sli2vol only")
    assert not (tmp_path / "dense.provenance.json").exists()
    code, out = _run(tmp_path, "--fallback", "linear", method="sli2vol")
    _assert_refused(capsys, code, out, "fallback 'linear'")
