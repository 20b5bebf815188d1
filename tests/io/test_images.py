"""Round trips keep the source header exactly; bad files give one clear UserError."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.errors import UserError
from slicebudget.io import read_labels, read_volume, write_volume
from slicebudget.volume import SparseAnnotation


def rotation(axis_perm, angle):
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rot @ np.asarray(axis_perm, dtype=float)


DIRECTIONS = {
    "identity": np.eye(3),
    "flipped": np.diag([-1.0, -1.0, 1.0]),  # RAS-style files written by other tools
    "sagittal": np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float),
    "oblique": rotation([[0, 0, 1], [1, 0, 0], [0, -1, 0]], 0.35),
    "oblique_tilt": rotation(np.eye(3), 0.2) @ np.array(
        [[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]]
    ),
}


def write_source(path, direction, shape=(7, 5, 6), spacing=(0.8, 0.9, 2.5), origin=(10.5, -20.25, 30.0)):
    arr = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(tuple(np.asarray(direction).flatten()))
    sitk.WriteImage(img, str(path))
    return sitk.ReadImage(str(path))  # the header as stored (NIfTI keeps float32)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_round_trip_keeps_header_and_voxels(tmp_path, suffix, name):
    source = write_source(tmp_path / f"src{suffix}", DIRECTIONS[name])
    volume = read_volume(tmp_path / f"src{suffix}")
    out = write_volume(volume.array, volume, tmp_path / f"out{suffix}")
    back = sitk.ReadImage(str(out))
    # The header is written back as read, up to the format's own number encoding: NIfTI keeps
    # float32 (direction as a quaternion), NRRD stores spacing times direction as decimal text.
    tol = 1e-6 if suffix.startswith(".nii") else 1e-12
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert np.allclose(getattr(back, get)(), getattr(source, get)(), rtol=0, atol=tol), get
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(source))


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_canonical_axis0_runs_inferior_to_superior(tmp_path, name):
    source = write_source(tmp_path / "src.nii.gz", DIRECTIONS[name])
    volume = read_volume(tmp_path / "src.nii.gz")
    affine = volume.affine
    # Canonical axis 0 points mostly superior (LPS z > 0), axis 1 posterior, axis 2 left.
    for axis, physical in enumerate((2, 1, 0)):
        column = affine[:3, axis]
        assert np.argmax(np.abs(column)) == physical
        assert column[physical] > 0
    # The affine maps canonical indices to the same physical points SimpleITK does.
    geometry = volume.geometry
    src_shape = np.empty(3, dtype=int)
    src_shape[list(geometry.permutation)] = volume.shape
    for idx in [(0, 0, 0), (1, 2, 3), tuple(s - 1 for s in volume.shape)]:
        src = np.zeros(3, dtype=int)
        for a in range(3):
            n = geometry.permutation[a]
            src[n] = src_shape[n] - 1 - idx[a] if geometry.flips[a] else idx[a]
        expected = source.TransformIndexToPhysicalPoint([int(i) for i in src[::-1]])
        assert np.allclose((affine @ [*idx, 1.0])[:3], expected, atol=1e-4)


def test_spacing_follows_canonical_axes(tmp_path):
    write_source(tmp_path / "src.nii.gz", DIRECTIONS["sagittal"], spacing=(0.5, 0.7, 3.0))
    volume = read_volume(tmp_path / "src.nii.gz")
    # sagittal: SimpleITK x runs posterior->anterior... the 3 mm axis is along L/R (canonical axis 2)
    assert volume.spacing[2] == pytest.approx(3.0)


def test_labels_written_with_image_header(tmp_path):
    write_source(tmp_path / "img.nii.gz", DIRECTIONS["oblique"])
    image = read_volume(tmp_path / "img.nii.gz")
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 2
    write_volume(labels, image, tmp_path / "lab.nii.gz")
    back = read_labels(tmp_path / "lab.nii.gz", like=image)
    assert np.array_equal(back.array, labels)


def test_sparse_annotation_encoding_round_trip():
    dense = np.zeros((6, 4, 4), dtype=np.uint8)
    dense[1, 1:3, 1:3] = 1
    dense[3, 0, 0] = 2
    sparse = SparseAnnotation.from_dense(dense, [1, 2, 3])
    encoded = sparse.encode(ignore_label=3)
    assert set(np.unique(encoded[[0, 4, 5]])) == {3}
    decoded = SparseAnnotation.decode(encoded, ignore_label=3)
    assert decoded.annotated.tolist() == [False, True, True, True, False, False]
    assert decoded.empty_slices.tolist() == [2]  # annotated and empty is kept apart
    assert np.array_equal(decoded.labels, sparse.labels)
    with pytest.raises(UserError, match="collides"):
        sparse.encode(ignore_label=2)


def test_partly_ignored_slice_is_refused():
    encoded = np.zeros((3, 4, 4), dtype=np.uint8)
    encoded[1, 0, 0] = 9
    with pytest.raises(UserError, match="slice 1"):
        SparseAnnotation.decode(encoded, ignore_label=9)


# --- bad input: one clear line naming the file -------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found") as err:
        read_volume(tmp_path / "nope.nii.gz")
    assert "nope.nii.gz" in str(err.value)


def test_truncated_gzip(tmp_path):
    write_source(tmp_path / "img.nii.gz", np.eye(3))
    data = (tmp_path / "img.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated gzip") as err:
        read_volume(tmp_path / "cut.nii.gz")
    assert "cut.nii.gz" in str(err.value)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_truncated_uncompressed_nifti(tmp_path, dtype):
    # ITK would read the missing voxels as zeros; integer images never reach the NaN check
    image = sitk.GetImageFromArray(np.ones((6, 8, 8), dtype=dtype))
    sitk.WriteImage(image, str(tmp_path / "img.nii"))
    data = (tmp_path / "img.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: len(data) - 100])
    assert read_volume(tmp_path / "img.nii").shape == (6, 8, 8)
    with pytest.raises(UserError, match="truncated file") as err:
        read_volume(tmp_path / "cut.nii")
    assert "cut.nii" in str(err.value)


def test_corrupt_file(tmp_path):
    with gzip.open(tmp_path / "junk.nii.gz", "wb") as fh:
        fh.write(b"this is not a nifti header" * 20)
    with pytest.raises(UserError, match="cannot read image"):
        read_volume(tmp_path / "junk.nii.gz")


def test_2d_image_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.float32)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(UserError, match="expected a 3D volume"):
        read_volume(tmp_path / "flat.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 8, 8), np.float32)), str(tmp_path / "one.nii.gz"))
    with pytest.raises(UserError, match="expected a 3D volume"):
        read_volume(tmp_path / "one.nii.gz")


def test_nan_voxels_refused(tmp_path):
    arr = np.zeros((4, 5, 6), np.float32)
    arr[2, 2, 2] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(UserError, match="NaN"):
        read_volume(tmp_path / "nan.nii.gz")


def test_label_geometry_mismatch(tmp_path):
    write_source(tmp_path / "img.nii.gz", np.eye(3))
    write_source(tmp_path / "lab.nii.gz", np.eye(3), origin=(0.0, 0.0, 0.0))
    image = read_volume(tmp_path / "img.nii.gz")
    with pytest.raises(UserError, match="does not match") as err:
        read_labels(tmp_path / "lab.nii.gz", like=image)
    assert "lab.nii.gz" in str(err.value)


def test_write_leaves_nothing_half_written(tmp_path):
    write_source(tmp_path / "img.nii.gz", np.eye(3))
    image = read_volume(tmp_path / "img.nii.gz")
    with pytest.raises(UserError):
        write_volume(image.array, image, tmp_path / "out.txt")
    with pytest.raises(ValueError):
        write_volume(np.zeros((2, 2, 2)), image, tmp_path / "out.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz"]
