"""The JSON sidecar `budget-study propagate` writes next to the dense labels: per slice, where its
labels came from and how far to trust them, so nobody mistakes machine slices for human ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slicebudget.io.atomic import atomic_write
from slicebudget.propagation.common import PropagationResult

SIDECAR_FORMAT, SIDECAR_VERSION = "slicebudget-propagation", 1
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def sidecar_path(labels_path: str | Path) -> Path:
    """``dense.nii.gz`` -> ``dense.provenance.json`` (same folder)."""
    path = Path(labels_path)
    name = path.name
    for suffix in LABEL_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.provenance.json")


def sidecar_payload(result: PropagationResult, labels_path: str | Path, method: str, parameters: dict[str, Any]) -> dict:
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "labels": Path(labels_path).name,
        "method": method,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in parameters.items()},
        "confidence": "calibrated: the IoU a slice's labels are expected to have against the truth "
        "(for an empty slice: the chance it is truly empty); 1.0 on human slices only",
        "slices": [
            {"slice": int(i), "provenance": str(p), "confidence": round(float(c), 4)}
            for i, (p, c) in enumerate(zip(result.provenance, result.confidence))
        ],
    }


def write_sidecar(result: PropagationResult, labels_path: str | Path, method: str, parameters: dict[str, Any]) -> Path:
    """Write the sidecar of ``labels_path`` atomically; returns its path."""
    path = sidecar_path(labels_path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(sidecar_payload(result, labels_path, method, parameters), indent=1))
    return path
