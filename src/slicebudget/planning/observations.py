"""Finished runs -> the table the budget surface is fitted to: IoU per (cell, repeat, test case).

A *cell* is one point of the design: (n annotated volumes, k annotated slices per volume, level),
where the level is the (policy, interpolation) factor. Every run of a cell is one repeat; every
repeat is scored on the same test cases, so ``iou[cell, repeat, case]`` is a dense array (NaN where
a run is missing). Repeats are paired across cells by seed (the study draws a repeat's volumes and
training seed from the repeat alone) and cases are shared, which is what lets the bootstrap resample
repeats and cases together for every cell at once.

The dense baseline (every slice of every volume) has no policy: it joins the study's first level,
so it informs the surface at k = depth without creating a level of its own.

Per-case IoU comes from each run's ``results.csv`` (or a record's ``case_iou`` mapping); a run without one contributes its mean IoU as a
single pseudo-case (``per_case`` is then False and the report says so).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError

# MIST's closing rows of results.csv; they are summaries, not cases.
_SUMMARY_ROWS = {"Mean", "Std", "25th Percentile", "Median", "75th Percentile"}
RUN_MEAN_CASE = "(run mean)"


@dataclass(frozen=True)
class Level:
    policy: str
    interpolation: str

    @property
    def label(self) -> str:
        return self.policy if self.interpolation == "off" else f"{self.policy} + {self.interpolation}"


@dataclass(frozen=True)
class Observations:
    """The runs of one model of a study as arrays (see the module docstring)."""

    model: str
    dims: int
    n: np.ndarray          # (cells,) annotated volumes, mean over the cell's runs
    k: np.ndarray          # (cells,) annotated slices per volume, mean over the cell's runs
    level: np.ndarray      # (cells,) index into ``levels``
    density: np.ndarray    # (cells,) rho of the study grid
    fraction: np.ndarray   # (cells,) s of the study grid
    levels: tuple[Level, ...]
    iou: np.ndarray        # (cells, repeats, cases), NaN where missing
    repeats: tuple[int, ...]
    cases: tuple[str, ...]
    n_total: int           # training volumes the study had
    depth: int             # slices per volume in the study's data (the most k can be)
    per_case: bool

    @property
    def n_cells(self) -> int:
        return int(self.n.size)

    def run_means(self) -> np.ndarray:
        """(cells, repeats) mean IoU of each run over its cases (NaN for a missing run)."""
        return _nanmean(self.iou, axis=2)

    def cell_means(self) -> np.ndarray:
        return _nanmean(self.run_means(), axis=1)

    def n_runs(self) -> np.ndarray:
        return np.sum(np.isfinite(self.run_means()), axis=1)

    def budget(self) -> np.ndarray:
        return self.n * self.k

    def subset(self, keep: np.ndarray) -> Observations:
        """The same observations restricted to the cells where ``keep`` is true (a new object)."""
        keep = np.asarray(keep, dtype=bool)
        return Observations(self.model, self.dims, self.n[keep], self.k[keep], self.level[keep],
                            self.density[keep], self.fraction[keep], self.levels, self.iou[keep], self.repeats,
                            self.cases, self.n_total, self.depth, self.per_case)

    def cell_label(self, index: int) -> str:
        return (f"rho={self.density[index]:g}, s={self.fraction[index]:g} (n={self.n[index]:.0f}, "
                f"k={self.k[index]:.1f}, {self.levels[self.level[index]].label})")


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; all-NaN slices give NaN without a warning."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def read_case_iou(run_dir: Path) -> dict[str, float] | None:
    """Per-case IoU from a run's results.csv; None when the file is absent or has no ``iou`` column."""
    path = run_dir / "results.csv"
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError:
        return None
    if not rows or "iou" not in rows[0]:
        return None
    column = rows[0].index("iou")
    out = {}
    for row in rows[1:]:
        if row and row[0] not in _SUMMARY_ROWS and len(row) > column:
            try:
                out[row[0]] = float(row[column])
            except ValueError:
                out[row[0]] = math.nan
    return out or None


def load_study_runs(study_dir: str | Path) -> list[dict]:
    """Every run record of the study in ``study_dir``; one UserError line when it is not a study."""
    from slicebudget.study.store import STORE_NAME, StudyStore

    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError("not a study folder (no such folder)", study_dir)
    if not (study_dir / STORE_NAME).is_file():
        raise UserError(f"not a study folder: {STORE_NAME} not found (run `budget-study run STUDY.yaml` first)",
                        study_dir)
    with StudyStore(study_dir) as store:
        return store.runs()


def _finished(run: dict) -> bool:
    iou = (run.get("metrics") or {}).get("iou")
    return run["status"] == "done" and iou is not None and math.isfinite(iou) and run.get("slices_per_volume")


