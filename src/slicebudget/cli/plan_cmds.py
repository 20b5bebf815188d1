"""`budget-study plan STUDY_DIR --budget B`: the best allocation of a budget, with its confidence."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import app, bench_app


@app.command("plan")
def plan(
    study_dir: Path = typer.Argument(..., help="Study folder holding study.sqlite (as written by `budget-study run`)."),
    budget: float = typer.Option(..., "--budget", help="The annotation budget, in --unit."),
    unit: str = typer.Option("slices", "--unit", help="slices or hours (annotator time, from the cost model)."),
    volumes_available: int = typer.Option(None, "--volumes-available",
                                          help="Volumes your group can annotate. Default: the study's training volumes."),
    target_iou: float = typer.Option(None, "--target-iou", help="Also find the cheapest plan reaching this IoU "
                                                               "with at least 80% probability."),
    costs: Path = typer.Option(None, "--costs", help="Cost file(s) exported by the napari plugin (a *.costs.json "
                                                     "or a folder of them): measured seconds per slice and volume."),
    depth: int = typer.Option(None, "--depth", min=1, help="Slices per volume of your data. Default: the study's."),
    model: str = typer.Option(None, "--model", help="Plan for this model of the study. Default: the best one."),
    json_out: Path = typer.Option(None, "--json", help="Also write the plan as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
):
    """Fit the study's budget surface and plan BUDGET: best (volumes, slices each, policy), intervals, self-check."""
    from slicebudget.planning.plan import check_request, plan_study

    check_request(budget, unit, target_iou, volumes_available)
    result = plan_study(study_dir, budget, unit, volumes_available, target_iou, costs, depth, model, seed=seed)
    print_plan(result)
    if json_out is not None:
        from slicebudget.io.atomic import atomic_write

        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(result.as_dict(), indent=1) + "\n", encoding="utf-8")
        print(f"plan: {json_out}")


def print_plan(result) -> None:
    from rich.table import Table

    from slicebudget.cli.console import output_console

    console = output_console()
    table = Table(title=f"{result.model} ({result.dims}D): {result.budget:g} {result.unit}, "
                        f"{result.volumes_available} volumes available")
    for column in ("plan", "volumes x slices", "slices", "hours", "IoU", "80% interval", "95% interval"):
        table.add_column(column, justify="left" if column in ("plan", "volumes x slices") else "right")
    notes = []

    def row(name, point, note=""):
        label = point.policy if point.interpolation == "off" else f"{point.policy} + {point.interpolation}"
        marks = [note] if note else []
        if point.extrapolated:
            marks.append(f"extrapolated: {point.extrapolated}")
        if marks:
            notes.append(f"({len(notes) + 1}) {name}: {'; '.join(marks)}.")
        table.add_row(f"{name}{f' ({len(notes)})' if marks else ''}",
                      f"{point.n_volumes} x {point.slices_per_volume}, {label}", str(point.total_slices),
                      f"{point.hours:.1f}", f"{point.expected_iou:.3f}",
                      f"{point.interval80[0]:.2f}-{point.interval80[1]:.2f}",
                      f"{point.interval95[0]:.2f}-{point.interval95[1]:.2f}")

    row("best", result.best)
    if result.runner_up is not None:
        row("runner-up", result.runner_up,
            f"the best beats it with probability {result.prob_best_beats_runner_up:.0%} (paired bootstrap, form choice "
            f"and form error included)")
    if result.more_volumes is not None:
        row("more volumes", result.more_volumes,
            f"not recommended: needs {result.more_volumes.n_volumes} volumes, you have {result.volumes_available}")
    if result.target_iou is not None and result.target is not None:
        row(f"IoU >= {result.target_iou:g}", result.target,
            f"the cheapest plan reaching it with probability >= 80% ({result.target_probability:.0%})")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
    console.print(result.sentence, highlight=False)
    if result.target_iou is not None and result.target is None:
        console.print(f"No plan with {result.volumes_available} volumes of {result.depth} slices reaches IoU "
                      f"{result.target_iou:g} with 80% probability (at most {result.target_probability:.0%}).",
                      highlight=False)
    check = result.self_check
    console.print(f"Form: {result.form_note}.", highlight=False)
    console.print(f"Self-check of the {result.surface['form']} surface ({result.surface['formula']}; "
                  f"{result.surface['n_cells']} cells, {result.surface['n_runs']} runs): {check.summary()}.",
                  highlight=False)
    if check.non_monotone:
        console.print(f"Set aside (their fit lowers IoU when annotation is added): {', '.join(check.non_monotone)}.",
                      highlight=False)
    console.print(f"Volumes available: {result.volumes_available} ({result.volumes_source}). "
                  f"Costs: {result.costs['source']}.", highlight=False)
    for other in result.other_models:
        console.print(f"Other model: {other['model']} ({other['dims']}D) best {other['plan']}, expected IoU "
                      f"{other['expected_iou']:.3f}.", highlight=False)


