"""`budget-study run --adaptive`: the study runner driven by the proposal step, batch by batch.

The runner expands and stores the whole grid as usual (every run pending); the design then names
which pending runs to do next (``propose.next_step``), the runner executes them and records them in
the store, and the design is asked again, until it stops (settled, run limit, no runs left); the
runs it never chose stay pending. The executor asks for runs whenever workers are free (one in
process; with Dask each worker that finishes asks again, with the runs still in flight counted),
so every worker is kept busy and each choice uses every result in so far.

Resume: the design keeps no state of its own. Its start set and each proposal are functions of the
grid, the seed and the finished runs in the store (in the order they finished), so after a SIGKILL
the same command resets the cut-off runs to pending and the design continues from what finished.
The design's settings (budgets, unit, run limit, seed) and the study config are stored at the
first start; a resume with other settings or another config is refused with one line before
anything in the folder is written. Why each run was chosen is logged in the store's meta
(``design_log``) for the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from slicebudget.design.candidates import (
    Candidate,
    candidate_from_record,
    check_budgets,
    check_run_limit,
    default_budgets,
)
from slicebudget.design.propose import next_step
from slicebudget.errors import UserError

META_SETTINGS = "design"
META_LOG = "design_log"
META_STOP = "design_stop"
RUN_SHARE = 0.30


@dataclass(frozen=True)
class AdaptiveSettings:
    budgets: list[float] | None
    unit: str
    max_runs: int | None
    seed: int


def settings_from(config, adaptive: bool, max_runs: int | None, budgets: list[float] | None,
                  unit: str | None) -> AdaptiveSettings | None:
    """The design settings: the command line's over the config's ``design:``; None when not adaptive."""
    design = getattr(config, "design", None)
    if not adaptive and not (design and design.adaptive):
        if max_runs is not None or budgets is not None:
            raise UserError("--max-runs and --budgets belong to an adaptive study; add --adaptive")
        return None
    return AdaptiveSettings(
        budgets=budgets if budgets is not None else (design.budgets if design else None),
        unit=unit or (design.unit if design else "slices"),
        max_runs=max_runs if max_runs is not None else (design.max_runs if design else None),
        seed=int(config.seed),
    )


def _stored(study_dir: Path) -> tuple[dict | None, dict | None]:
    from slicebudget.study.store import STORE_NAME, StudyStore

    if not (study_dir / STORE_NAME).is_file():
        return None, None
    with StudyStore(study_dir) as store:
        return store.meta(META_SETTINGS), store.meta("config")


def check_resume(study_dir: str | Path, config, settings: AdaptiveSettings | None) -> None:
    """Refuse, in one line and before anything is written, to resume a study with other settings."""
    saved, saved_config = _stored(Path(study_dir))
    if saved_config is None:
        return
    if saved is not None and settings is None:
        raise UserError("this study folder holds an adaptive design; resume it with --adaptive (or use a new --out)",
                        study_dir)
    if settings is None:
        return
    current = config.model_dump(mode="json")
    if saved is None:
        if saved_config != current or _any_done(Path(study_dir)):
            raise UserError("this study folder holds a full-grid study; an adaptive design needs a new --out",
                            study_dir)
        return
    if saved_config != current:
        changed = sorted(k for k in set(saved_config) | set(current) if saved_config.get(k) != current.get(k))
        raise UserError(f"the adaptive design in this folder was started with another config (changed: "
                        f"{', '.join(changed)}); resume with the same config or use a new --out", study_dir)
    requested = asdict(settings)
    differs = [key for key in ("budgets", "unit", "max_runs") if requested[key] is not None
               and requested[key] != saved.get(key)]
    if differs:
        said = ", ".join(f"{key} {saved.get(key)} (asked {requested[key]})" for key in differs)
        raise UserError(f"the adaptive design in this folder was started with {said}; resume with the same "
                        "settings or use a new --out", study_dir)


def _any_done(study_dir: Path) -> bool:
    from slicebudget.study.store import StudyStore

    with StudyStore(study_dir) as store:
        return store.counts()["done"] > 0


def _depth(info) -> int:
    """Slices per volume of the study's training data (the median case's)."""
    return int(sorted(info.depths.values())[len(info.depths) // 2])


def _grid(records: list[dict], depth: int) -> list[Candidate]:
    from slicebudget.study.grid import n_slices

    return [candidate_from_record(r, None if r["status"] == "done" else n_slices(depth, r["density"]))
            for r in records if not r["is_dense_baseline"] and r["status"] != "failed"]


class StudyDesign:
    """The ``design`` callback of :func:`slicebudget.study.runner.run_study` (module docstring)."""

    def __init__(self, settings: AdaptiveSettings, study_dir: str | Path, batch: int = 1, on_status=None):
        self.settings = settings
        self.study_dir = Path(study_dir)
        self.batch = max(1, int(batch))
        self.on_status = on_status or (lambda text: None)
        self.budgets: list[float] | None = None
        self.max_runs: int | None = None
        self.stop: str | None = None
        self.reason = ""
        self.plans: dict = {}

    def _settle_settings(self, store, grid: list[Candidate], info) -> None:
        """Budgets and run limit checked and stored at the first call (a resume finds them equal)."""
        from slicebudget.planning.costs import from_config

        config = store.meta("config") or {}
        self.costs = from_config(config.get("costs"))
        saved = store.meta(META_SETTINGS) or {}
        depth = _depth(info)
        budgets = saved.get("budgets") or self.settings.budgets or default_budgets(grid)
        budgets = check_budgets(budgets, self.settings.unit, self.costs, len(info.train_ids), depth)
        max_runs = saved.get("max_runs") or self.settings.max_runs or max(1, int(RUN_SHARE * len(grid)))
        check_run_limit(grid, max_runs, self.settings.seed)
        if max_runs > len(grid):
            raise UserError(f"the run limit {max_runs} is more than the grid's {len(grid)} runs")
        if not saved:
            store.set_meta(META_SETTINGS, {"budgets": budgets, "unit": self.settings.unit, "max_runs": max_runs,
                                           "seed": self.settings.seed})
        self.budgets, self.max_runs = budgets, max_runs

    def __call__(self, store, info, busy: set[str] = frozenset(), free: int | None = None) -> list[str]:
        records = store.runs()
        grid = _grid(records, _depth(info))
        if self.budgets is None:
            self._settle_settings(store, grid, info)
        if free == 0:
            return []  # the runner's first call: settings checked, nothing to choose yet
        log = store.meta(META_LOG) or []
        # the order runs were chosen in (the store's finish times have one-second ties)
        position = {entry["run_id"]: i for i, entry in enumerate(log)}
        done = sorted((r for r in records if r["status"] == "done" and not r["is_dense_baseline"]),
                      key=lambda r: (position.get(r["run_id"], -1), r["finished_at"] or "", r["run_id"]))
        step = next_step(grid, done, self.budgets, self.settings.unit, self.costs, self.max_runs,
                         free or self.batch, self.settings.seed, self.study_dir, busy=set(busy))
        self.plans, self.reason = step.plans or self.plans, step.reason
        logged = set(position)
        for pick in step.picks:
            if pick.run_id not in logged:  # a pick cut off by a kill is proposed again: logged once
                log.append({**asdict(pick), "after_runs": len(done), "in_flight": len(busy)})
        store.set_meta(META_LOG, log)
        if step.stop and not busy:  # with runs in flight, their results may still change the verdict
            self.stop = step.stop
            store.set_meta(META_STOP, {"stop": step.stop, "reason": step.reason, "runs_done": len(done)})
            self.on_status(f"adaptive design stops: {step.reason}")
        else:
            self.on_status(f"adaptive design ({len(done)} runs done): next {', '.join(p.cell for p in step.picks)}")
        return [p.run_id for p in step.picks]


def design_summary(study_dir: str | Path) -> dict | None:
    """What the report shows: settings, the order runs were chosen and why, and how it stopped."""
    saved, _ = _stored(Path(study_dir))
    if saved is None:
        return None
    from slicebudget.study.store import StudyStore

    with StudyStore(study_dir) as store:
        return {"settings": saved, "order": store.meta(META_LOG) or [], "stop": store.meta(META_STOP)}


def dumps(value) -> str:
    return json.dumps(value, indent=1, default=str)
