"""The plan for a budget: one object that the CLI, the report and the napari budget panel all use.

``plan_study(study_dir, budget, ...)`` reads the study's finished runs, fits a budget surface per
model (form chosen by leave-one-cell-out error), checks it, and answers:

- the best allocation (n volumes, k slices each, policy, interpolation) within the budget and the
  volumes available, with its expected IoU and 80% / 95% prediction intervals for a new campaign;
- the runner-up (the best materially different plan) and the probability that the best really
  beats it (over the bootstrap surfaces, paired, with the form error at each plan:
  ``Predictive.prob_beats``);
- when more volumes than available would do better, that plan too (never recommended);
- the cheapest allocation whose IoU reaches ``target_iou`` with at least 80% probability;
- whether each answer is extrapolated beyond the studied n or k, and how far. The best plan stays
  inside the studied n and k when any allocation there fits the budget (a budget larger than the
  study's range buys is then not all planned, and the plan says so), else within twice that range
  (``surface.REACH``), else anywhere; the more-volumes note and the target search look up to twice
  the range;
- the self-check figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.planning.allocate import (
    UNITS,
    Allocations,
    at_budget,
    cost_of,
    full_grid,
    materially_different,
)
from slicebudget.planning.costs import CostModel, from_config, measured
from slicebudget.planning.observations import (
    Observations,
    load_study_runs,
    models_in,
    observations,
    unfinished_cells,
)
from slicebudget.planning.selfcheck import SelfCheck, plain, self_check
from slicebudget.planning.surface import REACH, REPLICATES, Surface, chosen_surface

TARGET_PROBABILITY = 0.80
MIN_CELLS = 5
UNCAPPED_LIMIT = 10_000  # the most volumes any search considers

POLICY_PHRASES = {
    "fixed": "at a fixed interval",
    "random": "chosen uniformly at random",
    "coreset": "chosen by coreset selection",
}


@dataclass(frozen=True)
class PlanPoint:
    n_volumes: int
    slices_per_volume: int
    policy: str
    interpolation: str
    total_slices: int
    hours: float
    expected_iou: float
    interval80: tuple[float, float]
    interval95: tuple[float, float]
    extrapolated: str | None  # None inside the studied range, else how far outside

    def describe(self) -> str:
        text = (f"{self.n_volumes} volume{'s' if self.n_volumes != 1 else ''} x {self.slices_per_volume} "
                f"slice{'s' if self.slices_per_volume != 1 else ''} ({self.total_slices} slices, "
                f"{self.hours:.1f} h), {self.policy}")
        if self.interpolation != "off":
            text += f" + {self.interpolation} interpolation"
        return text


@dataclass(frozen=True)
class Plan:
    study: str
    model: str
    dims: int
    budget: float
    unit: str
    volumes_available: int
    volumes_source: str
    depth: int
    costs: dict
    best: PlanPoint
    runner_up: PlanPoint | None
    prob_best_beats_runner_up: float | None
    more_volumes: PlanPoint | None  # the better plan that needs more volumes than available
    target_iou: float | None
    target: PlanPoint | None
    target_probability: float | None  # P(IoU >= target) of ``target`` (or of the best reachable)
    self_check: SelfCheck
    surface: dict
    other_models: list[dict] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        b = self.best
        budget = f"{self.budget:g} {'slices' if self.unit == 'slices' else 'annotator-hours'}"
        text = (f"For {budget}, annotate {b.n_volumes} volume{'s' if b.n_volumes != 1 else ''} at "
                f"{b.slices_per_volume} slice{'s' if b.slices_per_volume != 1 else ''} each, "
                f"{POLICY_PHRASES.get(b.policy, f'chosen by the {b.policy} policy')}")
        if b.interpolation != "off":
            text += f", with {b.interpolation} mask interpolation"
        text += (f": expected IoU {b.expected_iou:.2f} (80% interval {b.interval80[0]:.2f} to {b.interval80[1]:.2f} "
                 f"for a new campaign).")
        if b.extrapolated:
            text += f" Extrapolated: {b.extrapolated}."
        spent = b.total_slices if self.unit == "slices" else b.hours
        if spent < 0.9 * self.budget:
            (n_lo, n_hi), (k_lo, k_hi) = self.surface["studied"]["n"], self.surface["studied"]["k"]
            text += (f" It spends {spent:.3g} of the {self.budget:g} {self.unit}: this study speaks for at most "
                     f"{k_hi:g} slices per volume and {n_hi:g} volumes, and you have {self.volumes_available}.")
        return text

    @property
    def shares_note(self) -> str:
        """How often the bootstrap resamples chose the surface's form and each other form (``formchoice``),
        e.g. ``won 57% of resamples; log-interaction 35%, log 8%``; empty when not known."""
        form, shares = self.surface["form"], self.surface.get("form_shares") or {}
        if not shares:
            return ""
        def percent(share: float) -> str:
            return f"{share:.0%}" if share >= 0.01 else "<1%"  # 1 of 200 would read "0%": chosen, yet "never"

        others = ", ".join(f"{name} {percent(share)}" for name, share in shares.items() if name != form)
        return f"won {percent(shares.get(form, 0.0))} of resamples{'; ' + others if others else ''}"

    @property
    def form_note(self) -> str:
        """The surface's form with ``shares_note``: ``k-levels (won 57% of resamples; log-interaction 35%, log 8%)``."""
        return f"{self.surface['form']} ({self.shares_note})" if self.shares_note else self.surface["form"]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["self_check"] = self.self_check.as_dict()
        out["sentence"] = self.sentence
        out["form_note"] = self.form_note
        return plain(out)


