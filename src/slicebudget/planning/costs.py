"""The annotation cost model: seconds per object slice, per empty slice and per volume taken on.

A campaign of n volumes with k slices each costs n * (per_volume + k * per_slice) seconds, where
per_slice mixes object and empty slices by the share of empty ones. The three costs come from the
study config (``costs:``, documented defaults in :class:`slicebudget.study.config.AnnotationCosts`)
or are measured from cost files exported by the napari plugin (format
``slicebudget-annotation-costs`` version 1: ``{"format", "version", "volumes": [{"volume",
"n_slices", "active_seconds", "slices": [{"slice", "kind": "object"|"empty", "seconds", ...}]}]}``).
This module reads the JSON itself; the core library never imports the plugin.

Measured costs: object and empty slices are the means of their slices' active seconds; the per-volume
cost is the mean over volumes of the active time not spent on any slice (loading, scrolling,
review); the empty share is the share of empty slices among annotated ones. Each comes with its SD.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.io import read_json

COST_FORMAT, COST_VERSION = "slicebudget-annotation-costs", 1
COST_SUFFIX = ".costs.json"
KINDS = ("object", "empty")
# Rounding each slice's seconds to milliseconds may push their sum a little past the volume's time.
SUM_TOLERANCE = 0.5


@dataclass(frozen=True)
class CostModel:
    seconds_per_object_slice: float
    seconds_per_empty_slice: float
    seconds_per_volume: float
    empty_share: float
    source: str
    spread: dict | None = None  # SD of each measured cost, and the counts behind them

    @property
    def seconds_per_slice(self) -> float:
        return (1 - self.empty_share) * self.seconds_per_object_slice + self.empty_share * self.seconds_per_empty_slice

    def seconds(self, n, k) -> np.ndarray:
        """Seconds for ``n`` volumes of ``k`` annotated slices each."""
        return np.asarray(n, float) * (self.seconds_per_volume + np.asarray(k, float) * self.seconds_per_slice)

    def slices_within(self, seconds: float, n: np.ndarray) -> np.ndarray:
        """The most slices per volume that ``n`` volumes can have within ``seconds`` (may be < 1)."""
        n = np.asarray(n, float)
        return np.floor((seconds / n - self.seconds_per_volume) / self.seconds_per_slice + 1e-9)

    def as_dict(self) -> dict:
        return asdict(self)


def from_config(costs: dict | None) -> CostModel:
    """The cost model of a study config's ``costs:`` (None: the documented defaults)."""
    from slicebudget.study.config import AnnotationCosts

    values = AnnotationCosts.model_validate(costs or {})
    source = "study config" if costs else "defaults (assumed, not measured; set costs: in the study YAML or pass --costs)"
    return CostModel(values.seconds_per_object_slice, values.seconds_per_empty_slice, values.seconds_per_volume,
                     values.empty_share, source)


def cost_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob(f"*{COST_SUFFIX}"))
        if not files:
            raise UserError(f"no *{COST_SUFFIX} cost file in this folder", path)
        return files
    if not path.is_file():
        raise UserError("cost file not found", path)
    return [path]


def _number(value, what: str, path: Path, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise UserError(f"malformed cost file: {what} must be a number >= {minimum:g}, got {value!r}", path)
    return float(value)


def read_volumes(path: Path) -> list[dict]:
    """The validated ``volumes`` of one cost file; one UserError line for anything malformed or inconsistent."""
    data = read_json(path, missing="cost file not found")
    if not isinstance(data, dict) or data.get("format") != COST_FORMAT:
        raise UserError(f"not a cost file: format is not {COST_FORMAT!r}", path)
    if data.get("version") != COST_VERSION:
        raise UserError(f"cost file version {data.get('version')!r}; this slicebudget reads version {COST_VERSION}", path)
    return validate_volumes(data.get("volumes"), path)


def validate_volumes(volumes, path: Path | str | None = None) -> list[dict]:
    """A cost file's ``volumes`` list, checked: one UserError line for anything malformed or inconsistent."""
    if not isinstance(volumes, list) or not volumes:
        raise UserError("malformed cost file: 'volumes' must be a non-empty list", path)
    out = []
    for index, volume in enumerate(volumes):
        if not isinstance(volume, dict) or not isinstance(volume.get("slices"), list):
            raise UserError(f"malformed cost file: volumes[{index}] needs a 'slices' list", path)
        name = str(volume.get("volume", f"volumes[{index}]"))
        depth = volume.get("n_slices")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise UserError(f"malformed cost file: {name}: n_slices must be a positive integer, got {depth!r}", path)
        active = _number(volume.get("active_seconds"), f"{name}: active_seconds", path)
        seen, slices = set(), []
        for entry in volume["slices"]:
            if not isinstance(entry, dict):
                raise UserError(f"malformed cost file: {name}: each slice must be an object", path)
            s = entry.get("slice")
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < depth:
                raise UserError(f"inconsistent cost file: {name}: slice {s!r} is outside 0..{depth - 1}", path)
            if s in seen:
                raise UserError(f"inconsistent cost file: {name}: slice {s} appears twice", path)
            seen.add(s)
            if entry.get("kind") not in KINDS:
                raise UserError(f"malformed cost file: {name}: slice {s} kind {entry.get('kind')!r} is not "
                                f"{' or '.join(KINDS)}", path)
            slices.append((entry["kind"], _number(entry.get("seconds"), f"{name}: slice {s} seconds", path)))
        spent = sum(seconds for _, seconds in slices)
        if spent > active + SUM_TOLERANCE:
            raise UserError(f"inconsistent cost file: {name}: its slices took {spent:.1f} s but the volume's "
                            f"active time is {active:.1f} s", path)
        out.append({"volume": name, "active_seconds": active, "slices": slices})
    return out


def measured(path: str | Path, fallback: CostModel) -> CostModel:
    """Fit the three costs from cost file(s) at ``path``; a cost with no measurement keeps ``fallback``'s."""
    files = cost_files(path)
    label = str(path) if len(files) == 1 else f"{path} ({len(files)} files)"
    return fit_costs([v for f in files for v in read_volumes(f)], fallback, label, files[0])


def fit_costs(volumes: list[dict], fallback: CostModel, label: str, where: Path | str | None = None) -> CostModel:
    """The three costs (with their SDs) from validated volumes (:func:`validate_volumes`)."""
    obj = np.array([s for v in volumes for kind, s in v["slices"] if kind == "object"])
    empty = np.array([s for v in volumes for kind, s in v["slices"] if kind == "empty"])
    if obj.size == 0:
        raise UserError("no annotated object slice to measure the time per slice from", where)
    overhead = np.array([max(v["active_seconds"] - sum(s for _, s in v["slices"]), 0.0) for v in volumes])
    kept = [] if empty.size else ["empty-slice time"]

    def sd(values: np.ndarray) -> float | None:
        return float(values.std(ddof=1)) if values.size > 1 else None

    note = f"; {', '.join(kept)} from {fallback.source}" if kept else ""
    return CostModel(
        seconds_per_object_slice=float(obj.mean()),
        seconds_per_empty_slice=float(empty.mean()) if empty.size else fallback.seconds_per_empty_slice,
        seconds_per_volume=float(overhead.mean()),
        empty_share=float(empty.size / (empty.size + obj.size)),
        source=f"measured from {label}: {obj.size + empty.size} slices on {len(volumes)} volumes{note}",
        spread={"sd_object_slice": sd(obj), "sd_empty_slice": sd(empty), "sd_per_volume": sd(overhead),
                "n_object_slices": int(obj.size), "n_empty_slices": int(empty.size), "n_volumes": len(volumes)},
    )
