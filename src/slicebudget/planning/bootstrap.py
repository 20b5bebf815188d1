"""Bootstrap over repeats and test cases together, and the spread of a new campaign.

Resampling unit: one replicate draws the repeats with replacement and, independently, the test
cases with replacement, and uses the *same* draws for every cell. Repeats are paired by seed across
cells (a repeat's volumes and training seed do not depend on the cell) and every run is scored on
the same cases, so resampling whole repeats and whole cases keeps the correlation between cells
that a paired comparison relies on. A replicate's cell mean is the mean of ``iou[cell, r, c]`` over
the drawn (r, c) pairs, counted with multiplicity.

A new campaign is one more repeat: its IoU is the surface plus a repeat effect whose SD grows where
the study's repeats disagreed more (small budgets). That SD is modelled as log sigma linear in
log n and log k over the cells with two or more runs, clipped to the range the cells showed, so the
intervals are prediction intervals for a new campaign, not confidence intervals for the fit alone.
The surface's form may also miss the true IoU at a point by more than its bootstrap shows; that
form error (:mod:`slicebudget.planning.formerror`) is shared by every campaign at the point, so
unlike the repeat effect it does not shrink when several campaigns are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.planning.observations import Observations

def normal_quantiles(count: int = 16) -> np.ndarray:
    """Standard-normal quantiles that stand in for draws of a new campaign's repeat effect: evenly
    spaced in probability, so intervals are smooth and reproducible without extra random numbers."""
    from scipy.special import ndtri  # scipy.stats would cost half a second of import

    return ndtri((np.arange(count) + 0.5) / count)


def resample_counts(n_repeats: int, n_cases: int, replicates: int, rng: np.random.Generator,
                    cases: bool = True):
    """How often each repeat and each case is drawn in each replicate: (B, R) and (B, C) counts.

    ``cases=False`` keeps every case once: resampling repeats only, given the study's test cases.
    """
    drawn = rng.integers(0, n_repeats, size=(replicates, n_repeats))
    wr = np.stack([np.bincount(row, minlength=n_repeats) for row in drawn]).astype(float)
    if not cases:
        return wr, np.ones((replicates, n_cases))
    drawn = rng.integers(0, n_cases, size=(replicates, n_cases))
    wc = np.stack([np.bincount(row, minlength=n_cases) for row in drawn]).astype(float)
    return wr, wc


def replicate_cell_means(iou: np.ndarray, wr: np.ndarray, wc: np.ndarray) -> np.ndarray:
    """(B, cells) cell means under each replicate's repeat and case counts.

    A cell none of whose runs was drawn keeps its full-data mean (rare: it needs a cell that lacks
    most repeats); dropping it would change which cells the replicate fits.
    """
    finite = np.isfinite(iou)
    values = np.where(finite, iou, 0.0)
    total = np.einsum("br,bc,xrc->bx", wr, wc, values, optimize=True)
    weight = np.einsum("br,bc,xrc->bx", wr, wc, finite.astype(float), optimize=True)
    full = values.sum(axis=(1, 2)) / np.maximum(finite.sum(axis=(1, 2)), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(weight > 0, total / np.maximum(weight, 1e-300), full[None, :])
    # A bootstrap mean of R values varies (R - 1) / R as much as the mean itself does: with three
    # repeats the intervals would be a third too narrow in variance. Scale replicates about the
    # full-data mean to undo that.
    repeats = iou.shape[1]
    return full[None, :] + (means - full[None, :]) * (np.sqrt(repeats / (repeats - 1)) if repeats > 1 else 1.0)


def bootstrap_targets(obs: Observations, replicates: int, seed: int, cases: bool = True) -> np.ndarray:
    """(B, cells) cell means of ``replicates`` resamples of repeats and cases (paired across cells);
    ``cases=False`` resamples repeats only, given the study's test cases."""
    rng = np.random.default_rng(seed)
    wr, wc = resample_counts(len(obs.repeats), len(obs.cases), replicates, rng, cases)
    return replicate_cell_means(obs.iou, wr, wc)


def t_scales(repeats: int, replicates: int, seed: int) -> np.ndarray:
    """(B,) sqrt(nu / chi2_nu) per replicate, nu = repeats - 1 (ones when nu < 1): scaling a normal
    deviation by it gives a Student-t one with nu degrees of freedom (``Predictive.prob_beats``)."""
    nu = repeats - 1
    if nu < 1:
        return np.ones(replicates)
    return np.sqrt(nu / np.random.default_rng([seed, 2]).chisquare(nu, replicates))


@dataclass(frozen=True)
class RepeatNoise:
    """SD of one campaign's IoU around the surface: exp(u + v log n + w log k), clipped."""

    coef: np.ndarray  # (u, v, w)
    low: float
    high: float

    def sd(self, n, k) -> np.ndarray:
        n, k = np.broadcast_arrays(np.asarray(n, float), np.asarray(k, float))
        log_sd = self.coef[0] + self.coef[1] * np.log(n) + self.coef[2] * np.log(k)
        return np.clip(np.exp(log_sd), self.low, self.high)