@bench_app.command("plan")
def bench_plan_command(
    runs: int = typer.Option(1000, "--runs", min=10, help="Runs in the synthetic study."),
    out: Path = typer.Option(Path("bench-plan-study"), "--out", help="Folder for the synthetic study (reused)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed `budget-study plan` processes."),
):
    """Time `budget-study plan` on a synthetic study of RUNS finished runs (target: under 2 s)."""
    from slicebudget.bench.planning import bench_plan, large_synthetic_records, write_synthetic_study

    if not (out / "study.sqlite").is_file():
        write_synthetic_study(out, large_synthetic_records(runs))
    from slicebudget.study.store import StudyStore

    with StudyStore(out) as store:
        n_runs = store.counts()["done"]
    timing = bench_plan(out, repeats=repeats)
    print(f"budget-study plan on {n_runs} runs: best {timing['best']:.2f} s wall of "
          f"{', '.join(f'{s:.2f}' for s in timing['seconds'])}; CPU "
          f"{', '.join(f'{s:.2f}' for s in timing['cpu_seconds'])} s (target < 2 s)")


@bench_app.command("calibration")
def bench_calibration_command(
    worlds: int = typer.Option(100, "--worlds", min=1, help="Synthetic studies per world kind (seeds 0..WORLDS-1)."),
    kinds: str = typer.Option("in-family,shared,bump", "--kinds",
                              help="World kinds, comma-separated: in-family, shared, bump."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
):
    """Is the planner's confidence honest? P(best beats runner-up) against how often it truly does, and
    the best plan's 80% / 95% interval coverage of a new campaign, on synthetic studies of known truth."""
    from slicebudget.bench.calibration import BUDGETS, KINDS, calibration
    from slicebudget.cli.console import progress_bar

    chosen = [kind.strip() for kind in kinds.split(",") if kind.strip()]
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown or not chosen:
        from slicebudget.errors import UserError

        raise UserError(f"unknown world kind {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    with progress_bar() as bar:
        task = bar.add_task("calibration worlds", total=worlds * len(chosen))
        result = calibration(chosen, worlds, progress=lambda: bar.advance(task))
    print(f"budgets {', '.join(map(str, BUDGETS))} slices; {worlds} worlds per kind (4 x 4 cells x 3 repeats)")
    for kind, r in result.items():
        sure = (f"{r['claims_p90']} claims of P >= 0.9, right {r['claims_p90_right']:.0%}" if r["claims_p90"]
                else "no claim of P >= 0.9")
        print(f"{kind}: mean P(best beats runner-up) {r['mean_p']:.3f}, truly beats it {r['truly_won']:.3f} "
              f"(SE {r['truly_won_se']:.3f}, {r['pairs']} pairs); Brier {r['brier']:.3f}; {sure}; "
              f"interval coverage of a new campaign: 80% -> {r['coverage80']:.0%}, 95% -> {r['coverage95']:.0%}")
    if json_out is not None:
        from slicebudget.io.atomic import atomic_write

        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"calibration: {json_out}")
