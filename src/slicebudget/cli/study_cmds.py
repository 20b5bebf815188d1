"""`budget-study run STUDY.yaml` and `budget-study status STUDY_DIR`."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from slicebudget.cli.app import app
from slicebudget.errors import UserError


def _terminate_as_interrupt(signum, frame):
    # `kill PID` (SIGTERM) then cleans up like Ctrl-C: interrupted runs go back to pending.
    # SIGKILL cannot be caught; the next runner resets what it left 'running'.
    raise KeyboardInterrupt


@app.command("run")
def run(
    config: Path = typer.Argument(..., help="Study config (YAML, version 1); see studies/quickstart.yaml."),
    out: Path = typer.Option(None, "--out", help="Study folder. Default: ./studies-out/<config file stem>."),
    dataset: Path = typer.Option(None, "--dataset", help="Use this nnU-Net v2 raw folder instead of the config's dataset."),
    executor: str = typer.Option("local", "--executor", help="local (in this process) or dask."),
    workers: int = typer.Option(2, "--workers", min=1, help="Dask LocalCluster worker processes (1 thread each)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Join this Dask scheduler (tcp://host:port) instead."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed runs again."),
    threads: int = typer.Option(None, "--threads", min=1,
                                help="Torch threads per run (default: all in-process, 1 per Dask worker). "
                                     "Equal values give bit-identical CPU metrics across executors."),
    checkpoints: bool = typer.Option(False, "--checkpoints", help="Keep each run's trained weights (model.pt, "
                                     "nmsw.pt) in STUDY_DIR/runs/<run id>/; off by default."),
    adaptive: bool = typer.Option(False, "--adaptive", help="Run the grid's cells in the order that settles the "
                                                           "plan soonest, and stop when it is settled (or at --max-runs)."),
    max_runs: int = typer.Option(None, "--max-runs", min=1, help="Adaptive: the run limit (default: 30% of the grid)."),
    budgets: str = typer.Option(None, "--budgets", help="Adaptive: target budgets, comma separated (default: three "
                                                         "inside the grid's cell budgets)."),
    unit: str = typer.Option(None, "--unit", help="Adaptive: budgets in slices (default) or hours."),
):
    """Train and score every run of a study grid (resumable), then write the report.

    With --adaptive (or `design: {adaptive: true}` in the YAML), only the runs that settle the plan
    at the target budgets: see slicebudget.design.
    """
    from slicebudget.cli.design_cmds import parse_budgets
    from slicebudget.design.adaptive import StudyDesign, check_resume, settings_from
    from slicebudget.report import write_report
    from slicebudget.study.config import load_config
    from slicebudget.study.progress import RichView
    from slicebudget.study.folder import default_study_dir
    from slicebudget.study.runner import run_study

    if scheduler and executor != "dask":
        executor = "dask"
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    view = RichView()
    study_dir = out if out is not None else default_study_dir(config)
    if unit is not None and unit not in ("slices", "hours"):
        raise UserError(f"unknown budget unit {unit!r}; choose slices or hours")
    settings = settings_from(load_config(config), adaptive, max_runs, parse_budgets(budgets), unit)
    check_resume(study_dir, load_config(config), settings)
    design = None
    if settings is not None:
        design = StudyDesign(settings, study_dir, batch=workers if executor == "dask" else 1, on_status=view.status)
    try:
        outcome = run_study(config, study_dir, dataset=dataset, executor=executor, workers=workers,
                            scheduler=scheduler, retry_failed=retry_failed, threads=threads, checkpoints=checkpoints,
                            view=view, write_report=write_report, design=design)
    except KeyboardInterrupt:
        view.console.print("interrupted: unfinished runs are back to pending; run the same command to resume")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = outcome.counts
    rate = outcome.executed / outcome.seconds * 3600 if outcome.seconds > 0 and outcome.executed else 0.0
    print(f"{counts['done']} done, {counts['failed']} failed, {counts['pending']} pending; "
          f"ran {outcome.executed} run(s) in {outcome.seconds:.0f} s ({rate:.0f} runs/hour); study folder: {study_dir}")
    if outcome.estimate is not None and outcome.executed:
        from slicebudget.study.estimate import clock

        print(f"the runs took {clock(outcome.run_seconds)}; estimated before they started: "
              f"{clock(outcome.estimate.seconds)} (measured / estimated = {outcome.run_seconds / max(outcome.estimate.seconds, 1e-9):.2f})")
    if counts["failed"]:
        print("failed runs keep their error (budget-study status); rerun with --retry-failed to try them again")
    if design is not None and design.stop:
        print(f"adaptive design: {design.reason}")
    from slicebudget.cli.report_cmds import print_planned

    print_planned(study_dir)


@app.command("status")
def status(study_dir: Path = typer.Argument(..., help="A study folder written by `budget-study run`.")):
    """Count the study's runs by status, and say whether a runner is at work on it."""
    from rich.table import Table

    from slicebudget.cli.console import output_console
    from slicebudget.study.progress import describe_run
    from slicebudget.study.folder import lock_holder
    from slicebudget.study.store import STATUSES, StudyStore

    with StudyStore(study_dir) as store:
        counts = store.counts()
        failed = store.runs(status="failed")
    table = Table(title=f"study {study_dir}")
    table.add_column("status")
    table.add_column("runs", justify="right")
    for name in STATUSES:
        table.add_row(name, str(counts[name]))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(counts.values())}[/bold]")
    console = output_console()
    console.print(table)
    holder = lock_holder(study_dir)
    if holder:
        console.print(f"a runner is at work on this study ({holder})")
    elif counts["running"]:
        console.print(f"{counts['running']} run(s) were cut off; the next `budget-study run` resumes them")
    for record in failed[:10]:
        console.print(f"[red]failed[/red] {record['run_id']} {describe_run(record)}: {record['error']}")
    if len(failed) > 10:
        console.print(f"... and {len(failed) - 10} more failed runs")
