"""Reader, writer and layer geometry (no viewer): orientation, scale, origin, oblique direction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.io import read_volume, write_volume

from napari_slicebudget import io_hooks
from napari_slicebudget.logic.geometry import LPS_TO_SPL, layer_transform, volume_from_layer
from tests_helpers import make_volume, oblique_direction, world_of


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_reader_places_image_in_spl_millimetres(tmp_path, suffix):
    volume = make_volume()
    path = tmp_path / f"ct{suffix}"
    write_volume(volume.array, volume, path)
    (data, meta, kind), = io_hooks.layer_data(path)
    assert kind == "image" and data.shape == volume.shape
    np.testing.assert_allclose(data, volume.array)
    assert meta["scale"] == pytest.approx((3.0, 0.7, 0.8))  # slice axis first
    np.testing.assert_allclose(meta["affine"], np.eye(4), atol=1e-9)  # axis-aligned: no rotation
    # every voxel lands where the source header puts it (LPS, reordered to S, P, L)
    for index in [(0, 0, 0), (11, 19, 23), (4, 7, 2)]:
        lps = (volume.affine @ np.r_[index, 1.0])[:3]
        np.testing.assert_allclose(world_of(meta, index), LPS_TO_SPL @ lps, atol=1e-6)
    assert meta["translate"] == pytest.approx(tuple(LPS_TO_SPL @ volume.affine[:3, 3]))
    assert abs(meta["translate"][0]) > 1  # the non-zero origin is kept, not reset


def test_oblique_file_gets_rotation_about_origin_voxel(tmp_path):
    volume = make_volume(direction=oblique_direction(25.0))
    path = tmp_path / "oblique.mha"
    write_volume(volume.array, volume, path)
    (_, meta, _), = io_hooks.layer_data(path)
    rotation = np.asarray(meta["affine"])[:3, :3]
    assert not np.allclose(rotation, np.eye(3))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    for index in [(0, 0, 0), (11, 19, 23), (3, 15, 1)]:
        lps = (volume.affine @ np.r_[index, 1.0])[:3]
        np.testing.assert_allclose(world_of(meta, index), LPS_TO_SPL @ lps, atol=1e-6)


@pytest.mark.parametrize("direction", [None, "oblique"])
def test_writer_restores_exact_source_header(tmp_path, direction):
    volume = make_volume(direction=oblique_direction(-15.0)) if direction else make_volume()
    source = tmp_path / "ct.nrrd"
    write_volume(volume.array, volume, source)
    (data, meta, _), = io_hooks.layer_data(source)
    labels = (data > 0.5).astype(np.uint8)
    out = tmp_path / "labels.nii.gz"
    assert io_hooks.write_labels(str(out), labels, meta) == [str(out)]
    src, back = sitk.ReadImage(str(source)), sitk.ReadImage(str(out))
    assert back.GetSize() == src.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), src.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), src.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), src.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(read_volume(out).array, labels)


def test_writer_without_metadata_uses_layer_transform(tmp_path):
    volume = make_volume()
    transform = layer_transform(volume)
    rebuilt = volume_from_layer(volume.array, None, transform["scale"], transform["translate"], transform["affine"])
    np.testing.assert_allclose(rebuilt.affine, volume.affine, atol=1e-6)


def test_label_folders_open_as_labels(tmp_path):
    volume = make_volume()
    labels = (volume.array > 1).astype(np.uint8)
    path = tmp_path / "labelsTr" / "case_0000.nii.gz"
    write_volume(labels, volume, path)
    (data, meta, kind), = io_hooks.layer_data(path)
    assert kind == "labels" and np.issubdtype(data.dtype, np.integer)
    np.testing.assert_array_equal(data, labels)
    assert io_hooks.get_reader(str(path)) is io_hooks.read_medical
    assert io_hooks.get_reader("notes.txt") is None and io_hooks.get_reader(["a.nii", "b.nii"]) is None


def test_unreadable_file_notifies_and_adds_nothing(tmp_path, monkeypatch):
    import napari.utils.notifications as notifications

    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08not really gzip")
    messages = []
    monkeypatch.setattr(notifications, "show_error", messages.append)
    assert io_hooks.read_medical(str(bad)) == io_hooks.NULL_LAYER
    assert len(messages) == 1 and "broken.nii.gz" in messages[0] and "gzip" in messages[0]
    assert io_hooks.write_labels(str(tmp_path / "x.txt"), np.zeros((2, 2, 2), np.uint8), {}) == []
    assert "save labels as" in messages[-1]
