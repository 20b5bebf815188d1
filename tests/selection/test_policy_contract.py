"""The contract every registered slice policy keeps (one test list for the whole family)."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.selection import POLICIES, SlicePolicy, get_policy, n_slices_for_density

ALL = sorted(POLICIES)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [1, 5, 24])
def test_sorted_unique_in_range_exact_count(name, n, noise_volume):
    picked = get_policy(name).select(noise_volume, n, seed=7)
    assert isinstance(picked, np.ndarray) and np.issubdtype(picked.dtype, np.integer)
    assert picked.size == n
    assert np.all(np.diff(picked) > 0)
    assert picked[0] >= 0 and picked[-1] < noise_volume.shape[0]


@pytest.mark.parametrize("name", ALL)
def test_deterministic_per_seed_and_generator(name, noise_volume):
    policy = get_policy(name)
    a = policy.select(noise_volume, 6, seed=11)
    b = policy.select(noise_volume, 6, seed=11)
    c = policy.select(noise_volume, 6, seed=np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name", ALL)
def test_does_not_mutate_input(name, noise_volume):
    before = noise_volume.copy()
    get_policy(name).select(noise_volume, 4, seed=0)
    np.testing.assert_array_equal(noise_volume, before)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [0, -1, 25])
def test_bad_counts_rejected(name, n, noise_volume):
    with pytest.raises(UserError):
        get_policy(name).select(noise_volume, n, seed=0)


@pytest.mark.parametrize("name", ALL)
def test_params_round_trip(name):
    policy = get_policy(name)
    assert isinstance(policy, SlicePolicy)
    rebuilt = get_policy(name, **policy.get_params())
    assert rebuilt.get_params() == policy.get_params() and type(rebuilt) is type(policy)


def test_random_differs_across_seeds(noise_volume):
    policy = get_policy("random")
    picks = {tuple(policy.select(noise_volume, 6, seed=s)) for s in range(5)}
    assert len(picks) == 5


def test_unknown_policy_lists_valid_names():
    with pytest.raises(UserError) as err:
        get_policy("smart")
    assert all(name in str(err.value) for name in POLICIES)


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError, match="bad parameters"):
        get_policy("fixed", spacing=3)
    with pytest.raises(UserError, match="feature extractor"):
        get_policy("coreset", features="sift")
    with pytest.raises(UserError, match="start"):
        get_policy("coreset", start="edge")


@pytest.mark.parametrize("density", [0, -0.1, 1.5, float("nan")])
def test_density_outside_unit_interval_rejected(density):
    with pytest.raises(UserError):
        n_slices_for_density(100, density)


@pytest.mark.parametrize(("n_total", "density", "expected"), [(100, 0.05, 5), (100, 1.0, 100), (7, 0.01, 1), (40, 0.2, 8)])
def test_n_slices_for_density(n_total, density, expected):
    assert n_slices_for_density(n_total, density) == expected
