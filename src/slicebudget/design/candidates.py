"""The runs an adaptive design may choose, where it starts, and what a run costs.

- A *candidate* is one pending (cell, repeat) run of the study grid.
- Start: a space-filling set before any surface exists: the four corners of the (volumes, slices)
  grid of the first level plus a central cell, the central cell and the smallest corner twice (the
  planner fits no surface before two cells have two repeats, ``plan.too_few``: with one, every
  later pick would be blind); every other level adds its central cell. The corners also fix the
  studied range, so the design's plans stay where the full grid's would.
- Repeats: a cell's next run takes the repeat shared by most finished runs, so cells stay paired by
  repeat seed (the planner's bootstrap resamples whole repeats across cells).
- Cost: a run's expected compute relative to the typical finished run (its cell's seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slicebudget.errors import UserError
from slicebudget.planning.allocate import UNITS
from slicebudget.planning.costs import CostModel


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
                # two repeated cells: the planner's least for a repeat spread (``plan.too_few``)
                take(centre, second)
                take((model, dims, densities[0], fractions[0], policy, interp), second)
    return out


def check_run_limit(grid: list[Candidate], max_runs: int, seed: int = 0) -> None:
    """One UserError line when ``max_runs`` cannot even finish the space-filling start."""
    start = len(initial_design(grid, seed))
    if max_runs < start:
        raise UserError(f"the run limit {max_runs} is below the design's start of {start} runs "
                        "(corners and centre of the grid); raise --max-runs")


def repeat_for(cell_runs: list[Candidate], done: list[dict]) -> Candidate:
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
