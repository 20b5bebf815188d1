"""Run records -> everything the report shows, as plain data (no files touched here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from slicebudget.report import figures, tables
from slicebudget.report.findings import Finding, all_findings
from slicebudget.report.paired import case_table
from slicebudget.report.planner import Planning, build_planning
from slicebudget.report.recommend import Recommendation, recommend
from slicebudget.report.records import (
    DEFAULT_BUDGET_TOLERANCE,
    budget_levels,
    normalize_records,
    runs_frame,
)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ReportData:
    """The computed report: tables, recommendations, findings and figures (PNG bytes)."""

    runs: list[dict]
    frame: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    recommendations: list[Recommendation]
    findings: list[Finding]
    figures: dict[str, bytes] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    budget_tolerance: float = DEFAULT_BUDGET_TOLERANCE
    planning: Planning = field(default_factory=Planning)
    design: dict | None = None  # an adaptive study's design: settings, runs in the order chosen and why, stop

    @property
    def dims_present(self) -> list[int]:
        configs = self.tables["configs"]
        return sorted(int(d) for d in configs["dims"].unique()) if not configs.empty else []

    @property
    def has_interpolation(self) -> bool:
        return bool((self.frame["interpolation"] != "off").any()) if not self.frame.empty else False


def build_report(records: Iterable[Mapping], budget_tolerance: float = DEFAULT_BUDGET_TOLERANCE,
                 with_figures: bool = True, study_dir=None, costs=None) -> ReportData:
    """Compute every table, recommendation, finding, plan and figure from run records (inputs untouched).

    A record's ``case_iou`` ({case: IoU}, from its results.csv) makes every comparison paired over
    test cases as well as repeats. ``study_dir`` lets the planner read per-case IoU too; ``costs`` is
    the planning cost model (default: the documented defaults).
    """
    records = list(records)
    runs = normalize_records(records)
    frame = runs_frame(runs)
    levels = budget_levels(frame, tolerance=budget_tolerance)
    rho_s = tables.rho_s_summary(levels)
    deltas = tables.policy_deltas(levels)
    pairs = tables.interpolation_pairs(levels)
    computed = {
        "configs": tables.config_summary(levels),
        "rho_s": rho_s,
        "dense_drop": tables.dense_drop(levels),
        "policy_deltas": deltas,
        "policy_summary": tables.policy_summary(deltas, levels),
        "interpolation_pairs": pairs,
        "interpolation_by_density": tables.interpolation_summary(pairs, by_density=True),
        "interpolation_overall": tables.interpolation_summary(pairs, by_density=False),
        "interpolation_quality": tables.interp_quality(levels),
        "interpolation_provenance": tables.interp_provenance(levels),
        "timing": tables.timing(frame),
        "failed": tables.failed_runs(frame),
    }
    case_iou = {str(r["run_id"]): r.get("case_iou") for r in records if r.get("case_iou")}
    cases = case_table(levels, case_iou)
    findings = all_findings(cases, rho_s, computed["interpolation_overall"])
    report = ReportData(
        runs=runs,
        frame=frame,
        tables=computed,
        recommendations=recommend(computed["configs"], cases),
        findings=findings,
        status_counts=tables.status_counts(frame),
        budget_tolerance=budget_tolerance,
        planning=build_planning(records, study_dir, costs),
        design=_design(study_dir),
    )
    if not with_figures:
        return report
    return replace(report, figures=draw_figures(report))


def _design(study_dir) -> dict | None:
    """The adaptive design's log (slicebudget.design.adaptive), None for a full-grid study."""
    if study_dir is None:
        return None
    from slicebudget.design.adaptive import design_summary

    return design_summary(study_dir)


def draw_figures(report: ReportData) -> dict[str, bytes]:
    """Every figure that has data to show, keyed by a stable name."""
    drawn: dict[str, bytes | None] = {
        f"budget_curves_{dims}d": figures.budget_curves(report.tables["rho_s"], dims)
        for dims in report.dims_present
    }
    drawn["budget_surface"] = figures.budget_surface(report.planning)
    drawn["planning_frontier"] = figures.planning_frontier(report.planning)
    drawn["dense_drop"] = figures.dense_drop_heatmap(report.tables["dense_drop"])
    drawn["policy_deltas"] = figures.policy_deltas(report.tables["policy_deltas"])
    drawn["interpolation"] = figures.interpolation_bars(report.tables["interpolation_by_density"])
    drawn["interpolation_quality"] = figures.interpolation_quality(report.tables["interpolation_quality"])
    return {name: png for name, png in drawn.items() if png is not None}


def _json_run(run: dict) -> dict:
    plain = {key: tables.plain_value(value) for key, value in run.items() if key != "metrics"}
    plain["metrics"] = {key: tables.plain_value(value) for key, value in run["metrics"].items()}
    return plain


def summary_dict(report: ReportData) -> dict:
    """``summary.json``: every run with its metrics, and the recommendations (schema in the package doc)."""
    return {
        "version": SCHEMA_VERSION,
        "runs": [_json_run(run) for run in report.runs],
        "recommendations": [r.as_dict() for r in report.recommendations],
    }


def report_dict(report: ReportData) -> dict:
    """``report.json``: the summary plus every table and finding behind the HTML page."""
    table_names = [name for name in report.tables if name != "configs"] + ["configs"]
    return {
        "version": SCHEMA_VERSION,
        "status_counts": report.status_counts,
        "budget_tolerance": report.budget_tolerance,
        "recommendations": [r.as_dict() for r in report.recommendations],
        "planning": report.planning.as_dict(),
        "design": report.design,
        "findings": [f.as_dict() for f in report.findings],
        "tables": {name: tables.to_records(report.tables[name]) for name in table_names},
    }