def repeat_noise(obs: Observations, keep: np.ndarray | None = None) -> RepeatNoise:
    """Fit :class:`RepeatNoise` to the repeat spread of the cells where ``keep`` (default all)."""
    runs = obs.run_means()
    counts = np.sum(np.isfinite(runs), axis=1)
    dev = runs - obs.cell_means()[:, None]
    ss = np.nansum(dev ** 2, axis=1)
    df = np.maximum(counts - 1, 0)
    if keep is not None:
        ss, df = np.where(keep, ss, 0.0), np.where(keep, df, 0)
    pooled = float(np.sqrt(ss.sum() / df.sum())) if df.sum() > 0 else 0.0
    pooled = max(pooled, 1e-3)
    ok = (df > 0) & (ss > 0)
    if ok.sum() < 4:
        return RepeatNoise(np.array([np.log(pooled), 0.0, 0.0]), pooled, pooled)
    from scipy.special import digamma

    nu = df[ok].astype(float)
    # log s is biased low for few degrees of freedom (E log s^2 = log sigma^2 + digamma(nu/2) - log(nu/2):
    # 25% too small an SD at three repeats); correct each cell before the regression.
    log_sd = 0.5 * np.log(ss[ok] / nu) - 0.5 * (digamma(nu / 2) - np.log(nu / 2))
    x = np.column_stack([np.ones(ok.sum()), np.log(obs.n[ok]), np.log(obs.k[ok])])
    w = np.sqrt(nu)
    coef, *_ = np.linalg.lstsq(x * w[:, None], log_sd * w, rcond=None)
    return RepeatNoise(coef, float(np.exp(log_sd.min())), float(np.exp(log_sd.max())))


@dataclass(frozen=True)
class Predictive:
    """What the planner knows of the IoU at some points: point fit, bootstrap surfaces, campaign SD."""

    expected: np.ndarray  # (P,) point fit, clipped to [0, 1]
    surfaces: np.ndarray  # (B, P) bootstrap replicates of the surface
    sd: np.ndarray        # (P,) SD of one campaign around the surface
    form_sd: np.ndarray | float = 0.0  # SD of the surface form's error at each point (all campaigns share it)
    t_scale: np.ndarray | None = None  # (B,) ``t_scales`` for the paired differences of ``prob_beats``

    def spread(self, campaigns: float = 1.0) -> np.ndarray:
        """(P,) SD of the mean of ``campaigns`` new campaigns around a bootstrap surface."""
        return np.sqrt(np.square(self.form_sd) + np.square(self.sd) / np.asarray(campaigns, float))

    def draws(self, campaigns: float = 1.0) -> np.ndarray:
        """(B * Z, P) draws of the mean IoU of ``campaigns`` new campaigns, clipped to [0, 1]."""
        z = normal_quantiles()
        out = self.surfaces[:, None, :] + z[None, :, None] * self.spread(campaigns)[None, None, :]
        return np.clip(out.reshape(-1, self.surfaces.shape[1]), 0.0, 1.0)

    def interval(self, coverage: float, campaigns: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        tail = (1.0 - coverage) / 2.0
        draws = self.draws(campaigns)
        return np.quantile(draws, tail, axis=0), np.quantile(draws, 1.0 - tail, axis=0)

    def prob_beats(self, i: int, j: int) -> float:
        """P(the expected IoU at point i exceeds that at point j): paired over the bootstrap surfaces,
        with the form errors at i and j independent (each of SD ``form_sd``).

        Small samples: the spread of the difference between two plans' fits comes from the repeats
        alone (the new campaign's repeat noise does not enter it, and a shared case effect mostly
        cancels), and a bootstrap over R repeats measures it with R - 1 degrees of freedom: two at
        three repeats, where an SD can be several times too small. So each replicate's difference
        from the point fit's is scaled by ``t_scale`` (sqrt(nu / chi2_nu), nu = R - 1): normal
        deviations become Student-t ones, as for a mean whose variance is estimated from R values.
        The intervals are not widened so: their spread is mostly the new campaign's repeat noise,
        pooled over every cell (many degrees of freedom). Measured with ``budget-study bench
        calibration`` (100 worlds x 4 budgets per kind, paired by world; notes/planner-s5.md): Brier
        0.246 -> 0.239 in-family, 0.262 -> 0.252 with repeat effects shared across cells, 0.234 ->
        0.228 with a bump no form follows (each 3-4 SE); the same widening of the replicates behind
        the intervals made 80% intervals cover 86-89% of new campaigns where they cover 82-84%.
        """
        diff = self.surfaces[:, i] - self.surfaces[:, j]
        if self.t_scale is not None:
            centre = float(self.expected[i] - self.expected[j])
            diff = centre + self.t_scale * (diff - centre)
        form_sd = np.broadcast_to(np.asarray(self.form_sd, float), (self.surfaces.shape[1],))
        spread = float(np.hypot(form_sd[i], form_sd[j]))
        if spread <= 0.0:
            return float(np.mean(diff > 0))
        from scipy.special import ndtr

        return float(np.mean(ndtr(diff / spread)))

    def prob_at_least(self, target: float) -> np.ndarray:
        """P(a new campaign reaches ``target``), averaged over the bootstrap surfaces."""
        from scipy.special import ndtr

        out = np.zeros(self.surfaces.shape[1])
        spread = np.broadcast_to(self.spread(), out.shape)
        # Points whose best surface stays 2 SD under the target have P < 2.3%: left at 0, which spares
        # most of a large search the normal CDF.
        near = np.flatnonzero(self.surfaces.max(axis=0) >= target - 2.0 * spread)
        out[near] = ndtr((self.surfaces[:, near] - target) / spread[None, near]).mean(axis=0)
        return out
