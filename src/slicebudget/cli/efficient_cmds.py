"""`budget-study bench efficient`: efficient models against their baselines in one finished study."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import bench_app


@bench_app.command("efficient")
def bench_efficient(
    study: Path = typer.Argument(..., help="A study holding both models of each pair (e.g. efficient-comparison)."),
    pair: list[str] = typer.Option(
        None, "--pair", help="EFFICIENT=BASELINE, model names as the report shows them; repeatable. "
                             "Default: lightmedseg=unet3d and meddanet_v2=unet-resnet34."),
    margin: float = typer.Option(0.02, "--margin", min=0.0, help="IoU the efficient model may lose."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON here."),
):
    """Seconds per run (train, inference; CPU and wall) and the paired IoU difference per model pair."""
    from rich.table import Table

    from slicebudget.bench.efficient import DEFAULT_PAIRS, compare_study, parse_pairs
    from slicebudget.cli.console import output_console
    from slicebudget.io import atomic_write

    rows = compare_study(study, parse_pairs(pair) if pair else DEFAULT_PAIRS, margin)
    table = Table(title=f"efficient models against their baselines ({study})")
    for column in ("efficient / baseline", "paired runs", "train CPU s", "infer CPU s / case", "train s (wall)",
                   "infer s / case (wall)", "IoU", "IoU difference (95% CI)", f"within {margin:g}"):
        table.add_column(column, justify="left" if column.startswith("eff") else "right")

    def cost(row, name, digits):
        c = row["costs"][name]
        if c is None:
            return "-"
        return f"{c['efficient']:.{digits}f} / {c['baseline']:.{digits}f} ({c['ratio']:.1f}x)"

    for row in rows:
        diff = row["iou_diff"]
        ci = "n=1, no interval" if diff["ci"] is None else "{:+.3f} to {:+.3f}".format(*diff["ci"])
        table.add_row(f"{row['efficient']} / {row['baseline']}", str(row["paired_runs"]),
                      cost(row, "cpu_seconds_train", 1), cost(row, "cpu_seconds_infer_per_case", 3),
                      cost(row, "seconds_train", 1), cost(row, "seconds_infer_per_case", 3),
                      f"{row['iou']['efficient']:.3f} / {row['iou']['baseline']:.3f}",
                      f"{diff['mean']:+.3f} ({ci})", "yes" if row["within_margin"] else "no")
    console = output_console()
    console.print(table)
    console.print("ratio = baseline / efficient (above 1: the efficient model is cheaper). IoU difference = "
                  "efficient - baseline per paired run (same cell, repeat, seeds and test cases), 95% t-interval "
                  f"over the paired runs; within {margin:g} when its lower end is at or above -{margin:g}.")
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(rows, indent=2) + "\n")
