"""Render the HTML page and write every report file atomically."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

import jinja2

from slicebudget.report import tables
from slicebudget.report.build import ReportData, report_dict, summary_dict
from slicebudget.report.stats import NO_INTERVAL_NOTE

TEMPLATE_NAME = "report.html.j2"
HTML_NAME = "report.html"
CSV_NAME = "report_runs.csv"
JSON_NAME = "report.json"
SUMMARY_NAME = "summary.json"


def _format_number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _format_interval(bounds, digits: int = 3) -> str:
    if not bounds or any(b is None or (isinstance(b, float) and math.isnan(b)) for b in bounds):
        return NO_INTERVAL_NOTE
    low, high = bounds
    return f"{low:.{digits}f} to {high:.{digits}f}"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = _format_number
    environment.filters["ci"] = _format_interval
    return environment


def _by_dims(items: Iterable, key) -> list[tuple[int, list]]:
    ordered = sorted(items, key=key)
    return [(dims, list(group)) for dims, group in groupby(ordered, key=key)]


def _quality_table(report: ReportData) -> dict:
    """Table 3 layout: one row per method, one column per rho."""
    quality = report.tables["interpolation_quality"]
    if quality.empty:
        return {"columns": [], "rows": []}
    grid = quality.pivot_table(index="method", columns="density", values="interp_iou", aggfunc="mean")
    grid = grid.sort_index().sort_index(axis=1)
    return {
        "columns": [float(c) for c in grid.columns],
        "rows": [(method, [tables.plain_value(v) for v in values]) for method, values in
                 zip(grid.index, grid.to_numpy(float))],
    }


def _counts_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{total} runs ({parts})" if total else "No runs recorded"


def render_html(report: ReportData, title: str) -> str:
    """The self-contained page: styles inline, figures as data: URIs, no external resource."""
    timing = report.tables["timing"]
    counts = report.status_counts
    unfinished = sum(counts.get(status, 0) for status in ("pending", "running"))
    context = {
        "title": title,
        "counts_text": _counts_text(counts),
        "tolerance_percent": f"{report.budget_tolerance * 100:g}",
        "recommendations": _by_dims(report.recommendations, key=lambda r: r.dims),
        "planning": report.planning,
        "design": report.design,
        "findings": _by_dims(report.findings, key=lambda f: f.dims),
        "figures": {name: base64.b64encode(png).decode("ascii") for name, png in report.figures.items()},
        "budget_figures": [
            (name, base64.b64encode(png).decode("ascii"))
            for name, png in sorted(report.figures.items()) if name.startswith("budget_curves_")
        ],
        "policy_rows": tables.to_records(report.tables["policy_summary"]),
        "interpolation_rows": tables.to_records(report.tables["interpolation_by_density"]),
        "has_interpolation": report.has_interpolation,
        "quality_table": _quality_table(report),
        "provenance_rows": tables.to_records(report.tables["interpolation_provenance"]),
        "timing_rows": tables.to_records(timing),
        "timing_has_inference": "inference" in timing.columns,
        "failed_rows": tables.to_records(report.tables["failed"]),
        "unfinished": (f"{unfinished} run(s) had not finished when this report was written "
                       "(pending or running); they are left out of every table." if unfinished else ""),
    }
    return _environment().get_template(TEMPLATE_NAME).render(**context)


def _atomic_write_text(path: Path, text: str) -> None:
    from slicebudget.io.atomic import atomic_write

    with atomic_write(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_outputs(report: ReportData, out_dir: Path, title: str) -> Path:
    """Write report.html, report_runs.csv, report.json and summary.json into ``out_dir``; return the HTML path."""
    out_dir = Path(out_dir)
    csv_text = tables.runs_csv_frame(report.frame).to_csv(index=False) if not report.frame.empty else ""
    _atomic_write_text(out_dir / CSV_NAME, csv_text)
    # allow_nan=False: the napari panel and other readers get strict JSON or nothing.
    _atomic_write_text(out_dir / JSON_NAME, json.dumps(report_dict(report), indent=2, allow_nan=False))
    _atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary_dict(report), indent=2, allow_nan=False))
    html_path = out_dir / HTML_NAME
    _atomic_write_text(html_path, render_html(report, title))
    return html_path
