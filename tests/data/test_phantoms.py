"""Phantoms: classes present, CT-like values, empty slices around the target, determinism, headers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from slicebudget.data.phantoms import TASK_LABELS, case_rng, generate_phantom, write_phantom_dataset
from slicebudget.errors import UserError

SHAPE = (16, 40, 40)
SPACING = (2.5, 0.8, 0.8)
TASKS = sorted(TASK_LABELS)


def _per_slice_foreground(labels: np.ndarray) -> np.ndarray:
    return labels.reshape(labels.shape[0], -1).any(axis=1)


@pytest.mark.parametrize("task", TASKS)
def test_every_class_present_and_target_leaves_empty_slices(task):
    for seed in range(6):
        image, labels = generate_phantom(task, SHAPE, SPACING, np.random.default_rng(seed))
        assert image.dtype == np.float32 and labels.dtype == np.uint8
        assert image.shape == labels.shape == SHAPE
        assert set(np.unique(labels)) == set(TASK_LABELS[task].values())
        fg = _per_slice_foreground(labels)
        # The target never fills the slice axis: slices above and below it hold background only.
        assert not fg[0] and not fg[-1]
        assert 0 < fg.sum() < SHAPE[0] - 1


@pytest.mark.parametrize("task", TASKS)
def test_values_look_like_ct(task):
    image, labels = generate_phantom(task, SHAPE, SPACING, np.random.default_rng(3))
    assert np.isfinite(image).all()
    corner = image[:, :2, :2]  # outside the body / head: air
    assert abs(float(corner.mean()) + 1000.0) < 30.0
    foreground = image[labels > 0]
    assert -150.0 < float(foreground.mean()) < 200.0  # soft tissue range in Hounsfield units


def test_organ_tumour_has_clear_contrast_and_sits_inside_the_organ():
    for seed in range(5):
        image, labels = generate_phantom("organ", (24, 64, 64), SPACING, np.random.default_rng(seed))
        organ, tumour = labels == 1, labels == 2
        assert float(image[organ].mean() - image[tumour].mean()) > 20.0
        # The tumour is enclosed by the organ: its neighbours are never background.
        grown = ndimage.binary_dilation(tumour) & ~tumour
        assert not (grown & (labels == 0)).any()
        assert organ.sum() > 10 * tumour.sum()


def test_lesions_are_small_and_low_contrast():
    image, labels = generate_phantom("lesion", (24, 64, 64), SPACING, np.random.default_rng(4))
    lesion = labels == 1
    assert 0 < lesion.mean() < 0.02
    ring = ndimage.binary_dilation(lesion, iterations=2) & ~lesion
    gap = float(image[ring].mean() - image[lesion].mean())
    assert 0.0 < gap < 25.0  # darker than the tissue around it, but only slightly


def test_vessel_is_a_thin_connected_tree():
    image, labels = generate_phantom("vessel", (24, 64, 64), SPACING, np.random.default_rng(5))
    vessel = labels == 1
    components, n = ndimage.label(vessel, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(components.ravel())[1:]
    assert sizes.max() >= 0.9 * vessel.sum()  # one tree, not scattered blobs
    # Thin: no voxel lies deeper than a few millimetres inside the tree.
    depth_mm = ndimage.distance_transform_edt(vessel, sampling=SPACING)
    assert depth_mm.max() < 6.0
    zs, ys, xs = np.nonzero(vessel)
    box_volume = np.ptp(zs + 1) * np.ptp(ys + 1) * np.ptp(xs + 1)
    assert vessel.sum() < 0.3 * box_volume


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_per_seed_and_different_between_seeds(task):
    a_image, a_labels = generate_phantom(task, SHAPE, SPACING, np.random.default_rng(11))
    b_image, b_labels = generate_phantom(task, SHAPE, SPACING, np.random.default_rng(11))
    c_image, c_labels = generate_phantom(task, SHAPE, SPACING, np.random.default_rng(12))
    np.testing.assert_array_equal(a_image, b_image)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_labels, c_labels)
    assert not np.allclose(a_image, c_image)


def test_cases_vary_in_size_and_position():
    counts, centres = [], []
    for index in range(4):
        _, labels = generate_phantom("organ", SHAPE, SPACING, case_rng(0, index))
        counts.append(int((labels == 1).sum()))
        centres.append(np.argwhere(labels > 0).mean(axis=0))
    assert len(set(counts)) == 4
    assert np.ptp(np.array(centres), axis=0).max() > 1.0


def test_bad_task_and_shape_are_user_errors():
    with pytest.raises(UserError, match="lesion, organ, vessel"):
        generate_phantom("liver", SHAPE, SPACING, 0)
    with pytest.raises(UserError, match="at least"):
        generate_phantom("organ", (4, 40, 40), SPACING, 0)
    with pytest.raises(UserError, match="positive"):
        generate_phantom("organ", SHAPE, (0.0, 0.8, 0.8), 0)


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "organ"
    write_phantom_dataset(out, "organ", cases=3, seed=7, shape=SHAPE, spacing=SPACING, test_cases=1)
    return out


def test_written_dataset_layout_and_headers(written):
    meta = json.loads((written / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"] == {"background": 0, "organ": 1, "tumour": 2}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (written / "imagesTr").iterdir()) == [f"case_000{i}_0000.nii.gz" for i in range(3)]
    assert [p.name for p in (written / "imagesTs").iterdir()] == ["case_0003_0000.nii.gz"]
    assert [p.name for p in (written / "labelsTs").iterdir()] == ["case_0003.nii.gz"]
    image = sitk.ReadImage(str(written / "imagesTr" / "case_0000_0000.nii.gz"))
    assert np.allclose(image.GetSpacing(), SPACING[::-1])  # SimpleITK order: x, y, z
    assert all(abs(o) > 1.0 for o in image.GetOrigin())
    assert image.GetSize() == SHAPE[::-1]
    # Dense test labels hold every class.
    assert set(np.unique(_read(written / "labelsTs" / "case_0003.nii.gz"))) == {0, 1, 2}
    assert not any(p.name.startswith(".tmp") for p in written.parent.iterdir())


def test_adding_cases_keeps_earlier_cases(written, tmp_path):
    more = write_phantom_dataset(tmp_path / "more", "organ", cases=4, seed=7, shape=SHAPE, spacing=SPACING, test_cases=2)
    for name in ("imagesTr/case_0000_0000.nii.gz", "labelsTr/case_0002.nii.gz"):
        np.testing.assert_array_equal(_read(written / name), _read(more / name))
    # Test cases draw from their own generators: the first one is unchanged by adding training cases.
    np.testing.assert_array_equal(_read(written / "labelsTs/case_0003.nii.gz"), _read(more / "labelsTs/case_0004.nii.gz"))


def test_refuses_to_overwrite_a_non_empty_folder(written):
    with pytest.raises(UserError, match="not empty"):
        write_phantom_dataset(written, "organ", cases=1, seed=0, shape=SHAPE)


def test_passes_nnunet_integrity_check(written):
    # One task suffices: every task goes through the same writer (and the check spawns a process
    # that imports torch, which is slow on a busy machine).
    pytest.importorskip("nnunetv2")
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(written), num_processes=1)  # raises on any inconsistency
