"""When an adaptive design stops: settled, the run limit, or no runs left.

Settled: at every target budget the plan's best allocation beats every materially different one
with probability >= ``SETTLED`` over the design's surfaces (``settled_probabilities``), the fit
before the last batch, itself past the start, recommended the same plans (a fit of few cells can
look settled by luck), and the cells identify every single-level form (the power law needs seven).
"""

from __future__ import annotations

import numpy as np

from slicebudget.design.surfaces import DESIGN_REPLICATES, current_plans, design_surface
from slicebudget.planning.allocate import materially_different
from slicebudget.planning.costs import CostModel
from slicebudget.planning.fit import training_inputs
from slicebudget.planning.forms import FORMS, usable_forms
from slicebudget.planning.plan import Plan, within_reach

SETTLED = 0.90

STOP_SETTLED = "settled"
STOP_LIMIT = "run limit"
STOP_EXHAUSTED = "no runs left"


def settled_probabilities(plans: dict[float, Plan], fitted: dict, unit: str, costs: CostModel, seed: int = 0,
                          replicates: int = DESIGN_REPLICATES) -> dict[float, float | None]:
    """Per target budget, the probability that the plan's best allocation beats every materially
    different one (None where there is no other), over the design's surfaces (``design_surface``).

    Not the planner's ``prob_best_beats_runner_up``: that one resamples whole repeats and test cases,
    and a cell with one finished run (most cells of a design) does not move under a resample of
    repeats, so with few runs it reads 1.0 where a full grid reads 0.5 (issue 16's replays stopped
    "settled" with the wrong plan). Here every cell mean moves by its repeat noise / sqrt(runs), the
    noise's SD is itself uncertain, and the runner-up is whichever other plan each surface prefers.
    """
    out: dict[float, float | None] = {}
    surfaces: dict = {}
    for budget, plan in plans.items():
        fit = fitted.get((plan.model, plan.dims))
        if fit is None:
            out[budget] = 0.0
            continue
        obs, surface = fit.obs, fit.surface
        if (plan.model, plan.dims) not in surfaces:
            surfaces[(plan.model, plan.dims)] = design_surface(obs, fit.forms, replicates, seed)
        design = surfaces[(plan.model, plan.dims)]
        alloc = within_reach(surface, budget, unit, costs, obs.n_total, obs.depth)
        level_of = {(lv.policy, lv.interpolation): i for i, lv in enumerate(obs.levels)}
        b = plan.best
        best = np.flatnonzero((alloc.n == b.n_volumes) & (alloc.k == b.slices_per_volume)
                              & (alloc.level == level_of[(b.policy, b.interpolation)]))
        others = np.flatnonzero(materially_different(alloc, int(best[0]))) if best.size else np.zeros(0, int)
        if not best.size or not others.size:
            out[budget] = None if best.size else 0.0
            continue
        values = design.predict(alloc.n, alloc.k, alloc.level)
        out[budget] = float(np.mean(values[:, best[0]] > values[:, others].max(axis=1)))
    return out


def is_settled(probabilities: dict[float, float | None], budgets: list[float]) -> bool:
    """The stop rule: at every target budget the plan's best beats every other plan with P >= SETTLED
    (``settled_probabilities``); a budget with one plan only has nothing to confuse it with."""
    if any(b not in probabilities for b in budgets):
        return False
    return all(probabilities[b] is None or probabilities[b] >= SETTLED for b in budgets)


def same_as_before(plans: dict[float, Plan], done: list[dict], budgets: list[float], unit: str,
                    costs: CostModel, study_dir, seed: int, batch: int) -> bool:
    """Whether the plans fitted without the last ``batch`` finished runs were the same plans: a
    settled verdict from one fit of few cells can be luck; two fits in a row agreeing is less so."""
    before, _ = current_plans(done[:-batch], budgets, unit, costs, study_dir, seed)
    return all(b in before and (before[b].model, _plan_key(before[b])) == (plans[b].model, _plan_key(plans[b]))
               for b in budgets)


def forms_identified(fitted: dict) -> bool:
    """Whether every model's cells identify each single-level form (power needs 7 cells): before
    that, the form choice cannot have weighed the saturating power law, and a settled plan only
    says that the simpler form is sure of itself."""
    for fit in fitted.values():
        if fit is None:
            return False
        names = {f.name for f in usable_forms(training_inputs(fit.obs), fit.obs.n_cells)}
        if not {name for name, f in FORMS.items() if not f.needs_levels and name != "k-levels"} <= names:
            return False
    return True


def _plan_key(plan: Plan) -> tuple:
    b = plan.best
    return (b.n_volumes, b.slices_per_volume, b.policy, b.interpolation)
