"""The value of a run for the plan at the target budgets, and the greedy batch.

A run is worth what it is expected to remove from the *expected regret* of the decision: the IoU
the recommended plan loses, on average over what the surface could be (``surfaces``), against the
best plan at the same budget. Regret weighs the probability of recommending a worse plan by how
much worse it is, so a run that only separates two plans 0.001 IoU apart is worth little.

- What a run would tell: its cell's mean IoU plus one campaign's repeat noise. Conditioning the
  ensemble of surfaces on such an observation is a linear (ensemble Kalman) update of every plan's
  IoU by its covariance with the cell; the expected regret after the run averages that update over
  observations drawn from the ensemble itself (``FANTASIES`` of them).
- Which cells compete: those with the fewest finished runs (a cell not run yet first). A new cell
  also tells which surface form holds, which the ensemble cannot value: its forms are the ones the
  cells run so far identify (the saturating power law needs seven cells). In replays on synthetic
  surfaces, letting repeats of seen cells compete left designs with 7-8 cells of 16 after 14 runs
  and more regret than a random design; breadth first, the same score beat it (notes/16.md).
- Per run of cost: the drop is divided by the run's expected compute (finished runs' seconds).
- Batches: greedy. After each pick the ensemble is conditioned on that run's expected observation
  (which shrinks the spread it can remove without moving the plans), so the next pick goes where
  uncertainty remains instead of to a second copy of the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slicebudget.design.candidates import Candidate, relative_costs, repeat_for
from slicebudget.design.surfaces import DESIGN_REPLICATES, MIN_SD, DesignSurface, ModelFit, design_surface
from slicebudget.planning.bootstrap import normal_quantiles
from slicebudget.planning.costs import CostModel
from slicebudget.planning.plan import within_reach

FANTASIES = 32


@dataclass(frozen=True)
class Pick:
    run_id: str
    cell: str
    repeat: int
    why: str
    value: float | None  # expected regret removed per run of typical cost (None for the start)


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


def _ensemble(fit: ModelFit, design: DesignSurface, budgets: list[float], unit: str, costs: CostModel,
              cells: list[Candidate], seed: int) -> _Ensemble:
    obs = fit.obs
    blocks, columns, start = [], [], 0
    for budget in budgets:
        alloc = within_reach(fit.surface, budget, unit, costs, obs.n_total, obs.depth)
        values = design.predict(alloc.n, alloc.k, alloc.level) if len(alloc) else np.zeros((
            design.predict(obs.n[:1], obs.k[:1], obs.level[:1]).shape[0], 0))
        blocks.append(np.clip(values, 0.0, 1.0))
        columns.append(slice(start, start + values.shape[1]))
        start += values.shape[1]
    level_of = {(lv.policy, lv.interpolation): i for i, lv in enumerate(obs.levels)}
    usable = [c for c in cells if (c.policy, c.interpolation) in level_of]
    n = np.array([c.n for c in usable])
    k = np.array([c.k for c in usable])
    level = np.array([level_of[(c.policy, c.interpolation)] for c in usable], dtype=int)
    cell_values = design.predict(n, k, level) if usable else np.zeros((blocks[0].shape[0], 0))
    sd = np.maximum(design.noise.sd(n, k), MIN_SD) if usable else np.zeros(0)
    rng = np.random.default_rng(seed)
    return _Ensemble(np.hstack(blocks + [cell_values]), columns,
                     {c.cell: start + i for i, c in enumerate(usable)},
                     {c.cell: float(s) for c, s in zip(usable, sd)}, rng.standard_normal(cell_values.shape[0]))


def propose(fitted: dict, free: list[Candidate], done: list[dict], budgets: list[float], unit: str,
            costs: CostModel, count: int, seed: int = 0, replicates: int = DESIGN_REPLICATES) -> list[Pick]:
    """Greedy batch of ``count`` runs with the largest expected regret removed per run of cost, among
    the cells with the fewest finished runs (module docstring)."""
    by_cell: dict[tuple, list[Candidate]] = {}
    for c in free:
        by_cell.setdefault(c.cell, []).append(c)
    costs_of = relative_costs(done)
    ensembles = {}
    for key, fit in fitted.items():
        if fit is None:
            continue
        cells = [runs[0] for cell, runs in by_cell.items() if (runs[0].model, runs[0].dims) == key]
        ensembles[key] = _ensemble(fit, design_surface(fit.obs, fit.forms, replicates, seed), budgets, unit, costs,
                                   cells, seed)
    fantasies_z = normal_quantiles(FANTASIES)
    picks: list[Pick] = []
    remaining = dict(by_cell)
    finished: dict[tuple, int] = {}
    for r in done:
        key = (r["model"], int(r["dims"]), float(r["density"]), float(r["volume_fraction"]), r["policy"],
               r["interpolation"])
        finished[key] = finished.get(key, 0) + 1
    while len(picks) < count and remaining:
        best = None
        fewest = min(finished.get(cell, 0) for cell in remaining)
        for cell, runs in remaining.items():
            if finished.get(cell, 0) > fewest:
                continue  # breadth first (module docstring)
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
        run = repeat_for(remaining[cell], done)
        remaining[cell] = [c for c in remaining[cell] if c is not run]
        if not remaining[cell]:
            del remaining[cell]
        picks.append(Pick(run.run_id, run.label, run.repeat, why, None if math.isinf(score) else score))
        finished[cell] = finished.get(cell, 0) + 1
        ens = ensembles.get((run.model, run.dims))
        if ens is not None and cell in ens.cell_columns:
            ens.condition_on_mean(cell)
    return picks