def check_request(budget: float, unit: str, target_iou: float | None, volumes_available: int | None) -> None:
    """Bad planning input as one UserError line each."""
    if unit not in UNITS:
        raise UserError(f"unknown budget unit {unit!r}; choose {' or '.join(UNITS)}")
    if not math.isfinite(budget) or budget <= 0:
        raise UserError(f"the budget must be more than 0 {unit}, got {budget:g}")
    if target_iou is not None and not 0.0 < target_iou < 1.0:
        raise UserError(f"the target IoU must lie strictly between 0 and 1, got {target_iou:g}")
    if volumes_available is not None and volumes_available < 1:
        raise UserError(f"volumes available must be at least 1, got {volumes_available}")


def _extrapolation(surface: Surface, n: float, k: float) -> str | None:
    notes = []
    for name, value, word in (("n", n, "volumes"), ("k", k, "slices per volume")):
        low, high = surface.studied_range()[name]
        if value > high * 1.001:
            notes.append(f"{name} = {value:g} is {value / high:.1f}x the largest studied ({high:g} {word})")
        elif value < low * 0.999:
            notes.append(f"{name} = {value:g} is {value / low:.2f}x the smallest studied ({low:g} {word})")
    return "; ".join(notes) or None


def _points(surface: Surface, alloc: Allocations, costs: CostModel, indices) -> list[PlanPoint]:
    indices = np.atleast_1d(indices)
    chosen = alloc.take(indices)
    pred = surface.predictive(chosen.n, chosen.k, chosen.level)
    low80, high80 = pred.interval(0.80)
    low95, high95 = pred.interval(0.95)
    hours = costs.seconds(chosen.n, chosen.k) / 3600.0
    out = []
    for i in range(indices.size):
        level = surface.obs.levels[int(chosen.level[i])]
        out.append(PlanPoint(int(chosen.n[i]), int(chosen.k[i]), level.policy, level.interpolation,
                             int(chosen.n[i] * chosen.k[i]), float(hours[i]), float(pred.expected[i]),
                             (float(low80[i]), float(high80[i])), (float(low95[i]), float(high95[i])),
                             _extrapolation(surface, float(chosen.n[i]), float(chosen.k[i]))))
    return out


def too_few(runs: list[dict], obs: Observations) -> str | None:
    """Why the cells cannot fit a surface, with what to finish; None when they can."""
    distinct_n, distinct_k = np.unique(np.round(obs.n, 3)).size, np.unique(np.round(obs.k, 3)).size
    repeated = int(np.sum(obs.n_runs() >= 2))
    if obs.n_cells >= MIN_CELLS and distinct_n >= 2 and distinct_k >= 2 and repeated >= 2:
        return None
    if obs.n_cells >= MIN_CELLS and distinct_n >= 2 and distinct_k >= 2:
        # A surface could be fitted, but without repeats there is no spread to build intervals from.
        pending = unfinished_cells(runs, obs.model, obs.dims)
        where = f"; finish: {'; '.join(pending)}" if pending else "; run the study with repeats: 2 or more"
        return (f"too few finished runs to fit a budget surface with intervals for {obs.model} ({obs.dims}D): "
                f"{repeated} cell{'s' if repeated != 1 else ''} with two or more finished repeats, need at least 2 "
                f"to measure repeat-to-repeat spread{where}")
    pending = unfinished_cells(runs, obs.model, obs.dims)
    have = (f"{obs.n_cells} grid cell{'s' if obs.n_cells != 1 else ''} with finished runs "
            f"({distinct_n} volume count{'s' if distinct_n != 1 else ''}, {distinct_k} slice count{'s' if distinct_k != 1 else ''})")
    need = f"at least {MIN_CELLS} cells spanning 2 or more volume counts and 2 or more slice counts"
    more = max(MIN_CELLS - obs.n_cells, 0)
    todo = (f"finish {more or 'the'} more cell{'s' if more != 1 else ''} among: {'; '.join(pending)}" if pending
            else "add densities or volume fractions to the study grid and run it again")
    return f"too few finished runs to fit a budget surface for {obs.model} ({obs.dims}D): {have}, need {need}; {todo}"


