"""Next best slice: the least certain slice by expected wrong voxels; refusals; the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.propagation import PropagationResult
from slicebudget.propagation.next_slice import believed_size, expected_error, suggest_next_slice
from slicebudget.volume import SparseAnnotation


def test_expected_error_weighs_uncertainty_by_area_as_a_share_of_each_class():
    labels = np.zeros((5, 10, 10), np.uint8)
    labels[1, :5, :5] = 1  # 25 px at confidence 0.9: 2.5 expected wrong
    labels[2, :2, :2] = 1  # 4 px at confidence 0.2: 3.2 expected wrong
    labels[3, :8, :8] = 1  # 64 px at confidence 0.5: 32
    provenance = np.array(["human", "learned", "learned", "interpolation", "stopped"], dtype=object)
    result = PropagationResult(labels, np.array([1.0, 0.9, 0.2, 0.5, 0.5]), provenance)
    np.testing.assert_allclose(believed_size(labels), [25, 25, 4, 64, 64])  # an empty slice takes its neighbour's
    volume = 25 + 4 + 64  # the class's propagated voxels: a wrong voxel costs 1/volume of its IoU
    np.testing.assert_allclose(expected_error(result), np.array([0.0, 2.5, 3.2, 32.0, 32.0]) / volume)
    other = PropagationResult(np.zeros_like(labels), np.ones(5), provenance)
    assert expected_error(result, other)[2] == pytest.approx((3.2 + 4) / volume)  # disagreement adds its pixels
    # a small second class on slice 2 (8 px in all) weighs per voxel as much as its share of itself
    labels[2, 5:7, 5:7] = 2
    labels[1, 5:7, 5:7] = 2
    two = expected_error(PropagationResult(labels, result.confidence, provenance))
    assert two[2] == pytest.approx(3.2 / volume + 0.8 * 4 / 8)
    assert two[2] > two[3] - 0.5 * 4 / 8  # its uncertain slice now outweighs the organ's large uncertain one


def test_suggests_an_unannotated_slice_inside_the_object(make_blob):
    image, dense = make_blob(depth=20, size=40, first=4, last=15, core=False)
    annotation = SparseAnnotation.from_dense(dense, [5])
    suggestion = suggest_next_slice(image, annotation, "sli2vol", device="cpu")
    assert not annotation.annotated[suggestion.slice] and suggestion.expected_error[5] == 0.0
    # not next to the painted slice (its neighbours are carried well), but out where the carry is least sure
    assert abs(suggestion.slice - 5) >= 3, suggestion
    assert suggest_next_slice(image, annotation, "sli2vol", device="cpu").slice == suggestion.slice


def test_refusals():
    image = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(UserError, match="at least one painted slice"):
        suggest_next_slice(image, SparseAnnotation(np.zeros((4, 8, 8), np.uint8), np.zeros(4, bool)))
    with pytest.raises(UserError, match="every slice is already annotated"):
        suggest_next_slice(image, SparseAnnotation(np.zeros((4, 8, 8), np.uint8), np.ones(4, bool)), "sdf")


def test_cli_prints_the_next_slice_and_refuses_an_unpainted_volume(tmp_path, make_blob, capsys):
    import SimpleITK as sitk

    from slicebudget.cli.main import main

    image, dense = make_blob(depth=16, size=24, first=3, last=12)
    sparse = np.full(dense.shape, 3, dtype=np.uint8)
    sparse[[5, 10]] = dense[[5, 10]]
    sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / "img.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(sparse), str(tmp_path / "sparse.nrrd"))
    argv = ["propagation", "next-slice", "--image", str(tmp_path / "img.nrrd"), "--ignore-label", "3",
            "--method", "sdf", "--top", "3"]
    assert main([*argv, "--labels", str(tmp_path / "sparse.nrrd")]) == 0
    out = capsys.readouterr().out.splitlines()
    chosen = int(out[0].split(": ")[1])
    assert chosen not in (5, 10) and out[1].startswith("candidates")
    assert int(out[1].split(": ")[1].split(" ")[0]) == chosen and out[1].count(",") == 3  # best candidate first
    sitk.WriteImage(sitk.GetImageFromArray(np.full(dense.shape, 3, np.uint8)), str(tmp_path / "none.nrrd"))
    assert main([*argv, "--labels", str(tmp_path / "none.nrrd")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "paint at least one slice" in err and len(err.splitlines()) == 1
