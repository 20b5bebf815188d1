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

    console = output_console()
    with console.status("building the report"):
        html_path = write_report(study_dir, budget_tolerance=budget_tolerance)
    print_planned(study_dir)
    console.print(f"report: {html_path}", highlight=False)


def print_planned(study_dir: Path) -> None:
    """The report's plans (one per studied budget) and the planner's self-check, as the last word of
    `budget-study run` and `budget-study report`."""
    from slicebudget.report.render import JSON_NAME

    path = Path(study_dir) / JSON_NAME
    if not path.is_file():
        return
    planning = json.loads(path.read_text(encoding="utf-8")).get("planning") or {}
    for model in planning.get("models", []):
        plans = model["plans"]
        print(f"{model['model']} ({model['dims']}D), planned from the budget surface:")
        for plan in plans:
            print(f"  {plan['sentence']}")
        check = plans[0]["self_check"]
        print(f"  Self-check: leave-one-cell-out MAE {check['loco_mae']:.3f} IoU (noise floor "
              f"{check['noise_floor']:.3f}); 80% intervals cover {check['coverage80']:.0%} of held-out cells. "
              f"Any other budget: budget-study plan {study_dir} --budget B")
    for problem in planning.get("problems", []):
        print(f"no budget surface: {problem}")

