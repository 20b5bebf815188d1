"""`budget-study select`, `budget-study sparsify` and `budget-study bench selection`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicebudget.cli.app import app, bench_app
from slicebudget.errors import UserError

POLICY_HELP = "Slice policy: fixed (every n-th slice), random, or coreset (greedy k-center on slice features)."
FEATURES_HELP = "Coreset features: intensity (downsampled pixels + PCA) or encoder (small conv autoencoder trained on the data)."


def _policy(policy: str, features: str | None):
    from slicebudget.selection import get_policy

    if features is not None and policy != "coreset":
        raise UserError(f"--features applies only to --policy coreset, not {policy!r}")
    return get_policy(policy, **({"features": features} if features is not None else {}))


@app.command("select")
def select(
    image: Path = typer.Argument(..., help="Image file (NIfTI, NRRD or MHA)."),
    policy: str = typer.Option("fixed", "--policy", help=POLICY_HELP),
    density: float | None = typer.Option(None, "--density", help="Share of slices to annotate, in (0, 1]."),
    slices: int | None = typer.Option(None, "--slices", help="Number of slices to annotate."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for random choices."),
    features: str | None = typer.Option(None, "--features", help=FEATURES_HELP),
):
    """Choose slices of one volume to annotate; print them as JSON (slice axis = axis 0, inferior first)."""
    from slicebudget.io import read_volume
    from slicebudget.selection import n_slices_for_density
    from slicebudget.selection.base import check_density

    if (density is None) == (slices is None):
        raise UserError("give exactly one of --density or --slices")
    if density is not None:
        check_density(density)
    chosen_policy = _policy(policy, features)
    volume = read_volume(image)
    n = n_slices_for_density(volume.n_slices, density) if slices is None else slices
    try:
        picked = chosen_policy.select(volume.array, n, seed)
    except UserError as exc:
        raise UserError(exc.message, image) from exc
    print(json.dumps({
        "slices": picked.tolist(),
        "axis": 0,
        "n_slices_total": volume.n_slices,
        "policy": policy,
        "seed": seed,
        "params": {k: v for k, v in chosen_policy.get_params().items() if isinstance(v, (str, int, float))},
    }))


@app.command("sparsify")
def sparsify(
    dataset_dir: Path = typer.Argument(..., help="Densely labelled dataset (nnU-Net v2 raw, MSD or per-patient)."),
    policy: str = typer.Option("fixed", "--policy", help=POLICY_HELP),
    density: float = typer.Option(..., "--density", help="Annotation density rho: share of slices per chosen volume, in (0, 1]."),
    volume_fraction: float = typer.Option(..., "--volume-fraction", help="Volume fraction s: share of volumes annotated, in (0, 1]."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed: the same seed draws the same volumes for every policy."),
    out: Path = typer.Option(..., "--out", help="Output folder (nnU-Net v2 raw layout); must be new or empty."),
    scope: str = typer.Option("volume", "--scope", help="volume (per-volume picks), dataset (pooled), or dataset-quota (pooled, equal share per volume)."),
    features: str | None = typer.Option(None, "--features", help=FEATURES_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty output folder."),
):
    """Write a sparse nnU-Net v2 dataset: unchosen volumes left out, unchosen slices set to the ignore label."""
    from slicebudget.cli.console import progress_bar
    from slicebudget.selection.sparsify import write_sparse_dataset

    chosen_policy = _policy(policy, features)
    with progress_bar() as progress:
        bars = {}

        def on_step(stage: str, case_id: str) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(f"{stage} volumes", total=None)
            progress.advance(bars[stage])

        plan = write_sparse_dataset(dataset_dir, out, chosen_policy, density, volume_fraction, seed,
                                    scope=scope, overwrite=overwrite, on_step=on_step)
    total = sum(plan.n_slices_total[c] for c in plan.chosen)
    print(f"wrote {len(plan.chosen)} of {len(plan.n_slices_total)} drawn volumes with {plan.budget} annotated "
          f"slices ({plan.budget / max(total, 1):.1%} of their slices; {plan.policy}, {plan.scope} scope) to {out}")


@bench_app.command("selection")
def bench_selection(
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    runs: int = typer.Option(3, "--runs", min=3, help="Timed runs per figure (the median is reported), after one warm-up."),
    pool: int = typer.Option(50_000, "--pool", min=1000, help="Slices in the dataset-level pool."),
):
    """Time coreset selection on a 300 x 512 x 512 volume and dataset-level k-center on a large pool."""
    from rich.table import Table

    from slicebudget.cli.console import output_console, status_console
    from slicebudget.io import atomic_write
    from slicebudget.bench.selection import run_selection_bench

    err = status_console()
    with err.status("benchmarking slice selection") as status:
        report = run_selection_bench(runs=runs, pool_size=pool, on_stage=lambda text: status.update(text))
    table = Table(title=f"slice selection ({report['machine']})")
    for column in ("figure", "what is timed", "median", "runs", "target", "met"):
        table.add_column(column, justify="right" if column in ("median", "target") else "left")
    for row in report["rows"]:
        target = "-" if row["target_s"] is None else f"<= {row['target_s']:g} s"
        met = "-" if row["target_s"] is None else ("yes" if row["met"] else "NO")
        table.add_row(row["name"], row["what"], _seconds(row["median_s"]),
                      ", ".join(_seconds(t) for t in row["runs_s"]), target, met)
    console = output_console()
    console.print(table)
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")


def _seconds(value: float) -> str:
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"
