"""The budget-recommendation report of a study: HTML page, per-run CSV and JSON.

``write_report(study_dir)`` reads the runs from ``study_dir/study.sqlite`` (through
``slicebudget.study.store.StudyStore``) and writes, each atomically, into ``study_dir``:

- ``report.html``: self-contained page (styles inline, figures embedded as PNG data: URIs) with the
  planner's plan per budget (budget surface, frontier, self-check), the best studied configuration
  per budget, findings computed from the data (2D and 3D apart), IoU against budget
  per volume count (the paper's Fig. 2/3), change against the dense baseline per (rho, s) (Fig. 1),
  policies against the mean over policies (Fig. 5), interpolation with/without and interpolated-mask
  quality (Fig. 4, Table 3), inference time per model, and the failed runs with their error.
- ``report_runs.csv``: one row per run; metrics flattened to ``metric_<name>`` columns
  (``metric_iou``, ``metric_dice``, ``metric_hd95``, ``metric_surface_dice``, ``metric_<class>_<metric>``).
- ``report.json``: every table behind the page, the findings, the recommendations, and ``planning``:
  per model the planner's plan at each studied budget (``slicebudget.planning.plan.Plan.as_dict``),
  the IoU-against-budget frontier in slices and in hours, and the self-check.
- ``summary.json``: the stable machine-readable file the napari budget panel reads.

``summary.json`` schema, version 1 (new keys may be added; existing keys keep their meaning)::

    {
      "version": 1,
      "runs": [            # every run, whatever its status
        {"run_id": str, "status": "done"|"failed"|"pending"|"running", "model": str, "dims": 2|3,
         "policy": str, "density": float, "volume_fraction": float, "repeat": int,
         "interpolation": "off"|method, "is_dense_baseline": bool, "n_volumes": float|null,
         "n_volumes_total": float|null, "slices_per_volume": float|null, "budget_slices": float|null,
         "interp_iou": float|null, "seconds_train": float|null, "seconds_infer_per_case": float|null,
         "error": str|null, "metrics": {"iou": float, "dice": float, "hd95": float,
         "surface_dice": float, "<class>_<metric>": float, ...}}
      ],
      "recommendations": [ # one per (dims, model, budget level), sorted by dims, model, budget
        {"budget_slices": int,        # the budget level (median total slices of its configurations)
         "n_volumes": int, "slices_per_volume": float, "density": float, "volume_fraction": float,
         "policy": str, "interpolation": "off"|method, "model": str, "dims": 2|3,
         "mean_iou": float,           # mean over repeats
         "ci95": [lo, hi] | null,     # Student-t 95% interval over repeats; null when n_repeats == 1
         "n_repeats": int,
         "sentence": str,             # e.g. "At 600 slices the best studied cell annotates 60 volumes at 10 slices each, at a fixed interval."
         "separable": bool | null,    # best's interval clear of the runner-up's; null: cannot say
         "separation": str,           # the same judgement in words
         "n_candidates": int,         # configurations compared at this budget
         "runner_up": {"label", "density", "volume_fraction", "policy", "interpolation",
                       "mean_iou", "ci95", "n_repeats"} | null}
      ]
    }

Non-finite numbers are written as null: every JSON file is strict JSON.
The core (``build_report``) takes plain run dicts, so it can be used without a study folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from slicebudget.report.build import SCHEMA_VERSION, ReportData, build_report, report_dict, summary_dict
from slicebudget.report.load import load_runs
from slicebudget.report.records import DEFAULT_BUDGET_TOLERANCE
from slicebudget.report.render import write_outputs
from slicebudget.report.summary_file import read_recommendations

__all__ = [
    "SCHEMA_VERSION",
    "ReportData",
    "build_report",
    "load_runs",
    "read_recommendations",
    "report_dict",
    "summary_dict",
    "write_report",
]


def with_case_iou(records: list[Mapping], study_dir: Path) -> list[dict]:
    """New copies of ``records`` with each finished run's per-case IoU (``case_iou``) from its results.csv."""
    from slicebudget.planning.observations import read_case_iou

    out = []
    for record in records:
        record = dict(record)
        if record.get("status") == "done" and record.get("case_iou") is None:
            record["case_iou"] = read_case_iou(study_dir / "runs" / str(record["run_id"]))
        out.append(record)
    return out


def write_report(study_dir: str | Path, runs: Iterable[Mapping] | None = None,
                 budget_tolerance: float = DEFAULT_BUDGET_TOLERANCE) -> Path:
    """Write the report files into ``study_dir`` and return the path of ``report.html``.

    ``runs`` defaults to the records in ``study_dir/study.sqlite``; the study runner may pass the
    records it already holds. Raises UserError when the folder holds no study.
    """
    study_dir = Path(study_dir)
    records = load_runs(study_dir) if runs is None else list(runs)
    records = with_case_iou(records, study_dir)
    costs = None
    if (study_dir / "study.sqlite").is_file():
        from slicebudget.planning.plan import study_costs

        costs = study_costs(study_dir, None)
    report = build_report(records, budget_tolerance=budget_tolerance, study_dir=study_dir, costs=costs)
    return write_outputs(report, study_dir, title=f"Annotation-budget report: {study_dir.resolve().name}")
