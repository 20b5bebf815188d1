"""`budget-study report STUDY_DIR`: (re)write the budget-recommendation report of a study."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import app


@app.command("report")
def report(
    study_dir: Path = typer.Argument(..., help="Study folder holding study.sqlite (as written by `budget-study run`)."),
    budget_tolerance: float = typer.Option(
        0.05, "--budget-tolerance", min=0.0, max=0.5,
        help="Relative difference in total slices under which two configurations share a budget level.",
    ),
):
    """Write report.html, report_runs.csv, report.json and summary.json into STUDY_DIR."""
    from slicebudget.cli.console import output_console
    from slicebudget.report import write_report
    from slicebudget.report.render import SUMMARY_NAME

    console = output_console()
    with console.status("building the report"):
        html_path = write_report(study_dir, budget_tolerance=budget_tolerance)
    summary = json.loads((html_path.parent / SUMMARY_NAME).read_text(encoding="utf-8"))
    for item in summary["recommendations"]:
        console.print(f"[bold]{item['model']} ({item['dims']}D)[/bold] {item['sentence']}", highlight=False)
    console.print(f"report: {html_path}", highlight=False)
