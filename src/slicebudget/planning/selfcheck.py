"""The planner checks itself: held-out error and interval coverage, printed with every plan.

- Leave-one-cell-out (LOCO): each cell is predicted by the surface fitted to the others. MAE is
  against the held-out cell's mean over its runs; its 80% interval is the prediction interval for
  the mean of that many new campaigns (the surface's bootstrap plus repeat spread / sqrt(runs)), and
  coverage is the share of held-out cells inside it. Run coverage checks the one-campaign interval
  (what a plan promises) against each held-out run. The intervals carry the form error the plan's
  do (:mod:`slicebudget.planning.formerror`), estimated, like the repeat noise, from cells outside
  the held-out cell's group (``nested_spread``): a cell that informed its own interval would make
  coverage partly self-fulfilling.
  Held-out cells are scored on the same test cases as the cells that predict them, so these
  intervals resample repeats only (given the cases); a plan's intervals also resample the cases,
  because a new campaign's IoU on new data carries that uncertainty too.
- Largest budgets: the cells with the largest n * k (a quarter of them, at least one) are predicted
  from the rest, which is extrapolation in budget: what a plan beyond the study does.
- Noise floor: the MAE a perfect surface would still get, because a held-out cell mean carries its
  own repeat noise: mean over cells of sqrt(2 / pi) * sigma_cell / sqrt(runs).
- Form choice (:mod:`slicebudget.planning.formchoice`): every usable form's LOCO MAE; the smallest
  wins among the monotone forms. That choice uses the same folds, so the chosen form's LOCO MAE is
  slightly optimistic; the other forms' errors are shown.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from slicebudget.planning.bootstrap import Predictive, repeat_noise
from slicebudget.planning.fit import cell_weights, loco_predictions, training_inputs
from slicebudget.planning.formerror import FORM_REPLICATES, form_variance, form_variance_from, loco_targets
from slicebudget.planning.forms import FORMS
from slicebudget.planning.observations import Observations
from slicebudget.planning.surface import fit_surface

COVERAGE = 0.80
LARGEST_SHARE = 0.25
# Bootstrap replicates behind the self-check's intervals (each held-out cell gets its own); fewer
# than a plan's, which is enough to judge 80% coverage. The form error's estimate uses as many, so
# the self-check's ``form_sd`` is the one the plan's intervals carry.
CHECK_REPLICATES = FORM_REPLICATES
# Groups of held-out cells whose form error is estimated without them (``nested_spread``). Five, for
# time: each group costs a leave-one-cell-out pass, and eight put ``bench plan`` near its 2 s target.
FORM_FOLDS = 5


@dataclass(frozen=True)
class HeldOut:
    cell: str
    n: float
    k: float
    observed: float
    predicted: float
    low80: float
    high80: float
    covered: bool
    n_runs: int
    runs_covered: int


@dataclass(frozen=True)
class SelfCheck:
    form: str
    loco: list[HeldOut]
    loco_mae: float
    coverage80: float
    run_coverage80: float
    largest: list[HeldOut]
    largest_mae: float
    largest_coverage80: float
    noise_floor: float
    form_errors: dict[str, float] = field(default_factory=dict)
    # SD of the form's error at a cell, from every cell (what a plan's intervals add; ``formerror``)
    form_sd: float = 0.0
    non_monotone: list[str] = field(default_factory=list)  # forms set aside: IoU fell with more annotation

    def as_dict(self) -> dict:
        return plain(asdict(self))

    def summary(self) -> str:
        return (f"leave-one-cell-out MAE {self.loco_mae:.3f} IoU (noise floor {self.noise_floor:.3f}), "
                f"80% intervals cover {self.coverage80:.0%} of held-out cells ({self.run_coverage80:.0%} of runs); "
                f"largest budgets predicted from the rest: MAE {self.largest_mae:.3f}; "
                f"the intervals carry a form error of SD {self.form_sd:.3f}")


def plain(value):
    """JSON-ready: numpy scalars to Python, non-finite floats to None (recursively)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _held_out_all(obs: Observations, cells: np.ndarray, predictive: Predictive) -> list[HeldOut]:
    """HeldOut rows for ``cells`` from a Predictive over exactly those cells (in that order)."""
    runs = obs.run_means()[cells]
    counts = np.maximum(np.sum(np.isfinite(runs), axis=1), 1)
    low, high = predictive.interval(COVERAGE, campaigns=counts)
    low1, high1 = predictive.interval(COVERAGE)
    out = []
    for i, cell in enumerate(cells):
        mine = runs[i][np.isfinite(runs[i])]
        observed = float(mine.mean())
        out.append(HeldOut(obs.cell_label(int(cell)), float(obs.n[cell]), float(obs.k[cell]), observed,
                           float(predictive.expected[i]), float(low[i]), float(high[i]),
                           bool(low[i] <= observed <= high[i]), int(mine.size),
                           int(np.sum((mine >= low1[i]) & (mine <= high1[i])))))
    return out


