"""The annotation cost file (``slicebudget-annotation-costs`` version 1) from the ledger's timing.

Read by ``budget-study plan --costs`` (a file, or a folder of ``*.costs.json``). Only human slices
appear: painted slices as ``object``, empty-marked ones as ``empty``; machine slices never do.
How time is attributed is described in :mod:`napari_slicebudget.logic.work` and the plugin README.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from slicebudget.io import atomic_write

from napari_slicebudget.logic.ledger import HUMAN_EMPTY, HUMAN_PAINTED, SliceLedger
from napari_slicebudget.logic.work import IDLE_CUTOFF_SECONDS

COST_FORMAT, COST_VERSION = "slicebudget-annotation-costs", 1
COST_SUFFIX = ".costs.json"
KINDS = {HUMAN_PAINTED: "object", HUMAN_EMPTY: "empty"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def volume_costs(ledger: SliceLedger, volume: str, idle_cutoff: float = IDLE_CUTOFF_SECONDS) -> dict:
    """One ``volumes`` entry: the human slices with their active seconds, and the volume's active time."""
    slices = []
    for s, state in enumerate(ledger.provenance):
        time = ledger.timing.get(s)
        if state in KINDS and time is not None:
            slices.append({"slice": s, "kind": KINDS[state], "seconds": round(time.seconds, 3),
                           "started": _iso(time.started), "finished": _iso(time.finished)})
    # rounding each slice up could push their sum past the volume's time; the volume keeps the larger
    active = max(round(ledger.active_seconds, 3), round(sum(e["seconds"] for e in slices), 3))
    return {"volume": volume, "n_slices": ledger.depth, "active_seconds": active,
            "idle_cutoff_seconds": idle_cutoff, "slices": slices}


def write_costs(path: str | Path, volumes: list[dict]) -> Path:
    """Write a cost file atomically."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({"format": COST_FORMAT, "version": COST_VERSION, "volumes": volumes}, indent=2) + "\n",
                       encoding="utf-8")
    return path
