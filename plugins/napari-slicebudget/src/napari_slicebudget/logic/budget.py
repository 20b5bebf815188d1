"""The budget panel's logic: the study's planner applied to the annotator's budget, volumes and depth.

The panel opens a study folder (or the ``summary.json`` that ``budget-study report`` wrote into it)
and asks the same planner as ``budget-study plan`` (:mod:`slicebudget.planning.plan`): for a budget in
slices or hours, the volumes the group has and the depth of its volumes, the best (n, k, policy), the
expected IoU with its 80% interval for a new campaign, and the planner's self-check. Slices per volume
are counted on the annotator's volumes (k never exceeds their depth). :func:`recommend` is the one
place that turns a study into advice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.planning.costs import CostModel
from slicebudget.planning.plan import Plan, fit_model, plan_surface, study_costs
from slicebudget.study.store import STORE_NAME

from napari_slicebudget.logic.ledger import SliceLedger


@dataclass(frozen=True)
class Study:
    folder: Path
    runs: list[dict]
    run_status: dict[str, int]  # runs per status ("done", "pending", "running", "failed")
    costs: CostModel
    fits: dict = field(default_factory=dict)  # (model, dims) -> (surface, self-check), filled on first use

    @property
    def unfinished(self) -> int:
        return sum(n for status, n in self.run_status.items() if status != "done")

    @property
    def models(self) -> list[tuple[str, int]]:
        return list(dict.fromkeys((r["model"], int(r["dims"])) for r in self.runs))

    def warning(self) -> str:
        """One line when runs are not done (the advice may still change), else ""."""
        if not self.unfinished:
            return ""
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.run_status.items()) if status != "done")
        total = sum(self.run_status.values())
        return (f"Unfinished study: {self.unfinished} of {total} runs are not done ({parts}); "
                "this advice may change when they finish.")

    def fit(self, model: str, dims: int):
        if (model, dims) not in self.fits:
            self.fits[(model, dims)] = fit_model(self.runs, model, dims, self.folder)
        return self.fits[(model, dims)]


def load_study(path: str | Path) -> Study:
    """A study folder, or the ``summary.json`` inside one; a study with no finished run is refused."""
    from slicebudget.planning.observations import load_study_runs

    path = Path(path)
    if not path.exists():
        raise UserError("file not found", path)
    folder = path if path.is_dir() else path.parent
    if not (folder / STORE_NAME).is_file():
        raise UserError(f"no study store ({STORE_NAME}) beside it: open the study folder that "
                        "`budget-study run` wrote", path)
    runs = load_study_runs(folder)
    status = Counter(str(run["status"]) for run in runs)
    if not status.get("done"):
        raise UserError("no run of this study has finished; nothing to advise yet", path)
    return Study(folder, runs, dict(status), study_costs(folder, None))


@dataclass(frozen=True)
class Advice:
    plan: Plan
    depth: int

    @property
    def total(self) -> int:
        return self.plan.best.total_slices

    def text(self) -> str:
        p, b = self.plan, self.plan.best
        budget = f"{p.budget:g} {'slices' if p.unit == 'slices' else 'hours'}"
        lines = [f"For {budget} on volumes of {self.depth} slices: annotate {b.n_volumes} "
                 f"volume{'s' if b.n_volumes != 1 else ''} at {b.slices_per_volume} slice"
                 f"{'s' if b.slices_per_volume != 1 else ''} each ({b.total_slices} slices, {b.hours:.1f} h), "
                 f"chosen by the {b.policy} policy"
                 + (f", with {b.interpolation} interpolation" if b.interpolation != "off" else "") + ".",
                 f"Expected IoU {b.expected_iou:.3f} for a new campaign (80% interval {b.interval80[0]:.3f} to "
                 f"{b.interval80[1]:.3f}; 95% {b.interval95[0]:.3f} to {b.interval95[1]:.3f}), {p.model} {p.dims}D."]
        if b.extrapolated:
            lines.append(f"Extrapolated beyond the study: {b.extrapolated}.")
        if p.more_volumes is not None:
            lines.append(f"With {p.more_volumes.n_volumes} volumes (you have {p.volumes_available}) the planner "
                         f"expects {p.more_volumes.expected_iou:.3f}.")
        if p.unit == "hours":
            lines.append(f"Hours from costs {p.costs['source']}.")
        if p.volumes_source != "given":
            lines.append(f"Volumes: {p.volumes_available}, the study's; set the volumes you have.")
        lines.append(f"Planner self-check: {p.self_check.summary()}.")
        return "\n".join(lines)


def session_costs(ledger: SliceLedger, fallback: CostModel) -> CostModel:
    """The annotator's own costs so far (this session's timed slices), or ``fallback`` before the first
    timed object slice: what a budget in hours is converted with."""
    from slicebudget.planning.costs import fit_costs, validate_volumes

    from napari_slicebudget.logic.costs import volume_costs

    entry = volume_costs(ledger, "this session")
    if not any(s["kind"] == "object" for s in entry["slices"]):
        return fallback
    return fit_costs(validate_volumes([entry]), fallback, "this session")


def recommend(study: Study, budget: float, depth: int, available: int | None = None, dims: int | None = None,
              model: str | None = None, unit: str = "slices", costs: CostModel | None = None) -> Advice:
    """The planner's best plan for ``budget`` on ``available`` volumes of ``depth`` slices (best model
    unless ``dims``/``model`` narrow it); ``costs`` default to the study's."""
    if depth < 1:
        raise UserError(f"volume depth must be at least one slice, got {depth}")
    pool = [(m, d) for m, d in study.models if (dims is None or d == dims) and (model is None or m == model)]
    if not pool:
        raise UserError(f"no model with dims={dims}, model={model!r} in this study")
    plans, problems = [], []
    for name, d in pool:
        try:
            surface, check = study.fit(name, d)
        except UserError as exc:
            problems.append(exc)
            continue
        plans.append(plan_surface(surface, check, budget, unit, available, None, costs or study.costs, depth,
                                  str(study.folder)))
    if not plans:
        raise problems[0]
    return Advice(max(plans, key=lambda p: p.best.expected_iou), int(depth))


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
