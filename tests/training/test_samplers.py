"""2D batches come uniformly from annotated slices; 3D patch centres follow the requested mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from slicebudget.training import TrainingCase, TrainSpec
from slicebudget.training.augment import build_augmentation
from slicebudget.training.samplers import (
    BACKGROUND,
    FOREGROUND,
    UNANNOTATED,
    GroupLabelSampler,
    SliceBatchSampler,
    build_patch_queue,
    case_subject,
    group_probabilities,
    patch_batches,
)
from slicebudget.volume import SparseAnnotation


@pytest.fixture
def cases(make_sparse_case):
    return [make_sparse_case(0, [1, 4]), make_sparse_case(1, [0]), make_sparse_case(2, [2, 3, 5], shape=(8, 20, 40))]


def test_2d_sampler_draws_only_annotated_slices_uniformly(cases):
    sampler = SliceBatchSampler(cases, batch_size=6, seed=7)
    draws = np.concatenate([sampler.sample_indices() for _ in range(1000)])  # 6000 draws
    pairs, counts = np.unique(draws, axis=0, return_counts=True)
    assert [tuple(p) for p in pairs] == [(0, 1), (0, 4), (1, 0), (2, 2), (2, 3), (2, 5)]
    # each pair expected 1000 times, standard deviation ~ 29
    assert np.all(np.abs(counts - 1000) < 120), counts


def test_2d_sampler_is_replayable_from_its_seed(cases):
    a = SliceBatchSampler(cases, batch_size=4, seed=3)
    b = SliceBatchSampler(cases, batch_size=4, seed=3)
    assert all(np.array_equal(a.sample_indices(), b.sample_indices()) for _ in range(5))


def test_2d_batch_pads_to_multiple_of_32_and_masks_the_padding(cases):
    batch = SliceBatchSampler(cases, batch_size=16, seed=0).next_batch()
    assert batch["image"].shape == (16, 1, 32, 64)  # largest slice 32 x 40 -> 32 x 64
    assert batch["image"].dtype == torch.float32 and batch["target"].dtype == torch.int64
    mask = batch["mask"].numpy()
    # a 32 x 32 slice sits centred in the 32 x 64 canvas; a 20 x 40 slice too
    assert set(mask.sum(axis=(1, 2)).tolist()) <= {32 * 32, 20 * 40}
    assert not mask[:, :, :12].any() and not mask[:, :, -12:].any()  # side padding never annotated
    first = SliceBatchSampler(cases, batch_size=1, seed=0)
    case_pos, slice_idx = first.sample_indices()[0]
    first = SliceBatchSampler(cases, batch_size=1, seed=0)
    one = first.next_batch()
    labels = cases[case_pos].annotation.labels[slice_idx]
    h, w = labels.shape
    oy, ox = (32 - h) // 2, (64 - w) // 2
    assert np.array_equal(one["target"][0, oy : oy + h, ox : ox + w].numpy(), labels)
    assert np.array_equal(one["image"][0, :, oy : oy + h, ox : ox + w].numpy(), cases[case_pos].image[:, slice_idx])


def test_2d_slice_size_crops_and_augmentation_keeps_labels_aligned_with_mask(cases):
    torch.manual_seed(0)
    sampler = SliceBatchSampler(cases, batch_size=8, seed=1, slice_size=(16, 24), transform=build_augmentation())
    batch = sampler.next_batch()
    assert batch["image"].shape == (8, 1, 16, 24)
    assert torch.all(batch["target"][~batch["mask"]] == 0)
    assert set(torch.unique(batch["target"]).tolist()) <= {0, 1}


def volume_for_3d(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((20, 24, 24), dtype=np.int64)
    labels[6:14, 8:16, 8:16] = 1
    labels[9:11, 10:12, 10:12] = 2
    image = rng.normal(size=(1, 20, 24, 24)).astype(np.float32)
    annotation = SparseAnnotation.from_dense(labels, [4, 8, 9, 10, 12, 15])
    return TrainingCase("vol", image, annotation)


def centre_groups(case, sampling, patch_size=(6, 6, 6), n=3000):
    subject = case_subject(case, patch_size, sampling)
    _, probabilities = group_probabilities(sampling)
    sampler = GroupLabelSampler(patch_size, label_name="sampling", label_probabilities=probabilities)
    centre = tuple(p // 2 for p in patch_size)
    return np.array([int(patch["sampling"].data[(0, *centre)]) for patch in sampler(subject, num_patches=n)])


def test_3d_patch_centres_follow_requested_probabilities():
    torch.manual_seed(0)
    groups = centre_groups(volume_for_3d(), {"foreground": 0.5, "background": 0.3, "unannotated": 0.2})
    shares = {g: np.mean(groups == g) for g in (FOREGROUND, BACKGROUND, UNANNOTATED)}
    assert shares[FOREGROUND] == pytest.approx(0.5, abs=0.04)
    assert shares[BACKGROUND] == pytest.approx(0.3, abs=0.04)
    assert shares[UNANNOTATED] == pytest.approx(0.2, abs=0.04)


def test_3d_class_keys_weigh_one_class_alone_and_missing_groups_fall_back():
    torch.manual_seed(1)
    groups = centre_groups(volume_for_3d(), {"class_2": 1.0}, n=200)
    assert np.all(groups == FOREGROUND + 1)
    empty = TrainingCase("empty", np.zeros((1, 10, 10, 10), np.float32), SparseAnnotation.from_dense(np.zeros((10, 10, 10), np.int64), [2]))
    groups = centre_groups(empty, {"foreground": 1.0}, patch_size=(4, 4, 4), n=50)
    assert set(groups.tolist()) <= {UNANNOTATED, BACKGROUND}  # uniform over real voxels instead of a crash


def test_3d_queue_batches_are_patches_with_masked_unannotated_voxels():
    torch.manual_seed(2)
    case = volume_for_3d()
    small = TrainingCase("small", np.ones((1, 5, 6, 7), np.float32), SparseAnnotation.from_dense(np.ones((5, 6, 7), np.int64), [2]))
    spec = TrainSpec(iterations=1, batch_size=3, learning_rate=1e-3, val_every=1, patch_size=(8, 8, 8))
    queue = build_patch_queue([case, small], spec.patch_size, spec.sampling, samples_per_volume=4, queue_length=8)
    assert isinstance(queue, tio.Queue)
    for transform in (None, build_augmentation()):
        batches = patch_batches(queue, 3, transform=transform)
        for _ in range(4):
            batch = next(batches)
            assert batch["image"].shape == (3, 1, 8, 8, 8)
            assert batch["target"].shape == batch["mask"].shape == (3, 8, 8, 8)
            assert torch.all(batch["target"][~batch["mask"]] == 0)
            if transform is None:  # whole slices are annotated or not (padding never is)
                per_slice = batch["mask"].flatten(2)
                real = batch["image"][:, 0].flatten(2).ne(0).all(dim=2)  # the small case is padded with zeros
                assert torch.all(per_slice.all(dim=2) | ~per_slice.any(dim=2) | ~real)
