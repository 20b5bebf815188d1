from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from slicebudget.report.stats import NO_INTERVAL_NOTE, Interval, intervals_overlap, mean_ci, pooled_sd


@pytest.mark.parametrize("values", [[0.8, 0.82, 0.79], [0.5, 0.9], [0.1, 0.2, 0.3, 0.4, 0.5, 0.61]])
def test_interval_matches_scipy_t_interval(values):
    interval = mean_ci(values)
    low, high = scipy_stats.t.interval(0.95, df=len(values) - 1, loc=np.mean(values),
                                       scale=scipy_stats.sem(values))
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.low == pytest.approx(low)
    assert interval.high == pytest.approx(high)
    assert interval.n == len(values)


def test_single_value_has_no_interval_and_says_so():
    interval = mean_ci([0.7])
    assert interval.mean == pytest.approx(0.7)
    assert interval.low is None and interval.high is None and not interval.has_interval
    assert interval.note == NO_INTERVAL_NOTE == "n=1, no interval"
    assert "n=1, no interval" in interval.describe()
    assert interval.as_list() is None
    assert intervals_overlap(interval, mean_ci([0.1, 0.2, 0.3])) is None


def test_nan_values_are_ignored_and_empty_input_is_an_error():
    assert mean_ci([0.5, math.nan, 0.7]).n == 2
    with pytest.raises(ValueError):
        mean_ci([math.nan])


def test_overlap_and_exclusion():
    a = Interval(0.8, 0.78, 0.82, 3)
    b = Interval(0.7, 0.68, 0.72, 3)
    c = Interval(0.79, 0.75, 0.83, 3)
    assert intervals_overlap(a, b) is False
    assert intervals_overlap(a, c) is True
    assert a.excludes(0.0) and not Interval(0.0, -0.1, 0.1, 3).excludes(0.0)


def test_pooled_sd_matches_hand_computation():
    groups = [[1.0, 2.0, 3.0], [5.0, 7.0], [9.0]]  # the lone value carries no spread and is skipped
    squares = (1 + 0 + 1) + (1 + 1)
    sd, dof = pooled_sd(groups)
    assert dof == 3
    assert sd == pytest.approx(math.sqrt(squares / 3))
    assert pooled_sd([[1.0], [2.0]]) == (None, 0)
