"""Weighted least-squares fit of a surface form to cell means.

The exponents are profiled over the form's grid: at each grid point the coefficients solve a
weighted linear least-squares problem, for every bootstrap replicate at once (one pseudo-inverse per
grid point), and each replicate keeps the grid point with the smallest weighted residual. The point fit
and the replicates use exactly this procedure, so the self-check (which has a closed form for it,
:func:`loco_grid`) measures the fit the plan uses, not a cheaper stand-in.

Weights: a cell mean of R runs with repeat SD sigma has variance sigma^2 / R, so its weight is
R / sigma^2. Three repeats give a poor sigma, so each cell's variance is shrunk toward the pooled
one (as if the pooled value were worth ``PRIOR_DF`` extra degrees of freedom).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.planning.forms import Form, Inputs, knots_from
from slicebudget.planning.observations import Observations

PRIOR_DF = 4.0


@dataclass(frozen=True)
class Fit:
    """A fitted form: one row of exponents and coefficients per replicate (one row for a point fit)."""

    form: Form
    knots: np.ndarray
    n_levels: int
    exponents: np.ndarray  # (replicates, n_exponents)
    coef: np.ndarray       # (replicates, n_coefficients)

    @property
    def count(self) -> int:
        return int(self.coef.shape[0])

    def rows(self, index) -> Fit:
        """The fit of some replicates only (a new Fit)."""
        return Fit(self.form, self.knots, self.n_levels, self.exponents[index], self.coef[index])

    def inputs(self, n, k, level) -> Inputs:
        n, k, level = np.broadcast_arrays(np.asarray(n, float), np.asarray(k, float), np.asarray(level, int))
        return Inputs(n.ravel(), k.ravel(), level.ravel(), self.n_levels, self.knots)

    def predict(self, n, k, level) -> np.ndarray:
        """(replicates, points) expected IoU, not clipped (clip when presenting)."""
        at = self.inputs(n, k, level)
        out = np.empty((self.coef.shape[0], at.n.size))
        # Replicates share few distinct grid exponents: build each design matrix once.
        keys, which = np.unique(self.exponents, axis=0, return_inverse=True)
        for index, key in enumerate(keys):
            rows = np.flatnonzero(which.ravel() == index)
            out[rows] = self.coef[rows] @ self.form.design(at, tuple(key)).T
        return out


@dataclass(frozen=True)
class Mixture:
    """Replicate fits of several forms: the replicates in ``rows[j]`` (indices into the whole) are
    ``fits[j]``'s rows, in order. Predicts like a Fit whose rows come from different forms."""

    fits: tuple[Fit, ...]
    rows: tuple[np.ndarray, ...]

    @property
    def count(self) -> int:
        return int(sum(r.size for r in self.rows))

    def predict(self, n, k, level) -> np.ndarray:
        """(replicates, points) expected IoU, not clipped."""
        parts = [fit.predict(n, k, level) for fit in self.fits]
        out = np.empty((self.count, parts[0].shape[1]))
        for rows, part in zip(self.rows, parts):
            out[rows] = part
        return out


def mixture(fits: dict[str, Fit], names: list[str], which: np.ndarray) -> Mixture:
    """Row i of the Mixture from ``fits[names[which[i]]]``'s row i (each Fit holds every row)."""
    used = [j for j in range(len(names)) if np.any(which == j)]
    rows = tuple(np.flatnonzero(which == j) for j in used)
    return Mixture(tuple(fits[names[j]].rows(r) for j, r in zip(used, rows)), rows)


def cell_weights(obs: Observations) -> np.ndarray:
    """R / sigma^2 per cell, sigma^2 shrunk toward the pooled repeat variance (module docstring)."""
    runs = obs.run_means()
    counts = np.sum(np.isfinite(runs), axis=1)
    dev = runs - obs.cell_means()[:, None]
    ss = np.nansum(dev ** 2, axis=1)
    df = np.maximum(counts - 1, 0)
    pooled = float(ss.sum() / df.sum()) if df.sum() > 0 else 0.0
    pooled = max(pooled, 1e-4)  # identical repeats (or one repeat) must not give infinite weight
    shrunk = (ss + PRIOR_DF * pooled) / (df + PRIOR_DF)
    return np.maximum(counts, 1) / shrunk


def training_inputs(obs: Observations) -> Inputs:
    return Inputs(obs.n, obs.k, obs.level, len(obs.levels), knots_from(obs.k))


