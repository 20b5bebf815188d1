"""Read the recommendations back from a study's ``summary.json`` (schema in :mod:`slicebudget.report`).

The napari budget panel and any script that plans a campaign read the file through here, so the
writer and its readers share one :class:`~slicebudget.report.recommend.Recommendation` type.
"""

from __future__ import annotations

from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.io.json_file import read_json
from slicebudget.report.recommend import Recommendation

REQUIRED = ("budget_slices", "n_volumes", "slices_per_volume", "density", "volume_fraction", "policy", "mean_iou")


def read_recommendations(path: str | Path) -> list[Recommendation]:
    """The ``recommendations`` of a ``summary.json``; one-line UserErrors for anything malformed.

    Keys the schema added after the first readers (separation, runner-up, ...) take neutral
    defaults, so a summary written by hand or by an older slicebudget still reads.
    """
    path = Path(path)
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("recommendations"), list):
        raise UserError("not a budget-study summary.json (no 'recommendations' list)", path)
    out = []
    for i, rec in enumerate(raw["recommendations"]):
        missing = [k for k in REQUIRED if rec.get(k) is None]
        if missing:
            raise UserError(f"recommendation {i} lacks {', '.join(missing)}", path)
        ci = rec.get("ci95")
        out.append(Recommendation(
            budget_slices=int(rec["budget_slices"]), n_volumes=int(rec["n_volumes"]),
            slices_per_volume=float(rec["slices_per_volume"]), density=float(rec["density"]),
            volume_fraction=float(rec["volume_fraction"]), policy=str(rec["policy"]),
            interpolation=str(rec.get("interpolation", "off")), model=str(rec.get("model", "")),
            dims=int(rec.get("dims", 2)), mean_iou=float(rec["mean_iou"]),
            ci95=[float(ci[0]), float(ci[1])] if ci else None, n_repeats=int(rec.get("n_repeats", 1)),
            sentence=str(rec.get("sentence", "")), separable=rec.get("separable"),
            separation=str(rec.get("separation", "")), n_candidates=int(rec.get("n_candidates", 1)),
            runner_up=rec.get("runner_up"),
        ))
    if not out:
        raise UserError("summary.json holds no recommendations (did the study finish any run?)", path)
    return out
