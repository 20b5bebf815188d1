"""Fixed-interval margins and random's uniformity and nesting."""

from __future__ import annotations

import numpy as np

from slicebudget.selection import fixed_interval_indices, get_policy


def test_fixed_margins_balanced_and_gaps_even_for_every_size():
    for depth in range(1, 61):
        for n in range(1, depth + 1):
            picks = fixed_interval_indices(depth, n)
            assert picks.size == n and np.all(np.diff(picks) > 0), (depth, n)
            # margin before == margin after (one slice cannot sit mid-way in an even-length volume)
            assert abs(picks[0] - (depth - 1 - picks[-1])) <= (1 if n == 1 else 0), (depth, n)
            if n > 1:
                gaps = np.diff(picks)
                assert gaps.max() - gaps.min() <= 2, (depth, n)
                assert abs(gaps.mean() - depth / n) <= 1.0, (depth, n)


def test_fixed_every_nth_slice():
    picks = get_policy("fixed").select(np.zeros((100, 2, 2)), 10, seed=0)
    np.testing.assert_array_equal(picks, [5, 15, 25, 35, 45, 54, 64, 74, 84, 94])


def test_random_is_uniform_over_slices():
    counts = np.zeros(20)
    policy = get_policy("random")
    for seed in range(2000):
        counts[policy.select(np.zeros((20, 1, 1)), 5, seed=seed)] += 1
    expected = 2000 * 5 / 20
    assert np.all(np.abs(counts - expected) < 0.15 * expected)


def test_random_nested_across_densities():
    policy = get_policy("random")
    small = set(policy.select(np.zeros((50, 1, 1)), 5, seed=3).tolist())
    large = set(policy.select(np.zeros((50, 1, 1)), 20, seed=3).tolist())
    assert small <= large