def nested_spread(obs: Observations, form, seed: int, folds: int = FORM_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """(cells,) repeat SD and form-error SD for each held-out cell, both estimated without it.

    The cells are dealt into ``folds`` groups in turn (cell i in group i mod folds, which spreads
    each group over the grid), and a group's cells get the estimates of the cells outside the group:
    never their own, at ``folds`` estimates rather than one per cell (the form error's estimate is a
    leave-one-cell-out pass, so one per cell grows with the square of the cells: 13 s for
    ``budget-study plan`` on the 180-cell synthetic study)."""
    group = np.arange(obs.n_cells) % max(1, min(folds, obs.n_cells))
    sd, form_sd = np.zeros(obs.n_cells), np.zeros(obs.n_cells)
    for g in np.unique(group):
        mine, rest = group == g, group != g
        sd[mine] = repeat_noise(obs, rest).sd(obs.n[mine], obs.k[mine])
        form_sd[mine] = np.sqrt(form_variance(obs.subset(rest), form, seed=seed))
    return sd, form_sd


def self_check(obs: Observations, form_name: str, form_errors: dict[str, float] | None = None,
               replicates: int = CHECK_REPLICATES, seed: int = 0, non_monotone: list[str] | None = None) -> SelfCheck:
    form = FORMS[form_name]
    weights = cell_weights(obs)
    both = loco_predictions(form, obs, loco_targets(obs, replicates, seed), weights)
    sd, form_sd = nested_spread(obs, form, seed)
    predictive = Predictive(np.clip(both[0], 0.0, 1.0), both[1:], sd, form_sd)
    loco = _held_out_all(obs, np.arange(obs.n_cells), predictive)
    largest = _largest_budget_check(obs, form_name, replicates, seed)
    return SelfCheck(
        form=form_name,
        loco=loco,
        loco_mae=float(np.mean([abs(h.predicted - h.observed) for h in loco])),
        coverage80=float(np.mean([h.covered for h in loco])),
        run_coverage80=float(sum(h.runs_covered for h in loco) / max(sum(h.n_runs for h in loco), 1)),
        largest=largest,
        largest_mae=float(np.mean([abs(h.predicted - h.observed) for h in largest])) if largest else math.nan,
        largest_coverage80=float(np.mean([h.covered for h in largest])) if largest else math.nan,
        noise_floor=noise_floor(obs),
        form_errors=dict(form_errors or {}),
        non_monotone=list(non_monotone or []),
        form_sd=float(np.sqrt(form_variance_from(obs, both))),
    )


def largest_budget_cells(obs: Observations) -> np.ndarray:
    """Indices of the cells with the largest budgets (a quarter, at least one; ties kept together)."""
    budget = obs.budget()
    count = max(1, int(round(LARGEST_SHARE * obs.n_cells)))
    threshold = np.sort(budget)[::-1][count - 1]
    return np.flatnonzero(budget >= threshold * (1 - 1e-9))


def _largest_budget_check(obs: Observations, form_name: str, replicates: int, seed: int) -> list[HeldOut]:
    held = largest_budget_cells(obs)
    keep = np.ones(obs.n_cells, dtype=bool)
    keep[held] = False
    if keep.sum() < FORMS[form_name].n_parameters(training_inputs(obs.subset(keep))) + 1:
        return []
    surface = fit_surface(obs.subset(keep), FORMS[form_name], replicates, seed, cases=False)
    return _held_out_all(obs, held, surface.predictive(obs.n[held], obs.k[held], obs.level[held]))


def noise_floor(obs: Observations) -> float:
    """MAE a perfect surface would get from the held-out cells' own repeat noise (see module doc)."""
    runs = obs.run_means()
    counts = np.sum(np.isfinite(runs), axis=1)
    weights = cell_weights(obs)  # = runs / sigma^2 (shrunk)
    se = np.sqrt(1.0 / weights)  # sigma / sqrt(runs)
    return float(np.mean(np.sqrt(2.0 / np.pi) * se[counts > 0]))
