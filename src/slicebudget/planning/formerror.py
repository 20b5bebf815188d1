"""The error of the surface's form: how far the true IoU at a cell strays from the best surface of
the fitted family, beyond anything the bootstrap or the repeat noise shows.

The bootstrap moves the surface by the cells' repeat noise, and a campaign's own repeat effect is
added on top, but neither carries the gap between the truth and the family itself (a dip at one
k that ``a - b n^-alpha - c k^-beta`` cannot bend to). Without it the intervals are calibrated only
when the form is exactly right; the trained reference grids' held-out errors were 1.6 to 2.2 times
what their intervals implied.

Estimate: the form error is modelled as an independent effect of variance tau^2 at each cell. Its
leave-one-cell-out residual r_j (cell mean minus the prediction from the other cells) then has
variance u_j + tau^2, where u_j is what the intervals already carry: the bootstrap variance of that
prediction (repeats resampled, given the test cases, as the held-out cell is scored on them) plus
the cell mean's repeat variance (the repeat-noise model's SD^2 over its runs). tau^2 is the
Paule-Mandel random-effects solution of mean_j r_j^2 / (u_j + tau^2) = 1, 0 when the residuals are
no larger than u already explains.

Why this one: held-out residuals are out of sample, so they need no count of the parameters the
fit spent (a weighted chi2 / df excess would, and profiling the exponents over a grid makes that
count unknown); they measure exactly what an interval must cover (the error at a point the fit did
not see); and solving on the standardised scale makes the standardised errors have unit mean
square, which is what calibrated intervals mean, without letting the noisiest cells dominate as a
plain mean of r^2 - u would. It is conservative inside the grid (edge cells' residuals are
extrapolations) and says nothing about the form's error far outside it (``surface.REACH`` caps that).

The planner's intervals (:meth:`Surface.predictive`) and the self-check use this one function; the
self-check calls it on the cells other than the held-out one, so no cell informs its own interval.
"""

from __future__ import annotations

import numpy as np

from slicebudget.planning.bootstrap import bootstrap_targets, repeat_noise
from slicebudget.planning.fit import cell_weights, loco_predictions
from slicebudget.planning.forms import Form
from slicebudget.planning.observations import Observations

# Bootstrap replicates behind u_j (a variance; 100 give it to about 15%).
FORM_REPLICATES = 100


def paule_mandel(residuals: np.ndarray, known: np.ndarray) -> float:
    """tau^2 >= 0 solving mean(r^2 / (u + tau^2)) = 1 (0 when the left side is <= 1 at tau^2 = 0)."""
    r2, u = np.square(residuals), np.maximum(known, 1e-12)

    def excess(tau2: float) -> float:
        return float(np.mean(r2 / (u + tau2))) - 1.0

    if r2.size == 0 or excess(0.0) <= 0.0:
        return 0.0
    low, high = 0.0, float(r2.max())  # at r2.max() every term is < 1
    for _ in range(60):  # bisection: the left side falls monotonically in tau^2
        mid = 0.5 * (low + high)
        low, high = (mid, high) if excess(mid) > 0.0 else (low, mid)
    return 0.5 * (low + high)


def loco_targets(obs: Observations, replicates: int = FORM_REPLICATES, seed: int = 0) -> np.ndarray:
    """(1 + replicates, cells): the cell means, then resamples of repeats given the test cases."""
    return np.vstack([obs.cell_means(), bootstrap_targets(obs, replicates, seed, cases=False)])


def form_variance(obs: Observations, form: Form, replicates: int = FORM_REPLICATES, seed: int = 0) -> float:
    """tau^2: the variance of ``form``'s error at a cell, from these cells' held-out residuals (module doc)."""
    pred = loco_predictions(form, obs, loco_targets(obs, replicates, seed), cell_weights(obs))
    return form_variance_from(obs, pred)


def form_variance_from(obs: Observations, pred: np.ndarray) -> float:
    """tau^2 from leave-one-cell-out predictions of :func:`loco_targets` (row 0 the point fit)."""
    means = obs.cell_means()
    runs = np.maximum(obs.n_runs(), 1)
    known = np.var(pred[1:], axis=0, ddof=1) + np.square(repeat_noise(obs).sd(obs.n, obs.k)) / runs
    return paule_mandel(means - np.clip(pred[0], 0.0, 1.0), known)
