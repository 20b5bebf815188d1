"""A fitted budget surface with its bootstrap replicates and its new-campaign spread."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.planning.bootstrap import Predictive, RepeatNoise, bootstrap_targets, repeat_noise, t_scales
from slicebudget.planning.fit import Fit, Mixture, cell_weights, fit_grid, mixture, training_inputs
from slicebudget.planning.formchoice import choose_forms, row_verdict, winners
from slicebudget.planning.formerror import form_variance
from slicebudget.planning.forms import Form
from slicebudget.planning.observations import Observations

REPLICATES = 200
# How far a plan may reach beyond the studied cells, as a factor on n and on k, when nothing within
# them fits the budget: the candidate forms agree inside the grid and can disagree wildly outside it
# (a non-saturating form then promises gains no run showed), which no bootstrap over repeats shows.
REACH = 2.0


@dataclass(frozen=True)
class Surface:
    obs: Observations
    point: Fit
    replicates: Fit | Mixture  # a Mixture when each replicate chose its own form (``fit_surface``)
    noise: RepeatNoise
    form_var: float = 0.0  # variance of the form's error at a point (``formerror``)
    t_scale: np.ndarray | None = None  # (replicates,) Student-t scales of P(best beats runner-up)

    @property
    def form(self) -> Form:
        return self.point.form

    def form_shares(self) -> dict[str, float]:
        """Share of the replicates fitted with each form, largest first; empty when the replicates did
        not choose their own (``fit_surface``: all are the point fit's form, which chose nothing)."""
        if isinstance(self.replicates, Fit):
            return {}
        shares = {fit.form.name: rows.size / self.replicates.count
                  for fit, rows in zip(self.replicates.fits, self.replicates.rows)}
        return dict(sorted(shares.items(), key=lambda item: -item[1]))

    def predictive(self, n, k, level) -> Predictive:
        expected = np.clip(self.point.predict(n, k, level)[0], 0.0, 1.0)
        surfaces = self.replicates.predict(n, k, level)
        n_b, k_b = np.broadcast_arrays(np.asarray(n, float), np.asarray(k, float))
        return Predictive(expected, surfaces, self.noise.sd(n_b.ravel(), k_b.ravel()), float(np.sqrt(self.form_var)),
                          self.t_scale)

    def reach(self, factor: float = REACH) -> tuple[int, int, int, int]:
        """(n_min, n_max, k_min, k_max): the studied range widened by ``factor`` each way."""
        (n_lo, n_hi), (k_lo, k_hi) = self.studied_range().values()
        return (max(1, int(np.ceil(n_lo / factor - 1e-9))), int(np.floor(n_hi * factor + 1e-9)),
                max(1, int(np.ceil(k_lo / factor - 1e-9))), int(np.floor(k_hi * factor + 1e-9)))

    def studied_range(self) -> dict[str, tuple[float, float]]:
        """The n and k of the study's sparse grid. The dense baseline (every slice of every volume) is
        fitted like any cell but does not widen the range: one cell at k = depth would otherwise make
        every k up to the depth look studied, at every n."""
        obs = self.obs
        grid = ~((obs.density >= 1.0) & (obs.fraction >= 1.0))
        n, k = (obs.n[grid], obs.k[grid]) if grid.any() else (obs.n, obs.k)
        return {"n": (float(n.min()), float(n.max())), "k": (float(k.min()), float(k.max()))}


def fit_surface(obs: Observations, form: Form, replicates: int = REPLICATES, seed: int = 0,
                cases: bool = True, form_var: float | None = None) -> Surface:
    """Fit ``form`` to the cell means (point fit) and to ``replicates`` bootstrap resamples, with the
    variance of its form error estimated from the same cells' held-out residuals (``form_var``: that
    estimate when the caller already has it, e.g. from the self-check's identical pass)."""
    at = training_inputs(obs)
    weights = cell_weights(obs)
    # one profile over the exponent grid for the point fit (row 0) and every replicate
    both = fit_grid(form, at, np.vstack([obs.cell_means(), bootstrap_targets(obs, replicates, seed, cases)]), weights)
    return Surface(obs, both.rows(slice(0, 1)), both.rows(slice(1, None)), repeat_noise(obs),
                   form_variance(obs, form, seed=seed) if form_var is None else float(form_var))


def chosen_surface(obs: Observations, replicates: int = REPLICATES, seed: int = 0
                   ) -> tuple[Surface, dict[str, float], list[str]]:
    """The plan's surface: the form chosen on the cell means (``formchoice``), its point fit, and
    ``replicates`` bootstrap resamples (repeats and cases) that each redo the form choice on their own
    cell means and are fitted with the form they chose; also every form's LOCO MAE and the forms set
    aside, on the cell means. One pass per form serves the point and every replicate.

    ``form_var`` is left 0 for the caller (the self-check's estimate for the chosen form). Every
    replicate will carry that form's error: the other forms win replicates only where they predict
    held-out cells about as well, so their errors are of the same size, and one estimate per form
    would cost a leave-one-cell-out pass each. The replicates also get Student-t scales for the
    paired differences of P(best beats runner-up) (``Predictive.prob_beats``)."""
    targets = np.vstack([obs.cell_means(), bootstrap_targets(obs, replicates, seed)])
    names, errors, aside, fits = choose_forms(obs, targets)
    form, point_errors, point_aside = row_verdict(names, errors, aside)
    reps = mixture({name: fit.rows(slice(1, None)) for name, fit in fits.items()}, names, winners(errors, aside)[1:])
    surface = Surface(obs, fits[form].rows(slice(0, 1)), reps, repeat_noise(obs), 0.0,
                      t_scales(len(obs.repeats), replicates, seed))
    return surface, point_errors, point_aside
