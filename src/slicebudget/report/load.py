"""Read the run records of a study folder through the study store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from slicebudget.errors import UserError

STORE_NAME = "study.sqlite"


def store_path(study_dir: str | Path) -> Path:
    """The store file of ``study_dir``; UserError when the folder holds no study."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError("no such study folder", study_dir)
    path = study_dir / STORE_NAME
    if not path.is_file():
        raise UserError(
            f"no study here: {STORE_NAME} not found (run `budget-study run STUDY.yaml` first)", study_dir
        )
    return path


def load_runs(study_dir: str | Path) -> list[dict]:
    """Every run record of the study in ``study_dir`` (plain dicts, as ``StudyStore.runs()`` gives)."""
    path = store_path(study_dir)
    # Imported here: the study package pulls in the runner's dependencies, which a caller that
    # passes records directly (tests, the plugin) never needs.
    from slicebudget.study.store import StudyStore

    try:
        store = StudyStore(path)
        try:
            runs = [dict(run) for run in store.runs()]
        finally:
            close = getattr(store, "close", None)
            if callable(close):
                close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot read the study store: {exc}", path) from exc
    return runs
