"""MIST-style normalisation and target spacing."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from slicebudget.data.phantoms import write_phantom_dataset
from slicebudget.data.preprocess import (
    Normalization,
    fit_normalization,
    foreground_sample,
    normalization_from_samples,
    target_spacing,
)


def test_ct_apply_clips_then_zscores():
    norm = Normalization(modality="ct", window=(-100.0, 200.0), mean=50.0, std=25.0)
    out = norm.apply(np.array([[[-1000.0, 50.0, 100.0, 3000.0]]], dtype=np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [-6.0, 0.0, 2.0, 6.0])


def test_normalization_is_frozen():
    norm = Normalization(modality="ct", window=(0.0, 1.0), mean=0.0, std=1.0)
    with pytest.raises(ValidationError):
        norm.mean = 3.0


def test_ct_fit_uses_foreground_of_all_cases_and_skips_ignore():
    rng = np.random.default_rng(0)
    images, labels = [], []
    for _ in range(3):
        image = rng.normal(0.0, 50.0, size=(6, 20, 20)).astype(np.float32)
        label = np.zeros(image.shape, dtype=np.uint8)
        label[2:4, 5:15, 5:15] = 1
        image[label == 1] = rng.normal(100.0, 10.0, size=int((label == 1).sum()))
        label[5, :, :] = 3  # ignore label: its voxels are noise and must not count
        images.append(image)
        labels.append(label)
    norm = normalization_from_samples(foreground_sample(i, lab, ignore_label=3) for i, lab in zip(images, labels))
    pooled = np.concatenate([i[lab == 1] for i, lab in zip(images, labels)]).astype(np.float64)
    assert norm.modality == "ct"
    np.testing.assert_allclose(norm.window, np.percentile(pooled, [0.5, 99.5]), rtol=1e-6)
    assert norm.mean == pytest.approx(pooled.mean(), rel=1e-9)
    assert norm.std == pytest.approx(pooled.std(), rel=1e-6)


def test_ct_fit_percentiles_from_subsample_stay_close():
    rng = np.random.default_rng(1)
    image = rng.normal(60.0, 20.0, size=(20, 64, 64)).astype(np.float32)
    label = np.ones(image.shape, dtype=np.uint8)
    norm = normalization_from_samples([foreground_sample(image, label, max_samples=5000)])
    exact = np.percentile(image, [0.5, 99.5])
    np.testing.assert_allclose(norm.window, exact, atol=3.0)
    assert norm.mean == pytest.approx(float(image.astype(np.float64).mean()), rel=1e-9)  # sums use every voxel


def test_ct_fit_without_foreground_is_an_error():
    sample = foreground_sample(np.ones((2, 3, 3), np.float32), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="no labelled voxels"):
        normalization_from_samples([sample])


def test_mr_is_a_per_image_zscore():
    rng = np.random.default_rng(2)
    image = rng.normal(300.0, 40.0, size=(8, 32, 32))
    out = Normalization(modality="mr").apply(image)
    lo, hi = np.percentile(image, [0.5, 99.5])
    clipped = np.clip(image, lo, hi)
    np.testing.assert_allclose(out, (clipped - clipped.mean()) / clipped.std(), rtol=1e-4, atol=1e-4)


def test_mr_with_sparse_nonzero_keeps_zero_background():
    rng = np.random.default_rng(3)
    image = np.zeros((8, 32, 32))
    image[3:5, 10:20, 10:20] = rng.normal(500.0, 50.0, size=(2, 10, 10))  # under 20 % non-zero
    out = Normalization(modality="mr").apply(image)
    assert (out[image == 0] == 0).all()
    assert abs(float(out[image != 0].mean())) < 1e-4


def test_target_spacing_is_the_median_when_isotropic_enough():
    spacings = [(1.0, 0.8, 0.8), (1.5, 0.7, 0.7), (2.0, 0.9, 0.9)]
    assert target_spacing(spacings) == pytest.approx((1.5, 0.8, 0.8))


def test_target_spacing_takes_tenth_percentile_on_a_coarse_axis():
    slice_spacings = np.array([2.0, 2.5, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    spacings = [(z, 0.8, 0.8) for z in slice_spacings]
    result = target_spacing(spacings)
    assert result[0] == pytest.approx(np.percentile(slice_spacings, 10))  # median 5.0 is > 3 x 0.8
    assert result[1:] == pytest.approx((0.8, 0.8))


def test_target_spacing_grows_until_images_fit_in_memory():
    spacings = [(1.0, 1.0, 1.0)]
    shapes = [(100, 100, 100)]  # 4 MB at float32
    assert target_spacing(spacings, shapes) == pytest.approx((1.0, 1.0, 1.0))
    grown = target_spacing(spacings, shapes, max_bytes=1_000_000)
    assert grown == pytest.approx((1.25**3,) * 3)  # 4 MB / 1.25^6 < 1 MB needs three 25 % steps
    assert np.prod(np.ceil(100 / np.array(grown))) * 4 <= 1_000_000


def test_fit_normalization_on_a_phantom_dataset(tmp_path):
    from slicebudget.io import open_dataset

    root = write_phantom_dataset(tmp_path / "ds", "organ", cases=2, seed=3, shape=(12, 32, 32), test_cases=0)
    dataset = open_dataset(root)
    norm = fit_normalization(dataset)
    assert norm.modality == "ct"
    lo, hi = norm.window
    assert 0.0 < lo < norm.mean < hi < 250.0  # organ and tumour HU, not the air around the body
    normalised = norm.apply(dataset.load_case(dataset.cases[0]).images[0].array)
    assert normalised.dtype == np.float32
    assert normalised.min() == pytest.approx((lo - norm.mean) / norm.std, rel=1e-5)
