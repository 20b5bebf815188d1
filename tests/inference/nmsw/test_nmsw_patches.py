from __future__ import annotations

import itertools

import pytest
import torch

from slicebudget.models.nmsw.patches import (
    box_means,
    extract_patches,
    full_coverage,
    gaussian_importance_map,
    low_resolution_boxes,
    pad_to_patch,
    patch_grid,
    select_patches,
)
from slicebudget.models.sliding_window import gaussian_importance_map as sw_gaussian
from slicebudget.models.sliding_window import window_starts


def test_grid_counts_the_sliding_window_positions():
    grid = patch_grid((64, 160, 160), (32, 48, 48), 0.5)
    assert grid.grid_shape == (3, 6, 6)
    assert grid.n_patches == 108
    expected = list(itertools.product(*(window_starts(s, p, 0.5) for s, p in [(64, 32), (160, 48), (160, 48)])))
    assert grid.starts().tolist() == [list(c) for c in expected]
    # every voxel is covered, the last window ends at the border
    assert grid.starts()[-1].tolist() == [32, 112, 112]


def test_volume_smaller_than_patch_is_refused_by_the_grid_and_padded_with_a_warning():
    with pytest.raises(ValueError, match="smaller than the patch"):
        patch_grid((6, 24, 24), (8, 12, 12))
    image = torch.ones(1, 1, 6, 24, 24)
    with pytest.warns(UserWarning, match="smaller than the patch"):
        padded, crop = pad_to_patch(image, (8, 12, 12))
    assert padded.shape[2:] == (8, 24, 24)
    assert torch.equal(padded[(slice(None), slice(None), *crop)], image)
    assert padded[0, 0, 0].sum() == 0 and padded[0, 0, -1].sum() == 0


def test_only_chosen_patches_are_extracted():
    image = torch.arange(2 * 16 * 24 * 24, dtype=torch.float32).reshape(2, 16, 24, 24)
    grid = patch_grid((16, 24, 24), (8, 12, 12))
    starts = grid.starts()[torch.tensor([0, 13, 26])]
    patches = extract_patches(image, grid, starts)
    assert patches.shape == (3, 2, 8, 12, 12)
    for patch, start in zip(patches, starts.tolist()):
        assert torch.equal(patch, image[(slice(None), *grid.region(start))])
    assert extract_patches(image, grid, starts[:0]).shape == (0, 2, 8, 12, 12)


def test_importance_map_matches_the_sliding_window_and_coverage_is_the_sum_of_all_maps():
    patch = (8, 12, 10)
    assert torch.allclose(gaussian_importance_map(patch), sw_gaussian(patch), rtol=1e-6, atol=1e-7)
    grid = patch_grid((16, 24, 23), patch)
    total = torch.zeros(grid.volume_shape)
    for start in grid.starts().tolist():
        total[grid.region(start)] += gaussian_importance_map(patch)
    assert torch.allclose(full_coverage(grid), total, rtol=1e-5)
    box = (slice(2, 9), slice(0, 24), slice(5, 7))
    assert torch.allclose(full_coverage(grid, box), total[box], rtol=1e-5)


def test_box_means_match_brute_force():
    volume = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    grid = patch_grid((10, 14, 12), (4, 6, 6))
    boxes = low_resolution_boxes(grid, (5, 7, 6))
    means = box_means(volume, boxes)
    assert means.shape == (2, grid.n_patches)
    for n, box in enumerate(boxes.tolist()):
        region = tuple(slice(a, b) for a, b in box)
        assert torch.allclose(means[:, n], volume[(slice(None), *region)].mean(dim=(-3, -2, -1)))


def test_selection_extraction_is_the_inner_product_of_eq5_in_value_and_gradient():
    torch.manual_seed(0)
    image = torch.randn(1, 16, 24, 24, dtype=torch.float64)
    grid = patch_grid((16, 24, 24), (8, 12, 12))
    n = grid.n_patches
    selection = torch.zeros(2, n, dtype=torch.float64)
    selection[0, 4], selection[1, 20] = 0.7, 0.4
    selection.requires_grad_(True)
    indices = torch.tensor([4, 20])
    patches = select_patches(image, grid, selection, indices)
    stacked = torch.stack([image[(slice(None), *grid.region(s))] for s in grid.starts().tolist()])  # (N, ...)
    reference = torch.einsum("kn,ncdhw->kcdhw", selection, stacked)
    assert torch.allclose(patches, reference)
    upstream = torch.randn_like(patches)
    (grad,) = torch.autograd.grad((patches * upstream).sum(), selection)
    (expected,) = torch.autograd.grad((reference * upstream).sum(), selection)
    assert torch.allclose(grad, expected)
    assert (grad != 0).sum() > n  # unchosen positions get a gradient too (straight-through)
