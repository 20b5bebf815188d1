"""The study store: one SQLite database (WAL mode) per study folder, one row per run.

Only the driver process writes it; workers return result dicts. Artifacts live beside it in
``runs/<run_id>/`` (results.csv, selection.json, model.pt, run.json).

Run lifecycle: ``pending`` -> ``running`` -> ``done`` | ``failed``. A ``running`` row whose runner
died (its lock on ``STUDY_DIR/.lock`` is gone) is put back to ``pending`` when the next runner
starts; ``failed`` rows keep their error and go back to ``pending`` only with ``--retry-failed``.

RunRecord (what :meth:`StudyStore.runs` returns; one plain dict per run, all keys always present)
------------------------------------------------------------------------------------------------
run_id                  str    short sha256 of the run's canonical spec
status                  str    "pending" | "running" | "done" | "failed"
model                   str    model label for the report, e.g. "unet-resnet18" (config ``label``
                               or name[-encoder]); with ``dims`` it identifies the model
model_name              str    registry name, e.g. "unet"
encoder                 str | None
inference               str    "sliding_window" | "nmsw"
dims                    int    2 or 3
policy                  str    "fixed" | "random" | "coreset", or a variant's label such as
                               "coreset(features=encoder, scope=dataset, quota=true)" (the dense
                               baseline says "fixed")
density                 float  rho, share of slices annotated per chosen volume
volume_fraction         float  s, share of training volumes annotated
repeat                  int    0-based repeat index
interpolation           str    "off" or a propagation method name
is_dense_baseline       bool   rho = s = 1 (every slice of every training volume)
n_volumes               int    annotated (chosen) volumes
n_volumes_total         int    training volumes available
slices_per_volume       float | None  mean annotated slices per chosen volume (None until done)
budget_slices           int | None    total annotated slices (None until done)
metrics                 dict[str, float]  {} until done. Means over test cases: "iou", "dice",
                               "hd95" (mm), "surface_dice" (each first averaged over foreground
                               classes per case), and per class "{class}_iou", "{class}_dice",
                               "{class}_hd95", "{class}_surface_dice"; also "val_dice" (best
                               validation Dice, NaN without validation)
interp_iou              float | None  IoU of interpolated masks vs dense truth on the slices that
                               were not annotated (None when interpolation is off)
interp_provenance       dict | None   where the interpolated masks came from and the calibrated
                               confidence against the measured slice IoU (None when interpolation is
                               off; see slicebudget.propagation.summary.provenance_summary)
seconds_train           float | None
seconds_infer_per_case  float | None
error                   str | None   last failure message
attempts                int    times the run was started
started_at, finished_at str | None   ISO 8601 UTC
spec                    dict   the full run spec (see slicebudget.study.grid.make_spec)

``runs()`` returns the runs of the study's current grid in execution order; runs left over from an
earlier version of the config stay in the database but are only returned with ``include_stale``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.study.choices import policy_label

STATUSES = ("pending", "running", "done", "failed")
STORE_NAME = "study.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    ordinal INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    metrics TEXT,
    seconds_train REAL,
    seconds_infer_per_case REAL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def json_safe(value):
    """NaN and infinity are not JSON; store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _metrics_from_json(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    return {k: (float("nan") if v is None else float(v)) for k, v in json.loads(text).items()}


class StudyStore:
    """The SQLite store of one study. ``path`` is the database file or the study folder."""

    def __init__(self, path: str | Path, create: bool = False):
        path = Path(path)
        self.path = path / STORE_NAME if path.is_dir() or path.suffix != ".sqlite" else path
        if not create and not self.path.exists():
            raise UserError("no study store here; run `budget-study run` first", self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                self._conn.executescript(_SCHEMA)
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as exc:
            raise store_error(exc, self.path) from exc

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; disk problems become one UserError line."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise store_error(exc, self.path) from exc

    # -- writing (the driver only) --------------------------------------------------------------
    def set_meta(self, key: str, value) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def sync_grid(self, runs: Iterable[tuple[str, dict]]) -> int:
        """Make the store hold exactly these runs as the active grid; returns how many were new.

        Existing rows keep their status and results; rows not in the grid become inactive.
        """
        runs = list(runs)
        with self._write() as conn:
            known = {r["run_id"] for r in conn.execute("SELECT run_id FROM runs")}
            conn.execute("UPDATE runs SET active = 0")
            for ordinal, (rid, spec) in enumerate(runs):
                if rid in known:
                    conn.execute("UPDATE runs SET active = 1, ordinal = ? WHERE run_id = ?", (ordinal, rid))
                else:
                    conn.execute("INSERT INTO runs (run_id, ordinal, spec) VALUES (?, ?, ?)",
                                 (rid, ordinal, json.dumps(spec, sort_keys=True)))
        return len({rid for rid, _ in runs} - known)

    def reset_interrupted(self) -> int:
        """Rows left 'running' by a runner that is gone go back to 'pending' (call with the lock held)."""
        with self._write() as conn:
            return conn.execute("UPDATE runs SET status = 'pending', owner = NULL WHERE status = 'running'").rowcount

    def reset_failed(self) -> int:
        """Failed rows go back to 'pending' (their last error is kept until they finish)."""
        with self._write() as conn:
            return conn.execute("UPDATE runs SET status = 'pending' WHERE status = 'failed' AND active = 1").rowcount

    def mark_running(self, run_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = 'running', attempts = attempts + 1, started_at = ?, "
                         "finished_at = NULL, owner = ? WHERE run_id = ?", (utc_now(), owner, run_id))

    def mark_pending(self, run_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = 'pending', owner = NULL WHERE run_id = ?", (run_id,))

    def mark_done(self, run_id: str, result: dict) -> None:
        metrics = json_safe(dict(result.get("metrics", {})))
        rest = json_safe({k: v for k, v in result.items() if k != "metrics"})
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status = 'done', result = ?, metrics = ?, seconds_train = ?, "
                "seconds_infer_per_case = ?, error = NULL, finished_at = ?, owner = NULL WHERE run_id = ?",
                (json.dumps(rest, sort_keys=True), json.dumps(metrics, sort_keys=True), rest.get("seconds_train"),
                 rest.get("seconds_infer_per_case"), utc_now(), run_id),
            )

    def mark_failed(self, run_id: str, error: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ?, owner = NULL "
                         "WHERE run_id = ?", (error, utc_now(), run_id))

    # -- reading --------------------------------------------------------------------------------
    def _rows(self, status: str | None, include_stale: bool) -> list[sqlite3.Row]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        where, args = [], []
        if not include_stale:
            where.append("active = 1")
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        try:
            return self._conn.execute(f"SELECT * FROM runs {clause} ORDER BY active DESC, ordinal", args).fetchall()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def runs(self, status: str | None = None, include_stale: bool = False) -> list[dict]:
        """RunRecords (see the module docstring), optionally only those with ``status``."""
        return [_record(row) for row in self._rows(status, include_stale)]

    def spec(self, run_id: str) -> dict:
        row = self._conn.execute("SELECT spec FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return json.loads(row["spec"])

    def counts(self) -> dict[str, int]:
        """Active runs per status (every status present, zero included)."""
        out = dict.fromkeys(STATUSES, 0)
        for row in self._conn.execute("SELECT status, COUNT(*) AS n FROM runs WHERE active = 1 GROUP BY status"):
            out[row["status"]] = row["n"]
        return out


def _inferer(model: dict, result: dict) -> str:
    """What predicted the run's test cases: the inferer the run recorded; for runs stored before that
    record existed, ``slices`` for a 2D model (it never used the configured 3D inferer) or the config's."""
    recorded = (result.get("prediction") or {}).get("inferer")
    if recorded:
        return recorded
    return "slices" if int(model["dims"]) == 2 else model.get("inference", {}).get("name", "sliding_window")


def _record(row: sqlite3.Row) -> dict:
    spec = json.loads(row["spec"])
    result = json.loads(row["result"]) if row["result"] else {}
    model = spec["model"]
    return {
        "run_id": row["run_id"],
        "status": row["status"],
        "model": model.get("display_name", model["name"]),
        "model_name": model["name"],
        "encoder": model.get("encoder"),
        "inference": _inferer(model, result),
        "dims": int(model["dims"]),
        "policy": policy_label(spec["policy"]),
        "density": float(spec["density"]),
        "volume_fraction": float(spec["volume_fraction"]),
        "repeat": int(spec["repeat"]),
        "interpolation": spec["interpolation"],
        "is_dense_baseline": bool(spec["is_dense_baseline"]),
        "n_volumes": int(result.get("n_volumes", spec["n_volumes"])),
        "n_volumes_total": int(result.get("n_volumes_total", spec["n_volumes_total"])),
        "slices_per_volume": result.get("slices_per_volume"),
        "budget_slices": result.get("budget_slices"),
        "metrics": _metrics_from_json(row["metrics"]),
        "interp_iou": result.get("interp_iou"),
        "cpu_seconds_train": result.get("cpu_seconds_train"),
        "cpu_seconds_infer_per_case": result.get("cpu_seconds_infer_per_case"),
        "prediction": result.get("prediction"),  # what predicted (inferer, backbone inputs per case)
        "interp_provenance": result.get("interp_provenance"),
        "seconds_train": row["seconds_train"],
        "seconds_infer_per_case": row["seconds_infer_per_case"],
        "error": row["error"],
        "attempts": int(row["attempts"]),
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "spec": spec,
    }


def store_error(exc: BaseException, path: Path) -> UserError:
    """A database or disk failure as one line for the user."""
    text = str(exc)
    lowered = text.lower()
    if "disk is full" in lowered or "no space" in lowered:
        return UserError("disk is full: cannot write the study store", path)
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered or "permission" in lowered:
        return UserError(f"cannot write the study store ({text}); is the folder writable?", path)
    if "not a database" in lowered or "malformed" in lowered:
        return UserError(f"the study store is damaged ({text})", path)
    return UserError(f"study store error: {text}", path)
