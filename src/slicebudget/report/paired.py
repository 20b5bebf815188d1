"""One rule for every comparison in the report: a paired bootstrap over repeats and test cases.

Two configurations of a study are paired twice over: the same repeat shares its seed (same volumes
drawn, same training seed) and every run is scored on the same test cases. A comparison therefore
takes the difference A - B per (repeat, case), averages it, and resamples repeats and cases together
(the planner's resampling unit, :mod:`slicebudget.planning.bootstrap`) for its standard error; the
95% interval is mean +- t(0.975, repeats - 1) x SE.

The verdict is symmetric for every topic (spread vs concentrate, policy vs policy, interpolation on
vs off, best vs runner-up): a difference whose interval excludes 0 is detected; otherwise the text
says "no detectable difference" and gives the minimum detectable effect (MDE), the difference this
study would have detected with 80% power at the 5% level: (t_0.975 + t_0.80) x its standard error,
at repeats - 1 degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slicebudget.planning.observations import RUN_MEAN_CASE as RUN_MEAN
from slicebudget.report.records import HEADLINE

REPLICATES = 500  # enough for a standard error; the interval uses t, not percentiles


@dataclass(frozen=True)
class PairedDifference:
    mean: float
    low: float | None
    high: float | None
    mde: float | None
    n_repeats: int
    n_cases: int

    @property
    def detected(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    def describe(self, what: str = "IoU") -> str:
        units = f"{self.n_repeats} repeat{'s' if self.n_repeats != 1 else ''}"
        if self.n_cases > 1:
            units += f" x {self.n_cases} test cases"
        if self.low is None:
            return f"{self.mean:+.3f} {what} (paired over {units}: too few repeats for an interval)"
        return (f"{self.mean:+.3f} {what} (95% paired interval {self.low:+.3f} to {self.high:+.3f} "
                f"over {units})")

    def null_text(self) -> str:
        if self.mde is None:
            return "no detectable difference; with a single repeat this study cannot say how large a difference it could detect"
        return f"no detectable difference; this study could have detected a difference of {self.mde:.3f} IoU"


def paired_difference(diff: pd.Series, seed: int = 0) -> PairedDifference | None:
    """Bootstrap the mean of ``diff`` (indexed by repeat and case) over repeats and cases together."""
    from slicebudget.planning.bootstrap import replicate_cell_means, resample_counts

    diff = diff.dropna()
    if diff.empty:
        return None
    table = diff.unstack("case")
    values = table.to_numpy(float)
    n_repeats, n_cases = values.shape
    mean = float(np.nanmean(values))
    if n_repeats < 2:
        return PairedDifference(mean, None, None, None, n_repeats, n_cases)
    from scipy.stats import t

    wr, wc = resample_counts(n_repeats, n_cases, REPLICATES, np.random.default_rng(seed))
    se = float(replicate_cell_means(values[None, :, :], wr, wc)[:, 0].std(ddof=1))
    # Percentiles of a bootstrap over three repeats are far too narrow (ten distinct resamples), so
    # the interval and the MDE use the bootstrap's standard error with t quantiles at repeats - 1
    # degrees of freedom: repeats are the scarce unit, and a new campaign is a new repeat.
    df = n_repeats - 1
    half = float(t.ppf(0.975, df)) * se
    mde = (float(t.ppf(0.975, df)) + float(t.ppf(0.80, df))) * se
    return PairedDifference(mean, mean - half, mean + half, mde, n_repeats, n_cases)


def case_table(levels: pd.DataFrame, case_iou: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per (run, test case) with the run's fields and the case's IoU.

    When a run lacks per-case results, every run contributes its mean IoU as one pseudo-case, so
    that a mixture never weighs runs differently.
    """
    if levels.empty:
        return levels.assign(case=pd.Series(dtype=str), iou=pd.Series(dtype=float))
    if all(case_iou.get(run_id) for run_id in levels["run_id"]):
        rows = [(run_id, case, float(value)) for run_id in levels["run_id"] for case, value in case_iou[run_id].items()]
        cases = pd.DataFrame(rows, columns=["run_id", "case", "iou"])
    else:
        cases = pd.DataFrame({"run_id": levels["run_id"], "case": RUN_MEAN, "iou": levels[HEADLINE].astype(float)})
    return levels.drop(columns=[c for c in ("case", "iou") if c in levels]).merge(cases, on="run_id")


def by_repeat_case(cases: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Mean IoU per (keys, repeat, case): other factors (e.g. policies) averaged within a repeat."""
    return cases.groupby([*keys, "repeat", "case"], sort=True)["iou"].mean()


def difference(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b on the (repeat, case) pairs both have."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return joined["a"] - joined["b"]


def pooled(differences: list[pd.Series]) -> pd.Series:
    """Mean over comparisons of their differences, per (repeat, case)."""
    if not differences:
        return pd.Series(dtype=float)
    return pd.concat(differences, axis=1).mean(axis=1)
