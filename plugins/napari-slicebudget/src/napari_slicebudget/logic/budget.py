"""The budget panel's logic: a study's advice applied to the annotator's own volumes, and their pace.

``summary.json`` is written by ``budget-study report`` (schema in :mod:`slicebudget.report`); its
recommendations are read with :func:`slicebudget.report.read_recommendations`. The advice takes the
study's density (slices per volume as a share of the volume's depth) and applies it to the depth of
the annotator's volumes, never to the study's own volumes, and never advises more slices than the
budget. :func:`recommend` is the one place that turns a study into advice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.report import read_recommendations
from slicebudget.report.recommend import Recommendation

from napari_slicebudget.logic.ledger import SliceLedger


@dataclass(frozen=True)
class Study:
    recommendations: list[Recommendation]
    run_status: dict[str, int]  # runs per status ("done", "pending", "running", "failed")

    @property
    def unfinished(self) -> int:
        return sum(n for status, n in self.run_status.items() if status != "done")

    def warning(self) -> str:
        """One line when runs are not done (the advice may still change), else ""."""
        if not self.unfinished:
            return ""
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.run_status.items()) if status != "done")
        total = sum(self.run_status.values())
        return (f"Unfinished study: {self.unfinished} of {total} runs are not done ({parts}); "
                "this advice may change when they finish.")


def load_study(path: str | Path) -> Study:
    """Recommendations and run statuses of a ``summary.json``; a study with no finished run is refused."""
    recommendations = read_recommendations(path)
    runs = json.loads(Path(path).read_text()).get("runs") or []
    status = Counter(str(run.get("status", "unknown")) for run in runs if isinstance(run, dict))
    if runs and not status.get("done"):
        raise UserError("no run of this study has finished; nothing to advise yet", path)
    return Study(recommendations, dict(status))


@dataclass(frozen=True)
class Advice:
    budget: int
    depth: int
    level: Recommendation
    slices_per_volume: int
    n_volumes: int
    available: int | None

    @property
    def total(self) -> int:
        return self.n_volumes * self.slices_per_volume

    def text(self) -> str:
        r = self.level
        ci = f" (95% CI {r.ci95[0]:.3f} to {r.ci95[1]:.3f})" if r.ci95 else " (one repeat, no interval)"
        volumes = "volume" if self.n_volumes == 1 else "volumes"
        limit = (f" You listed {self.available} volumes, so {self.budget - self.total} slices of the budget stay unused."
                 if self.available is not None and self.n_volumes == self.available and self.total < self.budget else "")
        return (f"For {self.budget} slices on volumes of {self.depth} slices: annotate {self.n_volumes} {volumes} at "
                f"{self.slices_per_volume} slices each ({self.total} slices), chosen by the {r.policy} policy."
                f"{limit}\nFrom the study's best at its {r.budget_slices}-slice level: density {r.density:.0%} of each "
                f"volume, {r.model} {r.dims}D, mean IoU {r.mean_iou:.3f}{ci}.")


def recommend(recommendations: list[Recommendation], budget: int, depth: int, available: int | None = None,
              dims: int | None = None, model: str | None = None) -> Advice:
    """Advice for ``budget`` slices on volumes of ``depth`` slices (``available`` of them, None: no limit).

    The study level is the largest within the budget (else the smallest); its density sets the slices
    per volume on the annotator's depth; as many volumes follow as the budget pays for in full.
    """
    if budget < 1 or depth < 1:
        raise UserError(f"budget and volume depth must be at least one slice, got {budget} and {depth}")
    pool = [r for r in recommendations if (dims is None or r.dims == dims) and (model is None or r.model == model)]
    if not pool:
        raise UserError(f"no recommendation for dims={dims}, model={model!r}")
    within = [r for r in pool if r.budget_slices <= budget]
    level = max(within, key=lambda r: (r.budget_slices, r.mean_iou)) if within else min(pool, key=lambda r: r.budget_slices)
    per_volume = min(max(1, round(level.density * depth)), depth, budget)
    n_volumes = budget // per_volume
    if available is not None:
        n_volumes = min(n_volumes, max(available, 0))
    return Advice(int(budget), int(depth), level, per_volume, n_volumes, available)


@dataclass(frozen=True)
class Pace:
    n_done: int
    active_seconds: float

    @property
    def seconds_per_slice(self) -> float | None:
        return self.active_seconds / self.n_done if self.n_done else None

    def against(self, planned_slices: int) -> str:
        if self.seconds_per_slice is None:
            return "No slice annotated yet; the time per slice shows after the first."
        left = max(planned_slices - self.n_done, 0)
        return (f"{self.n_done} of {planned_slices} planned slices in {self.active_seconds / 60:.1f} active min "
                f"({self.seconds_per_slice:.0f} s per slice, overhead included); {left} to go, about "
                f"{left * self.seconds_per_slice / 3600:.1f} h.")


def pace(ledger: SliceLedger) -> Pace:
    """The annotator's pace on this volume: active time over the slices a person annotated."""
    return Pace(int(ledger.human.sum()), float(ledger.active_seconds))
