"""One step of an adaptive design: which (cell, repeat) runs to do next, or why to stop.

The decision the study serves is the plan at a few target budgets (which n volumes x k slices to
buy). A run is worth what it is expected to remove from the *expected regret* of that decision:
the IoU the recommended plan loses, on average over what the surface could be, against the best
plan at the same budget. Regret weighs the probability of recommending a worse plan by how much
worse it is, so a run that only separates two plans 0.001 IoU apart is worth little.

- What the surface could be: the form the planner chooses (leave-one-cell-out), fitted to cell
  means redrawn with each cell's repeat noise / sqrt(its runs) (a parametric bootstrap). Only the
  uncertainty that more runs can remove belongs here: resampling the shared test cases would move
  every cell together and no run of the study can reduce it.
- What a run would tell: its cell's mean IoU plus one campaign's repeat noise. Conditioning the
  ensemble of surfaces on such an observation is a linear (ensemble Kalman) update of every plan's
  IoU by its covariance with the cell; the expected regret after the run averages that update over
  observations drawn from the ensemble itself (``FANTASIES`` of them).
- Per run of cost: the drop is divided by the run's expected compute (finished runs' seconds).
- Batches: greedy. After each pick the ensemble is conditioned on that run's expected observation
  (which shrinks the spread it can remove without moving the plans), so the next pick goes where
  uncertainty remains instead of to a second copy of the same run.
- Start: a space-filling set before any surface exists: the four corners of the (volumes, slices)
  grid of the first level plus a central cell, the central cell twice (two repeats give the repeat
  noise its first degree of freedom); every other level adds its central cell. The corners also fix
  the studied range, so the design's plans stay where the full grid's would.
- Stop: when the planner's own plan is settled (the best plan beats the runner-up with
  probability >= ``SETTLED`` at every target budget, as ``budget-study plan`` computes it) and the
  fit before the last batch, itself past the start, recommended the same plans (a fit of the
  start's five cells can look settled by luck) and the cells identify every single-level form
  (the power law needs seven), when the run limit is reached, or when no runs are left.

Repeats: a cell's next run takes the repeat shared by most finished runs, so cells stay paired by
repeat seed (the planner's bootstrap resamples whole repeats across cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from slicebudget.errors import UserError
from slicebudget.planning.allocate import UNITS
from slicebudget.planning.bootstrap import normal_quantiles, repeat_noise
from slicebudget.planning.costs import CostModel
from slicebudget.planning.fit import cell_weights, fit_grid, training_inputs
from slicebudget.planning.forms import FORMS, usable_forms
from slicebudget.planning.observations import Observations, observations
from slicebudget.planning.plan import Plan, plan_surface, too_few, within_reach
from slicebudget.planning.selfcheck import choose_form, self_check
from slicebudget.planning.surface import REPLICATES, Surface, fit_surface

SETTLED = 0.90
# A cell's repeat SD is never taken below this (IoU): with a handful of runs the noise model can
# claim near-certainty from two agreeing repeats, which would stop the design on luck.
MIN_SD = 0.01
FANTASIES = 32
DESIGN_REPLICATES = 200

STOP_SETTLED = "settled"
STOP_LIMIT = "run limit"
STOP_EXHAUSTED = "no runs left"


@dataclass(frozen=True)
class Candidate:
    """One run of the grid the design may choose."""

    run_id: str
    model: str
    dims: int
    density: float
    fraction: float
    policy: str
    interpolation: str
    repeat: int
    n: float  # annotated volumes
    k: float  # annotated slices per volume

    @property
    def cell(self) -> tuple:
        return (self.model, self.dims, self.density, self.fraction, self.policy, self.interpolation)

    @property
    def label(self) -> str:
        level = self.policy if self.interpolation == "off" else f"{self.policy} + {self.interpolation}"
        return f"rho={self.density:g}, s={self.fraction:g} (n={self.n:g}, k={self.k:g}, {level})"


def candidate_from_record(record: dict, k: float | None = None) -> Candidate:
    """A Candidate from a store record; ``k`` for runs not finished yet (their record has none)."""
    return Candidate(record["run_id"], record["model"], int(record["dims"]), float(record["density"]),
                     float(record["volume_fraction"]), record["policy"], record["interpolation"],
                     int(record["repeat"]), float(record["n_volumes"]),
                     float(k if k is not None else record["slices_per_volume"]))


@dataclass(frozen=True)
class Pick:
    run_id: str
    cell: str
    repeat: int
    why: str
    value: float | None  # expected regret removed per run of typical cost (None for the start)


@dataclass(frozen=True)
class Step:
    stop: str | None           # STOP_* or None while runs remain to do
    picks: list[Pick]          # the runs to do next (empty when stopping)
    plans: dict[float, Plan]   # the current plan per target budget (empty before a surface exists)
    runs_done: int
    reason: str = ""           # a sentence: why it stops, or what it does next
    notes: list[str] = field(default_factory=list)


def check_budgets(budgets, unit: str, costs: CostModel, volumes: int, depth: int) -> list[float]:
    """Target budgets as floats; one UserError line for one the dataset cannot supply."""
    if unit not in UNITS:
        raise UserError(f"unknown budget unit {unit!r}; choose {' or '.join(UNITS)}")
    budgets = [float(b) for b in budgets]
    if not budgets:
        raise UserError("an adaptive design needs at least one target budget")
    most = volumes * depth if unit == "slices" else float(costs.seconds(volumes, depth)) / 3600.0
    least = 1.0 if unit == "slices" else float(costs.seconds(1, 1)) / 3600.0
    for b in budgets:
        if not math.isfinite(b) or b < least:
            raise UserError(f"target budget {b:g} {unit} is less than one slice of one volume ({least:.3g} {unit})")
        if b > most * (1 + 1e-9):
            raise UserError(f"target budget {b:g} {unit} is more than the dataset can supply: {volumes} volumes "
                            f"x {depth} slices = {most:.4g} {unit}")
    return sorted(set(budgets))


def default_budgets(grid: list[Candidate]) -> list[float]:
    """Three budgets (slices) spread geometrically inside the grid's cell budgets."""
    budgets = np.array([c.n * c.k for c in grid])
    low, high = float(budgets.min()), float(budgets.max())
    return sorted({float(round(b)) for b in np.geomspace(low, high, 5)[1:4]})