def fit_model(runs: list[dict], model: str, dims: int, study_dir: str | Path | None,
              replicates: int = REPLICATES, seed: int = 0) -> tuple[Surface, SelfCheck]:
    """The surface and self-check of one model (form chosen by LOCO error); UserError if too few runs."""
    obs = observations(runs, model, dims, study_dir)
    problem = too_few(runs, obs)
    if problem:
        raise UserError(problem, study_dir)
    # each bootstrap replicate redoes the form choice, so the plan's uncertainty carries the choice's
    surface, errors, aside = chosen_surface(obs, replicates, seed)
    check = self_check(obs, surface.form.name, errors, seed=seed, non_monotone=aside)
    # the self-check's full-data form error is the surface's (same cells, replicates and seed)
    return replace(surface, form_var=check.form_sd ** 2), check


def within_reach(surface: Surface, budget: float, unit: str, costs: CostModel, available: int,
                 depth: int) -> Allocations:
    """Allocations at the budget inside the studied n and k; if none fits, inside twice that range
    (``surface.REACH``); if still none, anywhere (then marked extrapolated, with how far)."""
    n_levels = len(surface.obs.levels)
    for factor in (1.0, REACH):
        n_lo, n_hi, k_lo, k_hi = surface.reach(factor)
        alloc = at_budget(budget, unit, costs, min(available, n_hi), min(depth, k_hi), n_levels, n_lo, k_lo)
        if len(alloc):
            return alloc
    return at_budget(budget, unit, costs, available, depth, n_levels)


def plan_surface(surface: Surface, check: SelfCheck, budget: float, unit: str = "slices",
                 volumes_available: int | None = None, target_iou: float | None = None,
                 costs: CostModel | None = None, depth: int | None = None, study: str = "") -> Plan:
    """The plan for ``budget`` from a fitted surface (see the module docstring)."""
    check_request(budget, unit, target_iou, volumes_available)
    obs = surface.obs
    costs = costs or from_config(None)
    depth = int(depth or obs.depth)
    available = int(volumes_available or obs.n_total)
    source = "given" if volumes_available else "the study's training volumes (pass --volumes-available for yours)"
    n_levels = len(obs.levels)

    alloc = within_reach(surface, budget, unit, costs, available, depth)
    if len(alloc) == 0:
        raise UserError(f"a budget of {budget:g} {unit} does not pay for one slice of one volume"
                        + (f" ({costs.seconds_per_volume + costs.seconds_per_slice:.0f} s with the cost model)"
                           if unit == "hours" else ""))
    pred = surface.predictive(alloc.n, alloc.k, alloc.level)
    best = int(np.argmax(pred.expected))
    others = np.flatnonzero(materially_different(alloc, best))
    runner = int(others[np.argmax(pred.expected[others])]) if others.size else None
    prob = pred.prob_beats(best, runner) if runner is not None else None

    # What more volumes would give (said, never recommended).
    n_lo, n_hi, k_lo, k_hi = surface.reach()
    wide = at_budget(budget, unit, costs, min(n_hi, UNCAPPED_LIMIT), min(depth, k_hi), n_levels, n_lo, k_lo)
    more = None
    if len(wide) and wide.n.max() > available:
        wide_pred = surface.predictive(wide.n, wide.k, wide.level)
        top = int(np.argmax(wide_pred.expected))
        if wide.n[top] > available and wide_pred.expected[top] > pred.expected[best] + 1e-9:
            more = _points(surface, wide, costs, top)[0]

    target = target_prob = None
    if target_iou is not None:
        grid = full_grid(min(available, n_hi), min(depth, k_hi), n_levels, n_lo, k_lo)
        probability = surface.predictive(grid.n, grid.k, grid.level).prob_at_least(target_iou)
        reach = np.flatnonzero(probability >= TARGET_PROBABILITY)
        if reach.size:
            cost = cost_of(grid, unit, costs)[reach]
            cheapest = int(reach[np.lexsort((-probability[reach], cost))[0]])
        else:
            cheapest = int(np.argmax(probability))
        target, target_prob = _points(surface, grid, costs, cheapest)[0], float(probability[cheapest])
        if not reach.size:
            target = None

    points = _points(surface, alloc, costs, [best] + ([runner] if runner is not None else []))
    return Plan(
        study=study, model=obs.model, dims=obs.dims, budget=float(budget), unit=unit,
        volumes_available=available, volumes_source=source, depth=depth, costs=costs.as_dict(),
        best=points[0], runner_up=points[1] if runner is not None else None, prob_best_beats_runner_up=prob,
        more_volumes=more, target_iou=target_iou, target=target, target_probability=target_prob,
        self_check=check,
        surface={"form": surface.form.name, "formula": surface.form.formula, "n_cells": obs.n_cells,
                 "n_runs": int(obs.n_runs().sum()), "n_cases": len(obs.cases), "per_case": obs.per_case,
                 "levels": [level.label for level in obs.levels], "studied": surface.studied_range(),
                 "replicates": surface.replicates.count, "form_sd": float(np.sqrt(surface.form_var)),
                 "form_shares": surface.form_shares()},
    )


