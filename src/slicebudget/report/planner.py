"""The report's planner sections: the plan per studied budget, the frontier, the surface, the self-check.

Everything comes from :mod:`slicebudget.planning` (the same plan ``budget-study plan`` prints); this
module only chooses what to show: one plan per budget level of the study, the IoU-against-budget
frontier in slices and in annotator-hours, and the surface over (n, k) for the figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError

FRONTIER_POINTS = 24


@dataclass(frozen=True)
class ModelPlanning:
    model: str
    dims: int
    surface: object            # slicebudget.planning.surface.Surface
    plans: list                # slicebudget.planning.plan.Plan, one per studied budget level
    frontier_slices: list[dict]
    frontier_hours: list[dict]
    grid: dict                 # n, k, level, expected: the surface for the figure

    @property
    def self_check(self):
        return self.plans[0].self_check

    def as_dict(self) -> dict:
        return {"model": self.model, "dims": self.dims, "plans": [p.as_dict() for p in self.plans],
                "frontier_slices": self.frontier_slices, "frontier_hours": self.frontier_hours}


@dataclass(frozen=True)
class Planning:
    models: list[ModelPlanning] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why a model has no surface, one line each
    costs_source: str = ""

    def as_dict(self) -> dict:
        from slicebudget.planning.selfcheck import plain

        return plain({"models": [m.as_dict() for m in self.models], "problems": self.problems,
                      "costs_source": self.costs_source})


def _surface_grid(surface) -> dict:
    obs = surface.obs
    n_top = max(int(obs.n_total), int(np.ceil(obs.n.max())))
    n = np.unique(np.round(np.geomspace(1, n_top, 40)))
    k = np.unique(np.round(np.geomspace(1, obs.depth, 40)))
    nn, kk = np.meshgrid(n, k, indexing="ij")
    # the figure shows the level of the best plan at the largest budget (the only one for one policy)
    expected = {}
    for level in range(len(obs.levels)):
        expected[level] = surface.predictive(nn.ravel(), kk.ravel(), np.full(nn.size, level)).expected.reshape(nn.shape)
    return {"n": n, "k": k, "expected": expected}


def build_planning(records: list[Mapping], study_dir: str | Path | None, costs=None) -> Planning:
    """Fit each model's surface and plan every studied budget level (problems are kept, not raised)."""
    from slicebudget.planning.costs import from_config
    from slicebudget.planning.observations import models_in
    from slicebudget.planning.plan import fit_model, frontier, plan_surface, studied_budgets

    runs = [dict(r) for r in records]
    costs = costs or from_config(None)
    out, problems = [], []
    try:
        models = models_in(runs)
    except KeyError as exc:
        return Planning([], [f"the run records lack the field {exc} the planner needs"], costs.source)
    for model, dims in models:
        try:
            surface, check = fit_model(runs, model, dims, study_dir)
        except UserError as exc:
            problems.append(exc.message)
            continue
        except (KeyError, TypeError) as exc:
            problems.append(f"{model} ({dims}D): the run records lack what the planner needs ({exc})")
            continue
        budgets = studied_budgets(surface.obs)
        plans = [plan_surface(surface, check, b, costs=costs, study=str(study_dir or "")) for b in budgets]
        low, high = max(1.0, budgets[0] / 2), budgets[-1] * 2.0
        grid_slices = np.unique(np.round(np.geomspace(low, high, FRONTIER_POINTS)))
        # hours from the cheapest way to buy `low` slices (one volume) to `high` slices over every volume
        n_all = surface.obs.n_total
        grid_hours = np.geomspace(float(costs.seconds(1, low)) / 3600, float(costs.seconds(n_all, high / n_all)) / 3600,
                                  FRONTIER_POINTS)
        out.append(ModelPlanning(model, dims, surface, plans, frontier(surface, grid_slices, "slices", costs),
                                 frontier(surface, grid_hours, "hours", costs), _surface_grid(surface)))
    return Planning(out, problems, costs.source)
