"""The one comparison rule: paired over repeats and cases, interval, and the detectable effect."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slicebudget.report.paired import paired_difference


def _diff(values: np.ndarray) -> pd.Series:
    index = pd.MultiIndex.from_product([range(values.shape[0]), [f"c{i}" for i in range(values.shape[1])]],
                                       names=["repeat", "case"])
    return pd.Series(values.ravel(), index=index)


def test_a_clear_difference_is_detected():
    rng = np.random.default_rng(0)
    result = paired_difference(_diff(0.03 + rng.normal(0, 0.005, (3, 6))))
    assert result.detected and result.low > 0 and result.n_repeats == 3 and result.n_cases == 6


def test_a_null_states_its_minimum_detectable_effect():
    rng = np.random.default_rng(1)
    result = paired_difference(_diff(rng.normal(0, 0.02, (3, 6))))
    assert not result.detected and result.low < 0 < result.high
    assert result.mde > result.high - result.mean  # MDE: interval half-width plus the 80%-power margin
    assert f"could have detected a difference of {result.mde:.3f} IoU" in result.null_text()


def test_more_repeats_detect_smaller_effects():
    rng = np.random.default_rng(2)
    few = paired_difference(_diff(rng.normal(0, 0.02, (3, 6))))
    many = paired_difference(_diff(rng.normal(0, 0.02, (12, 6))))
    assert many.mde < few.mde / 2


def test_three_repeats_do_not_overclaim():
    """Zero-mean differences over three repeats: the paired rule calls a difference about 5% of the time,
    not the ~30% a percentile bootstrap over three repeats would."""
    rng = np.random.default_rng(3)
    calls = sum(paired_difference(_diff(rng.normal(0, 0.02, (3, 1)) + rng.normal(0, 0.005, (3, 4)))).detected
                for _ in range(100))
    assert calls <= 12


def test_single_repeat_has_no_interval():
    result = paired_difference(_diff(np.array([[0.01, 0.02]])))
    assert result.low is None and result.mde is None and not result.detected
    assert "single repeat" in result.null_text()