def study_costs(study_dir: str | Path, costs_path: str | Path | None) -> CostModel:
    """The study config's cost model, replaced by measured costs when ``costs_path`` is given."""
    from slicebudget.study.store import StudyStore

    with StudyStore(study_dir) as store:
        config = store.meta("config") or {}
    base = from_config(config.get("costs"))
    return measured(costs_path, base) if costs_path is not None else base


def plan_study(study_dir: str | Path, budget: float, unit: str = "slices", volumes_available: int | None = None,
               target_iou: float | None = None, costs_path: str | Path | None = None, depth: int | None = None,
               model: str | None = None, replicates: int = REPLICATES, seed: int = 0) -> Plan:
    """Plan ``budget`` on the study in ``study_dir``: the best model's plan, other models summarised."""
    check_request(budget, unit, target_iou, volumes_available)
    runs = load_study_runs(study_dir)
    costs = study_costs(study_dir, costs_path)
    candidates = [m for m in models_in(runs) if model is None or m[0] == model]
    if not candidates:
        known = ", ".join(name for name, _ in models_in(runs)) or "none"
        raise UserError(f"no model {model!r} in this study (models: {known})", study_dir)
    plans, problems = [], []
    for name, dims in candidates:
        try:
            surface, check = fit_model(runs, name, dims, study_dir, replicates, seed)
        except UserError as exc:
            problems.append(exc)
            continue
        plans.append(plan_surface(surface, check, budget, unit, volumes_available, target_iou, costs, depth,
                                  str(study_dir)))
    if not plans:
        raise problems[0]
    plans.sort(key=lambda p: -p.best.expected_iou)
    others = [{"model": p.model, "dims": p.dims, "expected_iou": p.best.expected_iou, "plan": p.best.describe()}
              for p in plans[1:]]
    return replace(plans[0], other_models=others)


def frontier(surface: Surface, budgets, unit: str = "slices", costs: CostModel | None = None,
             volumes_available: int | None = None, depth: int | None = None) -> list[dict]:
    """The best plan's expected IoU and 80% interval at each budget: the IoU-against-budget frontier."""
    obs = surface.obs
    costs = costs or from_config(None)
    available, depth = int(volumes_available or obs.n_total), int(depth or obs.depth)
    out = []
    for budget in budgets:
        alloc = within_reach(surface, float(budget), unit, costs, available, depth)
        if not len(alloc):
            continue
        pred = surface.predictive(alloc.n, alloc.k, alloc.level)
        best = int(np.argmax(pred.expected))
        point = _points(surface, alloc, costs, best)[0]
        out.append({"budget": float(budget), "unit": unit, **asdict(point)})
    return out


def studied_budgets(obs: Observations) -> list[int]:
    """The study's budget levels in slices (distinct n * k of its cells, within 5%)."""
    levels: list[float] = []
    for value in np.sort(obs.budget()):
        if not levels or value > levels[-1] * 1.05:
            levels.append(float(value))
    return [int(round(v)) for v in levels]