def _levels(cands: list[Candidate]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((c.policy, c.interpolation) for c in cands))


def _nearest_centre(values: list[float], rng: np.random.Generator) -> float:
    """A middle value of a sorted list (one of the two for an even count, by the seed)."""
    middle = [values[(len(values) - 1) // 2], values[len(values) // 2]]
    return middle[int(rng.integers(2))] if middle[0] != middle[1] else middle[0]


def initial_design(grid: list[Candidate], seed: int = 0) -> list[Candidate]:
    """The space-filling start (module docstring); the same for the same grid and seed."""
    rng = np.random.default_rng(seed)
    repeats = sorted({c.repeat for c in grid})
    first = repeats[int(rng.integers(len(repeats)))]
    second = repeats[(repeats.index(first) + 1) % len(repeats)]
    by_key = {(c.cell, c.repeat): c for c in grid}
    out: list[Candidate] = []

    def take(cell: tuple, repeat: int) -> None:
        choice = by_key.get((cell, repeat)) or next((c for c in grid if c.cell == cell), None)
        if choice is not None and choice not in out:
            out.append(choice)

    for model, dims in dict.fromkeys((c.model, c.dims) for c in grid):
        mine = [c for c in grid if (c.model, c.dims) == (model, dims)]
        densities = sorted({c.density for c in mine})
        fractions = sorted({c.fraction for c in mine})
        if len(densities) < 2 or len(fractions) < 2:
            raise UserError(f"an adaptive design needs 2 or more densities and 2 or more volume fractions "
                            f"(the grid of {model} has {len(densities)} and {len(fractions)})")
        rho_mid, s_mid = _nearest_centre(densities, rng), _nearest_centre(fractions, rng)
        for index, (policy, interp) in enumerate(_levels(mine)):
            if index == 0:
                for rho in (densities[0], densities[-1]):
                    for s in (fractions[0], fractions[-1]):
                        take((model, dims, rho, s, policy, interp), first)
            centre = (model, dims, rho_mid, s_mid, policy, interp)
            take(centre, first)
            if index == 0 and len(repeats) > 1:
                take(centre, second)
    return out


def _observations(done: list[dict], model: str, dims: int, study_dir) -> Observations | None:
    obs = observations(done, model, dims, study_dir)
    return None if too_few(done, obs) else obs


def design_surface(obs: Observations, form_name: str, replicates: int = DESIGN_REPLICATES, seed: int = 0) -> Surface:
    """The surface fitted to the cell means, and to ``replicates`` parametric redraws of them (each cell
    mean moved by its repeat SD / sqrt(runs), SD at least ``MIN_SD``)."""
    noise = repeat_noise(obs)
    runs = np.maximum(obs.n_runs(), 1)
    sd = np.maximum(noise.sd(obs.n, obs.k), MIN_SD) / np.sqrt(runs)
    means = obs.cell_means()
    rng = np.random.default_rng(seed)
    targets = means[None, :] + rng.standard_normal((replicates, obs.n_cells)) * sd[None, :]
    both = fit_grid(FORMS[form_name], training_inputs(obs), np.vstack([means, targets]), cell_weights(obs))
    return Surface(obs, both.rows(slice(0, 1)), both.rows(slice(1, None)), noise)


def expected_regret(values: np.ndarray) -> np.ndarray:
    """Expected regret of recommending the plan with the best mean: ``values`` (..., B, P) -> (...)."""
    choice = np.argmax(values.mean(axis=-2), axis=-1)
    chosen = np.take_along_axis(values, choice[..., None, None], axis=-1)[..., 0]
    return np.mean(values.max(axis=-1) - chosen, axis=-1)


@dataclass
class _Ensemble:
    """Plan IoUs at each target budget and candidate cells' IoUs under the same surfaces."""

    values: np.ndarray        # (B, columns): every target budget's allocations, then the candidate cells
    budget_columns: list[slice]
    cell_columns: dict[tuple, int]
    cell_sd: dict[tuple, float]
    noise: np.ndarray         # (B,) standard-normal perturbations of the observation (fixed: paired scores)

    def regrets(self, values: np.ndarray | None = None) -> np.ndarray:
        values = self.values if values is None else values
        return np.array([expected_regret(values[..., cols]) for cols in self.budget_columns]).T

    def after(self, cell: tuple, fantasies: np.ndarray) -> np.ndarray:
        """(F, B, columns) ensembles conditioned on observing ``cell`` at each fantasised value."""
        y = self.values[:, self.cell_columns[cell]]
        sd = self.cell_sd[cell]
        centred = self.values - self.values.mean(axis=0)
        gain = centred.T @ (y - y.mean()) / (len(y) - 1) / (y.var(ddof=1) + sd ** 2)
        innovation = fantasies[:, None] - (y + sd * self.noise)[None, :]
        return self.values[None] + innovation[..., None] * gain[None, None, :]

    def condition_on_mean(self, cell: tuple) -> None:
        y = self.values[:, self.cell_columns[cell]]
        self.values = self.after(cell, np.array([y.mean()]))[0]


def _ensemble(surface: Surface, budgets: list[float], unit: str, costs: CostModel, cells: list[Candidate],
              seed: int) -> _Ensemble:
    obs = surface.obs
    blocks, columns, start = [], [], 0
    for budget in budgets:
        alloc = within_reach(surface, budget, unit, costs, obs.n_total, obs.depth)
        values = surface.replicates.predict(alloc.n, alloc.k, alloc.level) if len(alloc) else np.zeros((
            surface.replicates.coef.shape[0], 0))
        blocks.append(np.clip(values, 0.0, 1.0))
        columns.append(slice(start, start + values.shape[1]))
        start += values.shape[1]
    level_of = {(lv.policy, lv.interpolation): i for i, lv in enumerate(obs.levels)}
    usable = [c for c in cells if (c.policy, c.interpolation) in level_of]
    n = np.array([c.n for c in usable])
    k = np.array([c.k for c in usable])
    level = np.array([level_of[(c.policy, c.interpolation)] for c in usable], dtype=int)
    cell_values = surface.replicates.predict(n, k, level) if usable else np.zeros((blocks[0].shape[0], 0))
    sd = np.maximum(surface.noise.sd(n, k), MIN_SD) if usable else np.zeros(0)
    rng = np.random.default_rng(seed)
    return _Ensemble(np.hstack(blocks + [cell_values]), columns,
                     {c.cell: start + i for i, c in enumerate(usable)},
                     {c.cell: float(s) for c, s in zip(usable, sd)}, rng.standard_normal(cell_values.shape[0]))


def _repeat_for(cell_runs: list[Candidate], done: list[dict]) -> Candidate:
    """The cell's pending run whose repeat most finished runs share (ties: the lowest repeat)."""
    shared: dict[int, int] = {}
    for r in done:
        shared[int(r["repeat"])] = shared.get(int(r["repeat"]), 0) + 1
    return min(cell_runs, key=lambda c: (-shared.get(c.repeat, 0), c.repeat))


def _seconds(record: dict) -> float | None:
    if record.get("seconds_train") is None:
        return None
    return float(record["seconds_train"]) + float(record.get("seconds_infer_per_case") or 0.0)


def relative_costs(done: list[dict]) -> dict[tuple, float]:
    """Compute of a run per cell, relative to the typical finished run: the median seconds of the
    cell's finished runs over the median of all (cells not run yet cost 1)."""
    seconds: dict[tuple, list[float]] = {}
    for r in done:
        value = _seconds(r)
        if value:
            key = (r["model"], int(r["dims"]), float(r["density"]), float(r["volume_fraction"]), r["policy"],
                   r["interpolation"])
            seconds.setdefault(key, []).append(value)
    if not seconds:
        return {}
    typical = float(np.median([v for values in seconds.values() for v in values]))
    return {key: float(np.median(values)) / typical for key, values in seconds.items()}


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
        fitted[(model, dims)] = (obs, form, surface)
        for budget in budgets:
            plan = plan_surface(surface, check, budget, unit, None, None, costs)
            if budget not in plans or plan.best.expected_iou > plans[budget].best.expected_iou:
                plans[budget] = plan
    return plans, fitted


def is_settled(plans: dict[float, Plan], budgets: list[float]) -> bool:
    """The stop rule: a plan at every target budget whose best beats its runner-up with P >= SETTLED."""
    if any(b not in plans for b in budgets):
        return False
    return all(p.prob_best_beats_runner_up is None or p.prob_best_beats_runner_up >= SETTLED
               for p in plans.values())


def _same_as_before(plans: dict[float, Plan], done: list[dict], budgets: list[float], unit: str,
                    costs: CostModel, study_dir, seed: int, batch: int) -> bool:
    """Whether the plans fitted without the last ``batch`` finished runs were the same plans: a
    settled verdict from one fit of few cells can be luck; two fits in a row agreeing is less so."""
    before, _ = current_plans(done[:-batch], budgets, unit, costs, study_dir, seed)
    return all(b in before and (before[b].model, _plan_key(before[b])) == (plans[b].model, _plan_key(plans[b]))
               for b in budgets)


def _forms_identified(fitted: dict) -> bool:
    """Whether every model's cells identify each single-level form (power needs 7 cells): before
    that, the form choice cannot have weighed the saturating power law, and a settled plan only
    says that the simpler form is sure of itself."""
    for fit in fitted.values():
        if fit is None:
            return False
        names = {f.name for f in usable_forms(training_inputs(fit[0]), fit[0].n_cells)}
        if not {name for name, f in FORMS.items() if not f.needs_levels and name != "k-levels"} <= names:
            return False
    return True


def _plan_key(plan: Plan) -> tuple:
    b = plan.best
    return (b.n_volumes, b.slices_per_volume, b.policy, b.interpolation)


def next_step(grid: list[Candidate], done: list[dict], budgets: list[float], unit: str, costs: CostModel,
              max_runs: int, batch: int = 1, seed: int = 0, study_dir=None, busy: set[str] = frozenset(),
              replicates: int = DESIGN_REPLICATES) -> Step:
    """What to do after the finished runs ``done`` (store records, in the order they finished): the
    next ``batch`` runs, or stop.

    ``grid``: every run the design may use (finished or not); ``busy``: runs in flight (not proposed
    again, counted against ``max_runs``). The design is a function of the store: the start set is
    done first, then each step refits the surface, so a resumed design continues where it was.
    """
    done_ids = {r["run_id"] for r in done}
    free = [c for c in grid if c.run_id not in done_ids and c.run_id not in busy]
    used = len(done_ids & {c.run_id for c in grid}) + len(busy)
    room = max(0, min(batch, max_runs - used))
    start = [c for c in initial_design(grid, seed) if c.run_id not in done_ids and c.run_id not in busy]
    if start:
        picks = [Pick(c.run_id, c.label, c.repeat, "space-filling start (corners and centre of the grid)", None)
                 for c in start[:room]]
        return Step(None if picks else STOP_LIMIT, picks, {}, len(done_ids),
                    "finishing the space-filling start" if picks else "the run limit is reached")
    plans, fitted = current_plans(done, budgets, unit, costs, study_dir, seed)
    start_size = len(initial_design(grid, seed))
    if (is_settled(plans, budgets) and len(done) - batch >= start_size and _forms_identified(fitted)
            and _same_as_before(plans, done, budgets, unit, costs, study_dir, seed, batch)):
        return Step(STOP_SETTLED, [], plans, len(done_ids),
                    f"settled: the best plan beats the runner-up with probability >= {SETTLED:.0%} at every target budget")
    if not free:
        return Step(STOP_EXHAUSTED, [], plans, len(done_ids), "every run of the grid is done or in flight")
    if used >= max_runs:
        return Step(STOP_LIMIT, [], plans, len(done_ids), f"the run limit ({max_runs} runs) is reached before the plan settled")
    picks = propose(fitted, free, done, budgets, unit, costs, room, seed, replicates)
    return Step(None, picks, plans, len(done_ids), f"proposing {len(picks)} run(s)")


def propose(fitted: dict, free: list[Candidate], done: list[dict], budgets: list[float], unit: str,
            costs: CostModel, count: int, seed: int = 0, replicates: int = DESIGN_REPLICATES) -> list[Pick]:
    """Greedy batch of ``count`` runs with the largest expected regret removed per run of cost."""
    by_cell: dict[tuple, list[Candidate]] = {}
    for c in free:
        by_cell.setdefault(c.cell, []).append(c)
    costs_of = relative_costs(done)
    ensembles = {}
    for key, fit in fitted.items():
        if fit is None:
            continue
        obs, form, _ = fit
        cells = [runs[0] for cell, runs in by_cell.items() if (runs[0].model, runs[0].dims) == key]
        ensembles[key] = _ensemble(design_surface(obs, form, replicates, seed), budgets, unit, costs, cells, seed)
    fantasies_z = normal_quantiles(FANTASIES)
    picks: list[Pick] = []
    remaining = dict(by_cell)
    while len(picks) < count and remaining:
        best = None
        for cell, runs in remaining.items():
            ens = ensembles.get((runs[0].model, runs[0].dims))
            if ens is None or cell not in ens.cell_columns:
                # no surface for this model yet: its cells come first, cheapest spread first
                score, why = math.inf, "its model has no surface yet"
            else:
                y = ens.values[:, ens.cell_columns[cell]]
                fantasies = y.mean() + np.sqrt(y.var(ddof=1) + ens.cell_sd[cell] ** 2) * fantasies_z
                now = ens.regrets()                               # (budgets,)
                later = ens.regrets(ens.after(cell, fantasies)).mean(axis=0)  # (budgets,)
                drop = now - later
                score = float(drop.sum()) / costs_of.get(cell, 1.0)
                top = int(np.argmax(drop))
                why = (f"expected regret at {budgets[top]:g} {unit}: {now[top]:.4f} -> {later[top]:.4f} IoU "
                       f"(all budgets: -{drop.sum():.4f})")
            if best is None or score > best[0] + 1e-12:
                best = (score, cell, why)
        score, cell, why = best
        run = _repeat_for(remaining[cell], done)
        remaining[cell] = [c for c in remaining[cell] if c is not run]
        if not remaining[cell]:
            del remaining[cell]
        picks.append(Pick(run.run_id, run.label, run.repeat, why, None if math.isinf(score) else score))
        ens = ensembles.get((run.model, run.dims))
        if ens is not None and cell in ens.cell_columns:
            ens.condition_on_mean(cell)
    return picks


def check_run_limit(grid: list[Candidate], max_runs: int, seed: int = 0) -> None:
    """One UserError line when ``max_runs`` cannot even finish the space-filling start."""
    start = len(initial_design(grid, seed))
    if max_runs < start:
        raise UserError(f"the run limit {max_runs} is below the design's start of {start} runs "
                        "(corners and centre of the grid); raise --max-runs")
