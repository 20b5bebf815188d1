"""The budget panel's logic: read a study's ``summary.json`` and hold the annotator's pace against it.

``summary.json`` is written by ``budget-study report`` and read with
:func:`slicebudget.report.read_recommendations` (schema in :mod:`slicebudget.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slicebudget.errors import UserError
from slicebudget.report.recommend import Recommendation

from napari_slicebudget.logic.ledger import LogEntry

IDLE_CAP_SECONDS = 300.0  # a gap longer than this between slices is a break, counted as this much


@dataclass(frozen=True)
class Advice:
    """What to do for the user's budget, from the nearest budget level of the study."""

    budget: int
    level: Recommendation
    n_volumes: int
    slices_per_volume: int

    def text(self) -> str:
        r = self.level
        ci = f" (95% CI {r.ci95[0]:.3f} to {r.ci95[1]:.3f})" if r.ci95 else ""
        return (f"For {self.budget} slices: annotate {self.n_volumes} volumes at {self.slices_per_volume} slices each "
                f"(density {r.density:.0%}, {r.policy} policy). Study level {r.budget_slices} slices, "
                f"{r.model} {r.dims}D: mean IoU {r.mean_iou:.3f}{ci}.\n{r.sentence}")


@dataclass(frozen=True)
class Pace:
    n_done: int
    active_seconds: float
    seconds_per_slice: float | None

    def against(self, planned_slices: int) -> str:
        if self.seconds_per_slice is None:
            return f"{self.n_done} slices annotated; time per slice shows after two."
        left = max(planned_slices - self.n_done, 0)
        return (f"{self.n_done} of {planned_slices} planned slices in {self.active_seconds / 60:.1f} min "
                f"({self.seconds_per_slice:.0f} s per slice); {left} to go, about "
                f"{left * self.seconds_per_slice / 3600:.1f} h.")


def recommend(recommendations: list[Recommendation], budget: int, dims: int | None = None,
              model: str | None = None) -> Advice:
    """Advice for ``budget`` slices: the largest study level within the budget (else the smallest),
    its slices per volume kept, and the number of volumes scaled to the budget."""
    if budget < 1:
        raise UserError(f"budget must be at least one slice, got {budget}")
    pool = [r for r in recommendations if (dims is None or r.dims == dims) and (model is None or r.model == model)]
    if not pool:
        raise UserError(f"no recommendation for dims={dims}, model={model!r}")
    within = [r for r in pool if r.budget_slices <= budget]
    level = max(within, key=lambda r: (r.budget_slices, r.mean_iou)) if within else min(pool, key=lambda r: r.budget_slices)
    per_volume = max(1, round(level.slices_per_volume))
    return Advice(int(budget), level, max(1, math.floor(budget / per_volume)), per_volume)


def pace(log: list[LogEntry] | tuple[LogEntry, ...], idle_cap: float = IDLE_CAP_SECONDS) -> Pace:
    """Annotation pace from the autosave log: active time between consecutive slices, breaks capped."""
    times = sorted(e.time for e in log)
    if len(times) < 2:
        return Pace(len(times), 0.0, None)
    gaps = [min(b - a, idle_cap) for a, b in zip(times[:-1], times[1:])]
    active = float(sum(gaps))
    return Pace(len(times), active, active / len(gaps))
