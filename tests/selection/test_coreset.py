"""k-center picks diverse slices; features are deterministic; dataset-level variants respect budgets."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.selection import CoresetPolicy, get_features, get_policy, kcenter_greedy, slice_thumbnails

BLOCKS = (10, 7, 9)
BLOCK_OF = np.repeat(np.arange(3), BLOCKS)


def test_kcenter_covers_clusters_and_starts_near_mean():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    points = np.concatenate([c + 0.1 * rng.normal(size=(30, 2)) for c in centres] + [[[5.0, 5.0]]])
    order = kcenter_greedy(points, 5)
    assert order[0] == 120  # the lone point at the mean is the most typical
    assert sorted(int(i) // 30 for i in order[1:]) == [0, 1, 2, 3]


def test_kcenter_is_farthest_first():
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    np.testing.assert_array_equal(kcenter_greedy(x, 4, first=0), [0, 3, 2, 1])


def test_kcenter_handles_duplicates_and_full_k():
    x = np.zeros((6, 3))
    order = kcenter_greedy(x, 6)
    assert sorted(order.tolist()) == list(range(6))


def test_kcenter_quotas_exact_per_group():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(20, 4)), rng.normal(size=(20, 4)) + 50])  # group 1 is far away
    groups = np.repeat([0, 1], 20)
    order = kcenter_greedy(x, 6, groups=groups, quotas=[3, 3])
    assert np.bincount(groups[order], minlength=2).tolist() == [3, 3]


@pytest.mark.parametrize("features", ["intensity", "encoder"])
def test_three_picks_hit_three_blocks(features, make_blocks):
    params = {"thumbnail_size": 16} if features == "encoder" else {}
    policy = get_policy("coreset", features=features, **params)
    picks = policy.select(make_blocks(BLOCKS), 3, seed=0)
    assert sorted(BLOCK_OF[picks].tolist()) == [0, 1, 2]


def test_random_start_is_seeded_and_still_diverse(make_blocks):
    policy = get_policy("coreset", start="random")
    volume = make_blocks(BLOCKS)
    a, b = policy.select(volume, 3, seed=1), policy.select(volume, 3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert sorted(BLOCK_OF[a].tolist()) == [0, 1, 2]


def test_thumbnails_area_average_and_zscore():
    volume = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    thumbs = slice_thumbnails(volume, 2)
    block_means = volume.reshape(2, 2, 2, 2, 2).mean(axis=(2, 4))
    expected = (block_means - block_means.mean()) / block_means.std()
    np.testing.assert_allclose(thumbs, expected, rtol=1e-5, atol=1e-6)
    assert slice_thumbnails(np.zeros((3, 5, 7), dtype=np.int16), 4).shape == (3, 4, 4)
    assert slice_thumbnails(np.ones((3, 3, 3)), 8).shape == (3, 8, 8)  # upsampling repeats pixels


def test_intensity_features_shape_and_determinism(make_blocks):
    thumbs = slice_thumbnails(make_blocks(BLOCKS), 8)
    extractor = get_features("intensity", n_features=5)
    a, b = extractor.fit_transform(thumbs, seed=0), extractor.fit_transform(thumbs, seed=0)
    assert a.shape == (26, 5) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert get_features("intensity", n_features=100).fit_transform(thumbs[:4], seed=0).shape == (4, 4)


def test_encoder_features_deterministic_and_trained(make_blocks):
    thumbs = slice_thumbnails(make_blocks(BLOCKS, side=16), 16)
    extractor = get_features("encoder", thumbnail_size=16, n_features=8, steps=15)
    a = extractor.fit_transform(thumbs, seed=3)
    b = get_features("encoder", thumbnail_size=16, n_features=8, steps=15).fit_transform(thumbs, seed=3)
    c = get_features("encoder", thumbnail_size=16, n_features=8, steps=15).fit_transform(thumbs, seed=4)
    assert a.shape == (26, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.isfinite(extractor.final_loss_)
    with pytest.raises(UserError, match="multiple of 8"):
        get_features("encoder", thumbnail_size=20).fit_transform(np.zeros((3, 20, 20), np.float32), seed=0)


def test_custom_extractor_object_is_pluggable():
    class MeanIntensity:
        thumbnail_size = 4

        def fit_transform(self, thumbnails, seed):
            return thumbnails.reshape(len(thumbnails), -1).mean(axis=1, keepdims=True)

    volume = np.concatenate([np.full((5, 4, 4), v, np.float32) for v in (0.0, 1.0, 9.0)])
    picks = CoresetPolicy(features=MeanIntensity()).select(volume, 3, seed=0)
    assert sorted((picks // 5).tolist()) == [0, 1, 2]


def test_dataset_level_coreset_skips_redundant_volume(make_blocks):
    # volumes a and b are copies of one another, c is different: a pooled budget of 4 need not
    # spend slices on both copies, while the quota variant gives every volume its share.
    base = make_blocks((4, 4), side=16, seed=1)
    other = make_blocks((4, 4), side=16, seed=2) + 40
    volumes = [base, base.copy(), other]
    policy = get_policy("coreset")
    pooled = policy.select_dataset(volumes, 4, seed=0)
    quota = policy.select_dataset(volumes, 6, seed=0, quotas=[2, 2, 2])
    assert sum(p.size for p in pooled) == 4
    assert [p.size for p in quota] == [2, 2, 2]
    covered = {(v, int(i) // 4) for v, picks in enumerate(pooled) for i in picks}
    # the pool has 4 distinct slice kinds (2 blocks x 2 distinct volumes); 4 picks cover all of them
    kinds = {("same" if v < 2 else "other", block) for v, block in covered}
    assert len(kinds) == 4
    with pytest.raises(UserError, match="quotas sum"):
        policy.select_dataset(volumes, 5, seed=0, quotas=[2, 2, 2])


@pytest.mark.parametrize("name", ["fixed", "random"])
def test_position_policies_support_dataset_scope(name):
    volumes = [np.zeros((10, 2, 2)), np.zeros((30, 2, 2))]
    pooled = get_policy(name).select_dataset(volumes, 8, seed=0)
    quota = get_policy(name).select_dataset(volumes, 8, seed=0, quotas=[2, 6])
    assert sum(p.size for p in pooled) == 8 and [p.size for p in quota] == [2, 6]
    assert all(p.size == 0 or p.max() < v.shape[0] for p, v in zip(pooled, volumes))
