"""Run records from the study store -> one tidy pandas table, with budget levels assigned.

A record is the plain dict the study store returns for one run (see the module docstring of
``slicebudget.report`` for the fields). Metrics are flattened to ``metric_<name>`` columns so a class
called, say, "interp" can never collide with a run field such as ``interp_iou``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from slicebudget.errors import UserError

HEADLINE = "metric_iou"
METRIC_PREFIX = "metric_"
DEFAULT_BUDGET_TOLERANCE = 0.05

REQUIRED_FIELDS = ("run_id", "status", "model", "dims", "policy", "density", "volume_fraction", "repeat")
OPTIONAL_FIELDS = {
    "interpolation": "off",
    "is_dense_baseline": None,
    "n_volumes": None,
    "n_volumes_total": None,
    "slices_per_volume": None,
    "budget_slices": None,
    "metrics": None,
    "interp_iou": None,
    "seconds_train": None,
    "seconds_infer_per_case": None,
    "cpu_seconds_train": None,
    "cpu_seconds_infer_per_case": None,
    "error": None,
}
NUMERIC_FIELDS = (
    "density",
    "volume_fraction",
    "n_volumes",
    "n_volumes_total",
    "slices_per_volume",
    "budget_slices",
    "interp_iou",
    "seconds_train",
    "seconds_infer_per_case",
    "cpu_seconds_train",
    "cpu_seconds_infer_per_case",
)
# ``interp_provenance`` (a dict in the store, see slicebudget.propagation.summary) flattened to columns.
PROVENANCE_COLUMNS = {
    "interp_confidence": ("confidence",),
    "interp_slice_iou": ("slice_iou",),
    "interp_fg_learned": ("foreground", "learned"),
    "interp_fg_interpolation": ("foreground", "interpolation"),
    "interp_fg_nearest": ("foreground", "nearest"),
    "interp_slices_stopped": ("slices", "stopped"),
}
# The configuration that identifies "the same experiment" apart from the repeat.
CONFIG_KEYS = ("dims", "model", "density", "volume_fraction", "policy", "interpolation")


def _as_float(value) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _interpolation_name(value) -> str:
    # The store may keep "no interpolation" as None, "" or False; the report always says "off".
    if value is None or value is False or str(value).strip().lower() in {"", "off", "none", "false"}:
        return "off"
    return str(value)


def _metrics_dict(value, run_id, source) -> dict[str, float]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"run {run_id}: metrics are not valid JSON ({exc.msg})", source) from exc
    if not isinstance(value, Mapping):
        raise UserError(f"run {run_id}: metrics must be a mapping, got {type(value).__name__}", source)
    return {str(k): _as_float(v) for k, v in value.items() if isinstance(v, (int, float)) or v is None}


def _provenance_columns(summary, row: Mapping) -> dict[str, float]:
    """The flattened columns from the store's dict; a record normalised before keeps its columns."""
    out = {}
    for column, path in PROVENANCE_COLUMNS.items():
        if summary is None:
            out[column] = _as_float(row.get(column))
            continue
        value = summary
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        out[column] = _as_float(value)
    return out


def normalize_records(records: Iterable[Mapping], source: str | Path | None = None) -> list[dict]:
    """Return new, cleaned copies of ``records``: defaults filled, metrics parsed, names normalised.

    Raises UserError (naming ``source``) when a record lacks a field the report cannot do without.
    """
    cleaned = []
    for index, record in enumerate(records):
        missing = [name for name in REQUIRED_FIELDS if record.get(name) is None]
        if missing:
            label = record.get("run_id", f"#{index}")
            raise UserError(f"run {label}: missing field(s) {', '.join(missing)}", source)
        # Identity fields first so the CSV and JSON read left to right: which run, then what it gave.
        row = {name: record[name] for name in REQUIRED_FIELDS}
        row.update({name: record.get(name, default) for name, default in OPTIONAL_FIELDS.items()})
        # Keep extra scalar fields (e.g. an inference method or dataset name) for grouping and CSV.
        for key, value in record.items():
            if key not in row and (value is None or isinstance(value, (str, int, float, bool))):
                row[key] = value
        row["run_id"] = str(row["run_id"])
        row["status"] = str(row["status"])
        row["model"] = str(row["model"])
        row["policy"] = str(row["policy"])
        row["dims"] = int(row["dims"])
        row["repeat"] = int(row["repeat"])
        row["interpolation"] = _interpolation_name(row["interpolation"])
        for name in NUMERIC_FIELDS:
            row[name] = _as_float(row[name])
        row["metrics"] = _metrics_dict(row["metrics"], row["run_id"], source)
        row.update(_provenance_columns(record.get("interp_provenance"), row))
        if row["is_dense_baseline"] is None:
            row["is_dense_baseline"] = bool(row["density"] >= 1.0 and row["volume_fraction"] >= 1.0)
        row["is_dense_baseline"] = bool(row["is_dense_baseline"])
        row["error"] = None if row["error"] in (None, "") else str(row["error"])
        cleaned.append(row)
    return cleaned


def runs_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per run with metrics flattened to ``metric_<name>`` columns (records are normalised first)."""
    rows = []
    for record in normalize_records(records):
        row = {key: value for key, value in record.items() if key != "metrics"}
        row.update({f"{METRIC_PREFIX}{name}": value for name, value in record["metrics"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=[*REQUIRED_FIELDS, *OPTIONAL_FIELDS])
    if HEADLINE not in frame.columns:
        frame[HEADLINE] = np.nan
    return frame


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished and have a headline metric (a new frame)."""
    mask = (frame["status"] == "done") & frame[HEADLINE].notna() & frame["budget_slices"].notna()
    return frame.loc[mask].copy()


def budget_levels(frame: pd.DataFrame, tolerance: float = DEFAULT_BUDGET_TOLERANCE) -> pd.DataFrame:
    """Return a copy of the completed runs with a ``budget_level`` column (the level's slice count).

    Runs with (nearly) equal total slices are one level: rho=0.1, s=1 and rho=0.2, s=0.5 annotate
    the same number of slices up to rounding. Levels are assigned per (rho, s) configuration from its
    mean budget, so the repeats of one configuration never straddle two levels when random volume
    choices make their budgets differ slightly.
    """
    done = completed(frame)
    if done.empty:
        return done.assign(budget_level=pd.Series(dtype=float))
    config_budget = done.groupby(["density", "volume_fraction"])["budget_slices"].mean().sort_values()
    level_of_config: dict[tuple[float, float], int] = {}
    clusters: list[list[float]] = []
    anchor = None
    for config, budget in config_budget.items():
        # A level starts at its smallest budget; anything within the tolerance of it joins.
        if anchor is None or budget > anchor * (1.0 + tolerance):
            anchor = budget
            clusters.append([])
        clusters[-1].append(float(budget))
        level_of_config[config] = len(clusters) - 1
    labels = [int(round(float(np.median(cluster)))) for cluster in clusters]
    keys = list(zip(done["density"], done["volume_fraction"]))
    return done.assign(budget_level=[labels[level_of_config[key]] for key in keys])


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if str(column).startswith(METRIC_PREFIX)]
