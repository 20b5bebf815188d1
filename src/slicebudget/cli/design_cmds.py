"""`budget-study bench design`: adaptive designs replayed against a finished full study."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import bench_app
from slicebudget.errors import UserError


def parse_budgets(text: str | None) -> list[float] | None:
    """``200,400,800`` -> [200.0, 400.0, 800.0]; one UserError line for anything else."""
    if text is None or not text.strip():
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--budgets must be numbers separated by commas, got {text!r}") from None


@bench_app.command("design")
def bench_design_command(
    reference: Path = typer.Option(None, "--reference", help="A finished full study (its folder) to replay against."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Instead: write (once) a synthetic full study here, 4 "
                                                             "densities x 4 volume fractions x 3 repeats from a known "
                                                             "budget surface (slicebudget.bench.planning), and replay "
                                                             "against it."),
    seeds: int = typer.Option(10, "--seeds", min=1, help="Replays, with seeds 0..SEEDS-1."),
    budgets: str = typer.Option(None, "--budgets", help="Target budgets, comma separated (default: three "
                                                         "inside the grid's cell budgets)."),
    unit: str = typer.Option("slices", "--unit", help="slices or hours."),
    max_runs: int = typer.Option(None, "--max-runs", min=1, help="Run limit of each design (default: 30% of "
                                                                  "the grid's runs)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Runs proposed per step (free workers)."),
    stability: int = typer.Option(100, "--stability", min=0, help="Repeat redraws of the full grid behind the "
                                                                  "reference's own stability per budget (0: skip)."),
    json_out: Path = typer.Option(None, "--json", help="Also write every replay as JSON here."),
):
    """Replay adaptive designs against a full study: runs used and regret per target budget."""
    from rich.console import Console

    from slicebudget.bench.design import REGRET_TOLERANCE, SEED_SHARE, bench_replay, reference_runs
    from slicebudget.design.candidates import candidate_from_record, check_budgets, check_run_limit, default_budgets
    from slicebudget.planning.plan import study_costs

    if (reference is None) == (synthetic is None):
        raise UserError("give one of --reference STUDY_DIR (a finished full study) or --synthetic FOLDER")
    if synthetic is not None:
        from slicebudget.bench.planning import synthetic_runs, write_synthetic_study

        if not (synthetic / "study.sqlite").is_file():
            write_synthetic_study(synthetic, synthetic_runs(densities=(0.1, 0.2, 0.3, 0.5),
                                                            fractions=(0.25, 0.5, 0.75, 1.0), repeats=3))
        reference = synthetic
    runs = reference_runs(reference)
    grid = [candidate_from_record(r) for r in runs]
    costs = study_costs(reference, None)
    targets = parse_budgets(budgets) or default_budgets(grid)
    volumes = max(int(r["n_volumes_total"]) for r in runs)
    depth = max(int(round(float(r["slices_per_volume"]) / float(r["density"]))) for r in runs)
    targets = check_budgets(targets, unit, costs, volumes, depth)
    if max_runs is not None:
        check_run_limit(grid, max_runs)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"replaying {seeds} adaptive design(s) against {reference} ({len(runs)} runs); "
                  f"target budgets {', '.join(f'{b:g}' for b in targets)} {unit}")

    def on_seed(replay) -> None:
        regrets = ", ".join(f"{b:g}: {v:+.4f}" for b, v in replay.regret.items())
        random = ", ".join(f"{v:+.4f}" for v in replay.random_regret.values())
        console.print(f"  seed {replay.seed}: {replay.runs_used} runs ({replay.stop}); regret {regrets} "
                      f"(random design: {random})")

    result = bench_replay(runs, targets, unit, costs, seeds, max_runs, batch, str(reference), on_seed, stability)
    summary = result.summary()
    console.print(f"full grid's plans: " + "; ".join(f"{b}: {t}" for b, t in summary["reference_plans"].items()))
    used = summary["runs_used"]
    console.print(f"runs used: median {used['median']:g} of {result.grid_runs} ({used['share_of_grid_median']:.0%}), "
                  f"min {used['min']}, max {used['max']}; stops: "
                  + ", ".join(f"{k} {v}" for k, v in summary["stops"].items()))
    for budget, row in summary["regret"].items():
        console.print(f"  budget {budget} {unit}: regret median {row['median']:.4f}, 90th pct {row['p90']:.4f}, "
                      f"max {row['max']:.4f}; within {REGRET_TOLERANCE} in {row['within_tolerance']}/{seeds} seeds; "
                      f"same plan in {row['same_plan']}/{seeds}; random design with as many runs: median "
                      f"{row['random_median']:.4f}, within {REGRET_TOLERANCE} in {row['random_within_tolerance']}/{seeds}")
    if result.stability:
        console.print(f"the full grid's own plan, refitted (form choice included) on {stability} copies with its "
                      f"repeats redrawn: within {REGRET_TOLERANCE} of itself in "
                      + ", ".join(f"{b:g}: {v:.0%}" for b, v in result.stability.items()))
        shaky = [f"{b:g}" for b, v in result.stability.items() if v < SEED_SHARE]
        if shaky:
            console.print(f"  at {', '.join(shaky)} {unit} the full grid's plan is not settled by its own runs (below "
                          f"{SEED_SHARE:.0%}): a design of fewer of its runs is not expected to reach it more often")
    cal = summary["calibration"]
    console.print(f"stop rule's calibration: P >= 0.9 said at {cal['said_settled']} of {cal['of']} (seed, budget) "
                  f"pairs; there the plan was the full grid's in {cal['same_plan']} and within {REGRET_TOLERANCE} "
                  f"of it in {cal['within_tolerance']}")
    console.print(f"target ({summary['target']}): {summary['seeds_met']}/{seeds} seeds -> "
                  f"{'MET' if summary['target_met'] else 'NOT MET'} (the paired random designs: "
                  f"{summary['random_seeds_met']}/{seeds})")
    if json_out is not None:
        from slicebudget.io.atomic import atomic_write

        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(result.as_dict(), indent=1, default=str) + "\n", encoding="utf-8")
        console.print(f"replays: {json_out}")
