"""Write to a temporary path, then rename into place: nothing half-written survives a crash."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slicebudget.errors import UserError


def _temp_sibling(path: Path) -> Path:
    # Keep the full name (and so the suffix, e.g. ".nii.gz") so format-by-extension writers work.
    return path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")


def _ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder: {exc.strerror}", path.parent) from exc


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    _ensure_parent(path)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write: {exc.strerror or exc}", path) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` if the block succeeds.

    An existing non-empty ``path`` is refused unless ``overwrite`` is set, so a user's earlier output
    is never clobbered by accident.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise UserError("output folder already exists and is not empty; choose another or remove it", path)
    _ensure_parent(path)
    tmp = _temp_sibling(path)
    try:
        tmp.mkdir()
        yield tmp
        if path.exists():
            old = _temp_sibling(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write: {exc.strerror or exc}", path) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
