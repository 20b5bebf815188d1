"""What the budget surface could be, as an adaptive design sees it.

The plans come from the planner (``current_plans``: the form chosen by leave-one-cell-out, its
surface and plan per target budget, as ``budget-study plan`` computes them). What the design is
unsure of is a parametric bootstrap (``design_surface``): the cell means redrawn with each cell's
repeat noise / sqrt(its runs), the noise's SD itself redrawn from its degrees of freedom, and
refitted with every form that predicts held-out cells about as well as the chosen one
(``design_forms``). Only the uncertainty that more runs can remove belongs here: resampling the
shared test cases would move every cell together and no run of the study can reduce it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.planning.bootstrap import RepeatNoise, repeat_noise
from slicebudget.planning.costs import CostModel
from slicebudget.planning.fit import Fit, cell_weights, fit_grid, training_inputs
from slicebudget.planning.forms import FORMS
from slicebudget.planning.observations import Observations, observations
from slicebudget.planning.plan import Plan, plan_surface, too_few
from slicebudget.planning.formchoice import choose_form
from slicebudget.planning.selfcheck import self_check
from slicebudget.planning.surface import REPLICATES, Surface, fit_surface

# A cell's repeat SD is never taken below this (IoU): with a handful of runs the noise model can
# claim near-certainty from two agreeing repeats, which would stop the design on luck.
MIN_SD = 0.01
DESIGN_REPLICATES = 200
# Forms whose leave-one-cell-out error is within this factor of the best join the design's surfaces.
FORM_POOL = 1.5


def _observations(done: list[dict], model: str, dims: int, study_dir) -> Observations | None:
    obs = observations(done, model, dims, study_dir)
    return None if too_few(done, obs) else obs


def repeat_df(obs: Observations) -> int:
    """Degrees of freedom of the repeat spread: finished runs beyond the first, summed over cells."""
    return int(np.sum(np.maximum(obs.n_runs() - 1, 0)))


@dataclass(frozen=True)
class DesignSurface:
    """What the surface could be, as the design sees it: replicate fits of one or more forms, stacked."""

    fits: tuple[Fit, ...]
    noise: RepeatNoise

    def predict(self, n, k, level) -> np.ndarray:
        """(replicates, points) expected IoU under every replicate of every form."""
        return np.vstack([fit.predict(n, k, level) for fit in self.fits])


@dataclass(frozen=True)
class ModelFit:
    """One model's fit during a design: the planner's (its form and surface give the plans) and the
    forms the design's surfaces mix (``design_forms``)."""

    obs: Observations
    form: str
    surface: Surface
    forms: tuple[str, ...]


def design_forms(chosen: str, errors: dict[str, float], aside: list[str]) -> tuple[str, ...]:
    """The forms the design's surfaces mix: the planner's choice and every other form that never lowers
    IoU with more annotation and predicts held-out cells within ``FORM_POOL`` x the best LOCO error.
    With few cells several forms fit about as well and disagree on the plans; a design that believed
    the chosen form alone would be sure of plans the data do not decide."""
    pool = [name for name in errors if name not in aside] or list(errors)
    best = min(errors[name] for name in pool)
    return (chosen, *[name for name in pool if name != chosen and errors[name] <= FORM_POOL * best])


def design_surface(obs: Observations, forms, replicates: int = DESIGN_REPLICATES, seed: int = 0) -> DesignSurface:
    """The ``forms`` fitted to ``replicates`` parametric redraws of the cell means (shared out among the
    forms): each cell mean moved by its repeat SD / sqrt(runs), SD at least ``MIN_SD``, the SD itself
    redrawn per replicate from what its degrees of freedom allow (sigma * sqrt(df / chi2_df): a t-like
    spread; two repeated cells give 2 df, and an SD from 2 df can be several times too small)."""
    forms = (forms,) if isinstance(forms, str) else tuple(forms)
    noise = repeat_noise(obs)
    runs = np.maximum(obs.n_runs(), 1)
    sd = np.maximum(noise.sd(obs.n, obs.k), MIN_SD) / np.sqrt(runs)
    means = obs.cell_means()
    rng = np.random.default_rng(seed)
    df = max(repeat_df(obs), 1)
    scale = np.sqrt(df / rng.chisquare(df, replicates))
    targets = means[None, :] + rng.standard_normal((replicates, obs.n_cells)) * sd[None, :] * scale[:, None]
    at, weights = training_inputs(obs), cell_weights(obs)
    shares = np.array_split(np.arange(replicates), len(forms))
    return DesignSurface(tuple(fit_grid(FORMS[name], at, targets[rows], weights) for name, rows in zip(forms, shares)),
                         noise)


def current_plans(done: list[dict], budgets: list[float], unit: str, costs: CostModel, study_dir=None,
                  seed: int = 0, replicates: int = REPLICATES) -> tuple[dict[float, Plan], dict]:
    """The planner's plan per target budget (the best model's, as ``budget-study plan``), and
    (observations, form, surface) by (model, dims) (None where too few cells to fit one)."""
    plans: dict[float, Plan] = {}
    fitted: dict = {}
    for model, dims in dict.fromkeys((r["model"], int(r["dims"])) for r in done):
        obs = _observations(done, model, dims, study_dir)
        if obs is None:
            fitted[(model, dims)] = None
            continue
        form, errors, aside = choose_form(obs)
        surface = fit_surface(obs, FORMS[form], replicates, seed)
        # the plan needs a self-check; a small one (its figures are not shown during the design)
        check = self_check(obs, form, errors, replicates=20, seed=seed, non_monotone=aside)
        fitted[(model, dims)] = ModelFit(obs, form, surface, design_forms(form, errors, aside))
        for budget in budgets:
            plan = plan_surface(surface, check, budget, unit, None, None, costs)
            if budget not in plans or plan.best.expected_iou > plans[budget].best.expected_iou:
                plans[budget] = plan
    return plans, fitted
