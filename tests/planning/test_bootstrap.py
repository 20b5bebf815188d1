"""The bootstrap resampling unit: whole repeats and whole cases, the same draws for every cell."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.bench.planning import synthetic_runs
from slicebudget.planning.bootstrap import Predictive, repeat_noise, replicate_cell_means, resample_counts
from slicebudget.planning.observations import observations


def test_counts_draw_whole_repeats_and_cases():
    wr, wc = resample_counts(3, 5, 400, np.random.default_rng(0))
    assert wr.shape == (400, 3) and wc.shape == (400, 5)
    assert np.all(wr.sum(axis=1) == 3) and np.all(wc.sum(axis=1) == 5)
    assert (wr == 0).any() and (wr >= 2).any()  # with replacement
    _, fixed = resample_counts(3, 5, 10, np.random.default_rng(0), cases=False)
    assert np.all(fixed == 1)


def test_replicates_are_paired_across_cells():
    """Two cells whose runs differ by a constant per repeat keep that difference in every replicate:
    the repeat drawn is the same for both (an unpaired bootstrap would blur it)."""
    rng = np.random.default_rng(1)
    repeat_effect = rng.normal(0, 0.1, 3)
    base = 0.5 + repeat_effect[:, None] + rng.normal(0, 0.05, (3, 4))
    iou = np.stack([base, base + 0.02])  # (cells, repeats, cases)
    wr, wc = resample_counts(3, 4, 300, rng)
    means = replicate_cell_means(iou, wr, wc)
    assert np.allclose(means[:, 1] - means[:, 0], 0.02)
    assert means[:, 0].std() > 0.01  # yet each cell mean does vary


def test_replicate_spread_matches_the_standard_error_of_the_mean():
    rng = np.random.default_rng(2)
    iou = rng.normal(0.6, 0.1, (1, 3, 1))
    wr, wc = resample_counts(3, 1, 4000, rng)
    means = replicate_cell_means(iou, wr, wc)[:, 0]
    se = iou[0, :, 0].std(ddof=1) / np.sqrt(3)
    assert means.std() == pytest.approx(se, rel=0.1)  # the (R - 1) / R shrinkage is undone


def test_missing_run_keeps_cell_mean():
    iou = np.array([[[0.5], [np.nan], [np.nan]]])
    wr = np.array([[0.0, 2.0, 1.0]])
    means = replicate_cell_means(iou, wr, np.ones((1, 1)))
    assert np.isfinite(means).all()


def test_repeat_noise_follows_the_cells_spread():
    obs = observations(synthetic_runs(repeat_sd=0.05, seed=3, repeats=5), "unet-resnet18", 2)
    noise = repeat_noise(obs)
    assert 0.02 < float(noise.sd(8, 4)) < 0.1


def test_prediction_interval_is_wider_than_the_surface_spread_and_clipped():
    surfaces = np.random.default_rng(0).normal(0.95, 0.01, (200, 1))
    pred = Predictive(np.array([0.95]), surfaces, np.array([0.05]))
    low, high = pred.interval(0.8)
    assert high[0] <= 1.0 and low[0] < np.quantile(surfaces, 0.1)
    assert pred.prob_at_least(0.5)[0] > 0.99 and pred.prob_at_least(0.99)[0] < 0.3
