"""Checks on sparse label files: declared values and the ignore label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError


def read_declared_labels(path: str | Path) -> dict[str, int]:
    """The ``labels`` mapping of a dataset.json (``path`` may be the file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.json"
    if not path.is_file():
        raise UserError("dataset.json not found", path)
    try:
        labels = json.loads(path.read_text())["labels"]
        return {str(k): int(v) for k, v in labels.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"cannot read the labels of dataset.json ({type(exc).__name__})", path) from exc


def check_declared(
    encoded: np.ndarray,
    ignore_label: int,
    declared: dict[str, int] | None,
    path: str | Path | None = None,
) -> None:
    """Refuse values the dataset does not declare and an ignore label that collides with a class.

    Without a declaration, nnU-Net v2's convention applies: the ignore label is the highest value,
    so any value above it is undeclared.
    """
    values = np.unique(encoded)
    if declared is not None:
        classes = {v for k, v in declared.items() if k != "ignore"}
        if ignore_label in classes:
            name = next(k for k, v in declared.items() if v == ignore_label and k != "ignore")
            raise UserError(f"ignore label {ignore_label} collides with class {name!r}", path)
        if "ignore" in declared and declared["ignore"] != ignore_label:
            raise UserError(
                f"ignore label {ignore_label} differs from the dataset's ignore label {declared['ignore']}", path
            )
        allowed = classes | {0, ignore_label}
        undeclared = [int(v) for v in values if int(v) not in allowed]
        if undeclared:
            raise UserError(
                f"label value {undeclared[0]} is not declared by the dataset (declared: {sorted(allowed)})", path
            )
        return
    above = values[values > ignore_label]
    if above.size:
        raise UserError(
            f"label value {int(above[0])} is above the ignore label {ignore_label}; "
            "the ignore label must be the highest label value",
            path,
        )
