"""One step of an adaptive design: which (cell, repeat) runs to do next, or why to stop.

The decision the study serves is the plan at a few target budgets (which n volumes x k slices to
buy). A step finishes the space-filling start (``candidates``), then fits the planner's surface and
the design's surfaces to the finished runs (``surfaces``), asks whether the plan is settled
(``stop``) and, if not, proposes the runs worth most to the plan per run of cost (``value``).
Imports run one way: candidates -> surfaces -> stop / value -> propose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slicebudget.design.candidates import Candidate, initial_design
from slicebudget.design.stop import (
    SETTLED,
    STOP_EXHAUSTED,
    STOP_LIMIT,
    STOP_SETTLED,
    forms_identified,
    is_settled,
    same_as_before,
    settled_probabilities,
)
from slicebudget.design.surfaces import DESIGN_REPLICATES, current_plans
from slicebudget.design.value import Pick, propose
from slicebudget.planning.costs import CostModel
from slicebudget.planning.plan import Plan


@dataclass(frozen=True)
class Step:
    stop: str | None           # STOP_* or None while runs remain to do
    picks: list[Pick]          # the runs to do next (empty when stopping)
    plans: dict[float, Plan]   # the current plan per target budget (empty before a surface exists)
    runs_done: int
    reason: str = ""           # a sentence: why it stops, or what it does next
    notes: list[str] = field(default_factory=list)
    # per target budget: P(the best plan beats every other), the stop rule's figure (settled_probabilities)
    probabilities: dict[float, float | None] = field(default_factory=dict)


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
    probabilities = settled_probabilities(plans, fitted, unit, costs, seed, replicates)
    said = "; P(the best plan beats every other) " + ", ".join(
        f"{b:g}: {'-' if p is None else f'{p:.2f}'}" for b, p in probabilities.items())
    start_size = len(initial_design(grid, seed))
    if (is_settled(probabilities, budgets) and len(done) - batch >= start_size and forms_identified(fitted)
            and same_as_before(plans, done, budgets, unit, costs, study_dir, seed, batch)):
        return Step(STOP_SETTLED, [], plans, len(done_ids),
                    f"settled: the best plan beats every other plan with probability >= {SETTLED:.0%} at every "
                    "target budget" + said, probabilities=probabilities)
    if not free:
        return Step(STOP_EXHAUSTED, [], plans, len(done_ids), "every run of the grid is done or in flight" + said,
                    probabilities=probabilities)
    if used >= max_runs:
        return Step(STOP_LIMIT, [], plans, len(done_ids),
                    f"the run limit ({max_runs} runs) is reached before the plan settled" + said,
                    probabilities=probabilities)
    picks = propose(fitted, free, done, budgets, unit, costs, room, seed, replicates)
    return Step(None, picks, plans, len(done_ids), f"proposing {len(picks)} run(s)", probabilities=probabilities)
