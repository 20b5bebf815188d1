"""`budget-study bench models`: parameters, FLOPs and CPU forward time of every registered model,
and (``--meddanet``) Med-DANet V2's dynamic-versus-static compute and Dice on organ phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import bench_app


@bench_app.command("models")
def bench_models_command(
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON to this file."),
    models: list[str] | None = typer.Option(None, "--model", "-m", help="Only these models (repeatable)."),
    repeats: int = typer.Option(3, min=1, help="Timed forward passes per model (median reported)."),
    warmup: int = typer.Option(1, min=0, help="Untimed forward passes before timing."),
    threads: int = typer.Option(2, min=1, help="torch CPU threads during timing."),
    meddanet: bool = typer.Option(False, "--meddanet", help="Also train Med-DANet V2 briefly and compare dynamic vs static."),
    meddanet_only: bool = typer.Option(False, "--meddanet-only", help="Only the Med-DANet V2 comparison."),
    slice_size: int = typer.Option(48, min=32, help="Med-DANet V2 benchmark: phantom slice size (pixels)."),
    crop_size: int = typer.Option(32, min=16, help="Med-DANet V2 benchmark: crop window (multiple of 16)."),
    steps: str = typer.Option("40,80,20,10", help="Med-DANet V2 benchmark: training steps per phase."),
    seed: int = typer.Option(0, help="Seed for weights, phantoms and training."),
) -> None:
    """Measure every registered model at a standard input (2D 1x1x256x256, 3D 1x4x128^3)."""
    from slicebudget.cli.console import output_console, progress_bar
    from slicebudget.errors import UserError
    from slicebudget.bench.models import bench_meddanet, bench_models

    console = output_console()
    try:
        phase_steps = tuple(int(s) for s in steps.split(","))
    except ValueError:
        raise UserError(f"--steps must be comma-separated integers, got {steps!r}") from None
    result: dict = {}
    if not meddanet_only:
        with progress_bar() as progress:
            names = models or None
            from slicebudget.models.registry import MODEL_REGISTRY

            task = progress.add_task("benchmarking", total=len(names or MODEL_REGISTRY))

            def on_model(name: str) -> None:
                progress.update(task, description=f"benchmarking {name}")

            records = []
            for name in names or list(MODEL_REGISTRY):
                records.extend(bench_models([name], repeats=repeats, warmup=warmup, threads=threads, on_model=on_model))
                progress.advance(task)
        result["models"] = records
        console.print(_models_table(records))
    if meddanet or meddanet_only:
        total = sum(phase_steps)
        with progress_bar() as progress:
            task = progress.add_task("training Med-DANet V2", total=total)

            def on_progress(record: dict) -> None:
                progress.update(task, advance=1, description=(
                    f"Med-DANet V2 phase {record['phase']} loss {record['loss']:.3f} "
                    f"cost {record['relative_cost']:.2f}"))

            result["meddanet_v2"] = bench_meddanet(
                slice_size=slice_size, crop_size=crop_size, phase_steps=phase_steps, seed=seed,
                threads=threads, on_progress=on_progress,
            )
        console.print(_meddanet_table(result["meddanet_v2"]))
    if json_out is not None:
        from slicebudget.io.atomic import atomic_write

        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {json_out}")


def _models_table(records: list[dict]):
    from rich.table import Table

    table = Table(title="Registered models (FLOPs: FlopCounterMode, 2 per MAC)")
    for column in ("model", "dims", "input", "classes", "params (M)", "GFLOPs", "GMACs", "CPU forward (ms)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in records:
        table.add_row(
            r["name"], str(r["dims"]), "x".join(map(str, r["input_shape"])), str(r["classes"]),
            f"{r['params'] / 1e6:.3f}", f"{r['flops'] / 1e9:.2f}", f"{r['flops'] / 2e9:.2f}",
            f"{r['cpu_forward_ms']:.0f}",
        )
    return table


def _meddanet_table(report: dict):
    from rich.table import Table

    table = Table(title=(
        f"Med-DANet V2 on organ phantoms ({report['test_slices']} test slices of {report['slice_size']}^2, "
        f"{report['empty_slice_share']:.0%} empty; trained {report['train_seconds']:.0f} s)"))
    for column in ("run", "Dice", "GFLOPs/slice", "bit-weighted GFLOPs/slice", "skip / full / crop"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name in ("static", "dynamic"):
        r = report[name]
        share = r["choice_share"]
        table.add_row(
            name, f"{r['dice']:.3f}", f"{r['measured_gflops_per_slice']:.4f}", f"{r['bit_gflops_per_slice']:.4f}",
            f"{share['skip']:.0%} / {share['full']:.0%} / {share['crop']:.0%}",
        )
    table.caption = (
        f"compute reduction {report['compute_reduction']:.2f}x "
        f"(bit-weighted {report['bit_weighted_compute_reduction']:.2f}x), "
        f"Dice difference {report['dice_difference']:+.3f}"
    )
    return table
