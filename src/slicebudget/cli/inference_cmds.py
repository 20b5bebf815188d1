"""`budget-study bench inference`: NMSW and random-foreground patches against a tuned sliding window."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import bench_app
from slicebudget.errors import UserError


def parse_ks(text: str | None) -> list[int] | None:
    """``"3,5"`` -> [3, 5]; one line naming the value when it is not a list of whole numbers >= 1."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"--k takes whole numbers of patches >= 1, comma separated, got {text!r}")
    return values


@bench_app.command("inference")
def bench_inference(
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    task: str = typer.Option(
        "organ", "--task",
        help="Phantom task: organ (one large structure), lesion (small lesions, several per volume) or vessel "
             "(a thin tree): on lesion and vessel, where the K patches go decides what is found.",
    ),
    iterations: int = typer.Option(
        100, "--iterations", min=1,
        help="NMSW training iterations (whole volumes); the backbone gets three patch iterations per NMSW one.",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Cache of the trained model: loaded when it exists, else trained and saved here."
    ),
    threads: int = typer.Option(
        1, "--threads", min=1, help="torch threads for training and every timed run (one is fastest on a busy box)."
    ),
    runs: int = typer.Option(3, "--runs", min=3, help="Timed runs per row (the median is reported), after one warm-up."),
    k: str | None = typer.Option(
        None, "--k", help="K values of the NMSW and RF rows, comma separated (default: 3, 5, 10, 15% of N and N).",
    ),
):
    """Time, count MACs, measure peak memory and score Dice of SW, NMSW and RF on phantom volumes."""
    from rich.table import Table

    from slicebudget.cli.console import output_console, status_console

    from slicebudget.data.phantoms import validate_task
    from slicebudget.bench.inference import run_inference_bench, speed_seconds, target_checks
    from slicebudget.bench.inference_methods import BenchSetup
    from slicebudget.models.nmsw.patches import patch_grid
    from slicebudget.io import atomic_write

    setup = BenchSetup(task=validate_task(task))
    if checkpoint is not None and checkpoint.exists() and not checkpoint.is_file():
        raise UserError("--checkpoint must be a file", checkpoint)
    err = status_console()
    grid = patch_grid(setup.volume_shape, setup.patch_size)
    err.print(f"volume {setup.volume_shape}, patch {setup.patch_size}, overlap 0.5: "
              f"N = {' x '.join(map(str, grid.grid_shape))} = {grid.n_patches} patches; {threads} torch thread(s)")
    with err.status("benchmarking inference") as status:
        report = run_inference_bench(setup, iterations, checkpoint, threads, runs, on_stage=status.update,
                                     ks=parse_ks(k))
    n = report["n_patches"]
    sw = next(r for r in report["rows"] if r["method"] == "sw")
    table = Table(title=f"inference on {task} phantoms ({n} patches; SW batch size {report['sw_batch_size']})")
    for column in ("method", "K", "K/N", "median s", "median CPU s", "speed-up (CPU)", "GMACs", "MAC saving", "peak MB", "Dice", "Dice 95% CI"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in report["rows"]:
        k = row["k"]
        table.add_row(row["method"], "-" if k is None else str(k), "-" if k is None else f"{k / n:.1%}",
                      f"{row['seconds']:.3f}", f"{speed_seconds(row):.3f}", f"{speed_seconds(sw) / speed_seconds(row):.1f}x", f"{row['macs'] / 1e9:.2f}",
                      f"{1 - row['macs'] / sw['macs']:.1%}", f"{row['peak_mb']:.0f}", f"{row['dice']:.3f}",
                      "-" if not row.get("dice_ci") else "{:.3f} to {:.3f}".format(*row["dice_ci"]))
    console = output_console()
    console.print(table)
    console.print("MACs = FLOPs / 2 from torch's FlopCounterMode (convolutions and matrix products only); peak MB = "
                  "RSS high-water mark above the pre-run RSS in a fresh process per method.")
    n_volumes = len(report["test_seeds"])
    for pair in report["paired"]:
        interval = "n=1, no interval" if pair["ci"] is None else "95% CI {:+.3f} to {:+.3f}".format(*pair["ci"])
        console.print(f"NMSW - RF Dice at K={pair['k']} ({pair['k'] / n:.1%} of N): {pair['diff']:+.3f} "
                      f"({interval}, paired over {n_volumes} test volumes)")
    for text, met in target_checks(report):
        console.print(f"  [{'green' if met else 'red'}]{'met' if met else 'NOT met'}[/]  {text}")
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