def models_in(runs: list[dict]) -> list[tuple[str, int]]:
    """(model, dims) of the study, in grid order."""
    return list(dict.fromkeys((r["model"], int(r["dims"])) for r in runs))


def observations(runs: list[dict], model: str, dims: int, study_dir: str | Path | None = None) -> Observations:
    """The finished runs of (model, dims) as :class:`Observations` (per-case IoU read from ``study_dir``)."""
    mine = [r for r in runs if r["model"] == model and int(r["dims"]) == dims]
    done = [r for r in mine if _finished(r)]
    # Levels from the sparse runs (grid order); the dense baseline joins the first one.
    levels = list(dict.fromkeys(Level(r["policy"], r["interpolation"]) for r in mine if not r["is_dense_baseline"]))
    if not levels:
        levels = [Level("fixed", "off")]

    def level_of(run) -> int:
        return 0 if run["is_dense_baseline"] else levels.index(Level(run["policy"], run["interpolation"]))

    cell_keys = list(dict.fromkeys((r["density"], r["volume_fraction"], level_of(r)) for r in done))
    repeats = tuple(sorted({int(r["repeat"]) for r in done}))
    per_run: dict[tuple, dict[str, float]] = {}
    per_case = True
    for r in done:
        cases = r.get("case_iou")  # records built in memory (tests, the synthetic benchmark) carry them
        if cases is None and study_dir is not None:
            cases = read_case_iou(Path(study_dir) / "runs" / r["run_id"])
        if cases is None:
            per_case = False
        per_run[(r["density"], r["volume_fraction"], level_of(r), int(r["repeat"]))] = cases or {}
    if not per_case:  # one pseudo-case per run: mixing real and pseudo cases would misweight runs
        per_run = {key: {RUN_MEAN_CASE: 0.0} for key in per_run}
    case_ids = tuple(dict.fromkeys(c for cases in per_run.values() for c in cases))
    iou = np.full((len(cell_keys), len(repeats), len(case_ids)), np.nan)
    n = np.zeros(len(cell_keys))
    k = np.zeros(len(cell_keys))
    counts = np.zeros(len(cell_keys))
    case_index = {c: i for i, c in enumerate(case_ids)}
    for r in done:
        c = cell_keys.index((r["density"], r["volume_fraction"], level_of(r)))
        rep = repeats.index(int(r["repeat"]))
        values = per_run[(r["density"], r["volume_fraction"], level_of(r), int(r["repeat"]))]
        if per_case:
            for case, value in values.items():
                iou[c, rep, case_index[case]] = value
        else:
            iou[c, rep, 0] = float(r["metrics"]["iou"])
        n[c] += r["n_volumes"]
        k[c] += float(r["slices_per_volume"])
        counts[c] += 1
    counts = np.maximum(counts, 1)
    n_total = max((int(r["n_volumes_total"]) for r in mine), default=0)
    return Observations(
        model=model, dims=dims, n=n / counts, k=k / counts,
        level=np.array([key[2] for key in cell_keys], dtype=int),
        density=np.array([key[0] for key in cell_keys], dtype=float),
        fraction=np.array([key[1] for key in cell_keys], dtype=float),
        levels=tuple(levels), iou=iou, repeats=repeats, cases=case_ids, n_total=n_total,
        depth=_depth(done), per_case=per_case,
    )


def _depth(done: list[dict]) -> int:
    """Slices per volume of the study's data: k / rho for each run (k is rounded per volume)."""
    ratios = [float(r["slices_per_volume"]) / float(r["density"]) for r in done if r["density"] > 0]
    dense = [float(r["slices_per_volume"]) for r in done if r["density"] >= 1.0]
    if dense:
        return int(round(float(np.median(dense))))
    return max(1, int(round(float(np.median(ratios))))) if ratios else 1


def unfinished_cells(runs: list[dict], model: str, dims: int) -> list[str]:
    """``rho=0.2, s=0.5 (fixed): 2 pending`` for each cell of (model, dims) with runs not done."""
    out: dict[tuple, dict[str, int]] = {}
    for r in runs:
        if r["model"] != model or int(r["dims"]) != dims or _finished(r):
            continue
        key = (r["density"], r["volume_fraction"], r["policy"], r["interpolation"])
        out.setdefault(key, {}).setdefault(r["status"], 0)
        out[key][r["status"]] += 1
    lines = []
    for (rho, s, policy, interp), status in out.items():
        level = policy if interp == "off" else f"{policy} + {interp}"
        lines.append(f"rho={rho:g}, s={s:g} ({level}): " + ", ".join(f"{v} {k}" for k, v in sorted(status.items())))
    return lines
