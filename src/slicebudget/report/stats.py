"""Mean and 95% interval over repeats (Student's t), and whether two intervals can be told apart.

A study repeats each configuration only a few times (the paper used three), so the interval uses the
t distribution with n - 1 degrees of freedom rather than the normal approximation, which would be
far too narrow at n = 3. With a single repeat there is no spread to estimate: the interval is absent
and the note says so, rather than pretending a zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
NO_INTERVAL_NOTE = "n=1, no interval"


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with a two-sided confidence interval (``low``/``high`` None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    sd: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def note(self) -> str:
        return "" if self.has_interval else NO_INTERVAL_NOTE

    def as_list(self) -> list[float] | None:
        return [self.low, self.high] if self.has_interval else None

    def describe(self, digits: int = 3) -> str:
        """``0.812 (95% CI 0.801 to 0.823, n=3)`` or ``0.812 (n=1, no interval)``."""
        if not self.has_interval:
            return f"{self.mean:.{digits}f} ({NO_INTERVAL_NOTE})"
        return f"{self.mean:.{digits}f} (95% CI {self.low:.{digits}f} to {self.high:.{digits}f}, n={self.n})"

    def excludes(self, value: float) -> bool:
        """True when the interval exists and lies wholly above or below ``value``."""
        return self.has_interval and (self.low > value or self.high < value)


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of the finite ``values`` with a t-interval at ``confidence``.

    Raises ValueError when no finite value is given: an empty group is a caller's bug, not a result.
    """
    array = np.asarray([float(v) for v in values], dtype=float)
    array = array[np.isfinite(array)]
    n = int(array.size)
    if n == 0:
        raise ValueError("mean_ci needs at least one finite value")
    mean = float(array.mean())
    if n == 1:
        return Interval(mean=mean, low=None, high=None, n=1, sd=None)
    sd = float(array.std(ddof=1))
    half_width = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sd / math.sqrt(n)
    return Interval(mean=mean, low=mean - half_width, high=mean + half_width, n=n, sd=sd)


def intervals_overlap(a: Interval, b: Interval) -> bool | None:
    """Whether two intervals overlap; None when either lacks an interval (nothing can be said)."""
    if not (a.has_interval and b.has_interval):
        return None
    return a.low <= b.high and b.low <= a.high


def pooled_sd(groups: Iterable[Iterable[float]]) -> tuple[float | None, int]:
    """Pooled within-group standard deviation and its degrees of freedom.

    Used as "repeat noise": the spread of one configuration's score over its repeats. Groups with a
    single value carry no information about that spread and are skipped.
    """
    sum_squares = 0.0
    dof = 0
    for group in groups:
        array = np.asarray([float(v) for v in group], dtype=float)
        array = array[np.isfinite(array)]
        if array.size < 2:
            continue
        sum_squares += float(((array - array.mean()) ** 2).sum())
        dof += int(array.size) - 1
    if dof == 0:
        return None, 0
    return math.sqrt(sum_squares / dof), dof