class _Best:
    """The profile fit's running best grid point per replicate (``fit_grid``, ``loco_grid``)."""

    def __init__(self, form: Form, rows: int):
        self.form, self.rss, self.exp, self.coef = form, np.full(rows, np.inf), np.zeros((rows, form.n_exponents)), None

    def offer(self, exponents, coef: np.ndarray, rss: np.ndarray) -> None:
        if self.coef is None:
            self.coef = np.zeros_like(coef)
        better = rss < self.rss
        self.rss[better], self.exp[better], self.coef[better] = rss[better], exponents, coef[better]

    def fit(self, at: Inputs) -> Fit:
        return Fit(self.form, at.knots, at.n_levels, self.exp, self.coef)


def fit_grid(form: Form, at: Inputs, targets: np.ndarray, weights: np.ndarray) -> Fit:
    """Profile fit of ``targets`` (replicates, cells) -> one Fit row per replicate."""
    targets = np.atleast_2d(targets)
    sw = np.sqrt(weights)
    yw = targets * sw
    best = _Best(form, targets.shape[0])
    for exponents in form.exponent_grid():
        a = form.design(at, exponents) * sw[:, None]
        coef = yw @ np.linalg.pinv(a).T
        best.offer(exponents, coef, np.sum((yw - coef @ a.T) ** 2, axis=1))
    return best.fit(at)


def loco_grid(form: Form, at: Inputs, targets: np.ndarray, weights: np.ndarray,
              with_fit: bool = False) -> np.ndarray | tuple[np.ndarray, Fit]:
    """(replicates, cells) leave-one-cell-out predictions of :func:`fit_grid`, without refitting
    (``with_fit``: and :func:`fit_grid`'s own fit, from the same pass over the exponent grid).

    For fixed exponents, the fit without cell i follows from the full fit's hat matrix: its
    prediction at i is y_i - e_i / (1 - h_ii) and its residual sum of squares is RSS - e_i^2 / (1 - h_ii)
    (weighted residuals), which also picks each fold's exponents exactly as a refit would. A cell
    that alone supports a parameter (h_ii = 1; e.g. the only cell at its k in ``k-levels``) gets NaN:
    the caller refits that fold from the other cells (:func:`refit_held_out`).
    """
    targets = np.atleast_2d(targets)
    sw = np.sqrt(weights)
    yw = targets * sw
    best = np.full(targets.shape, np.inf)
    pred = np.full(targets.shape, np.nan)
    full = _Best(form, targets.shape[0])
    for exponents in form.exponent_grid():
        a = form.design(at, exponents) * sw[:, None]
        pinv = np.linalg.pinv(a)
        leverage = np.einsum("ij,ji->i", a, pinv)  # diag of the hat matrix a @ pinv, without forming it
        coef = yw @ pinv.T
        resid = yw - coef @ a.T
        if with_fit:
            full.offer(exponents, coef, np.sum(resid ** 2, axis=1))
        ok = leverage < 1.0 - 1e-8
        denom = np.where(ok, 1.0 - leverage, 1.0)
        rss_fold = np.sum(resid ** 2, axis=1, keepdims=True) - resid ** 2 / denom
        better = ok[None, :] & (rss_fold < best)
        best = np.where(better, rss_fold, best)
        pred = np.where(better, targets - resid / denom / sw, pred)
    return (pred, full.fit(at)) if with_fit else pred


def refit_held_out(form: Form, obs: Observations, cell: int, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(replicates,) prediction at ``cell`` from a fit to the other cells (knots rebuilt from them)."""
    keep = np.arange(obs.n_cells) != cell
    at = training_inputs(obs.subset(keep))
    fit = fit_grid(form, at, np.atleast_2d(targets)[:, keep], weights[keep])
    return fit.predict(obs.n[cell], obs.k[cell], obs.level[cell])[:, 0]


def loco_predictions(form: Form, obs: Observations, targets: np.ndarray, weights: np.ndarray,
                     with_fit: bool = False) -> np.ndarray | tuple[np.ndarray, Fit]:
    """(replicates, cells) leave-one-cell-out predictions: the closed form, refitting the folds it
    cannot do (a cell that alone supports a parameter); ``with_fit``: and the fit to all cells."""
    out = loco_grid(form, training_inputs(obs), targets, weights, with_fit=with_fit)
    pred = out[0] if with_fit else out
    for cell in np.flatnonzero(np.isnan(pred).any(axis=0)):
        pred[:, cell] = refit_held_out(form, obs, int(cell), targets, weights)
    return out
