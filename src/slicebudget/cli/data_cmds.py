"""`budget-study data phantom` and `budget-study data check`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from slicebudget.cli.app import data_app
from slicebudget.errors import UserError


def parse_triple(text: str, kind: type, option: str) -> tuple:
    """``"32,96,96"`` -> ``(32, 96, 96)``; a UserError naming the option otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{option} takes three comma-separated {kind.__name__} values (slice axis first), got {text!r}")
    return values


@data_app.command("phantom")
def phantom(
    task: str = typer.Option("organ", "--task", help="organ (LiTS/DBC-like), lesion (ATLAS-like) or vessel (FGT-like)."),
    cases: int = typer.Option(8, "--cases", min=1, help="Training cases."),
    out: Path = typer.Option(..., "--out", help="Output folder (nnU-Net v2 raw layout); must be new or empty."),
    seed: int = typer.Option(0, "--seed", min=0, help="Case i is drawn from (seed, i) only."),
    shape: str = typer.Option("32,96,96", "--shape", help="Voxels as D,H,W (slice axis first)."),
    spacing: str = typer.Option("2.5,0.8,0.8", "--spacing", help="Millimetres as z,y,x (slice axis first)."),
    test_cases: int = typer.Option(2, "--test-cases", min=0, help="Held-out cases with dense labels (imagesTs/labelsTs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty output folder."),
):
    """Write a procedural phantom dataset as an nnU-Net v2 raw dataset."""
    from slicebudget.cli.console import progress_bar
    from slicebudget.data.phantoms import validate_grid, validate_task, write_phantom_dataset

    shape_t = parse_triple(shape, int, "--shape")
    spacing_t = parse_triple(spacing, float, "--spacing")
    validate_task(task)
    validate_grid(shape_t, spacing_t)
    with progress_bar() as progress:
        bar = progress.add_task(f"{task} phantom", total=cases + test_cases)
        path = write_phantom_dataset(out, task, cases=cases, seed=seed, shape=shape_t, spacing=spacing_t,
                                     test_cases=test_cases, overwrite=overwrite,
                                     on_case=lambda case_id: progress.advance(bar))
    print(f"wrote {cases} training + {test_cases} test {task} phantom cases "
          f"({'x'.join(map(str, shape_t))} voxels, {','.join(map(str, spacing_t))} mm) to {path}")


def _fmt(values, digits: int = 4) -> str:
    return "-" if values is None else "x".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in values)


@data_app.command("check")
def check(
    dataset_dir: Path = typer.Argument(..., help="Dataset folder (nnU-Net v2 raw, MSD or per-patient)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON here."),
):
    """Check a dataset (MIST-style): headers, label values, spacing, normalisation. Exit 1 on fatal problems."""
    from rich import box
    from rich.table import Table

    from slicebudget.cli.console import output_console, progress_bar
    from slicebudget.data.checks import check_dataset
    from slicebudget.io import atomic_write

    console = output_console()
    with progress_bar("checking {task.fields[case]}") as progress:
        bar = progress.add_task("check", total=None, case="")
        report = check_dataset(
            dataset_dir, on_case=lambda case_id, done, total: progress.update(bar, completed=done, total=total, case=case_id))

    if report.cases:
        table = Table(title=f"{report.root} ({report.layout}, {report.modality})", box=box.SIMPLE_HEAD)
        for column in ("case", "split", "shape", "spacing mm", "orient", "header", "labels", "fg bbox", "fg slices", "status"):
            table.add_column(column, no_wrap=column in ("case", "shape", "fg bbox"))
        for c in report.cases:
            bbox = "-" if c.foreground_bbox is None else ",".join(f"{a}:{b}" for a, b in c.foreground_bbox)
            header = "-" if c.header_agrees is None else ("ok" if c.header_agrees else "MISMATCH")
            table.add_row(c.case_id, c.split, _fmt(c.shape), _fmt(c.spacing), c.orientation or "-", header,
                          ",".join(map(str, c.label_values)) or "-", bbox, str(c.foreground_slices),
                          "[red]excluded[/red]" if c.excluded else "ok")
        console.print(table)
    if report.target_spacing is not None:
        console.print(f"target spacing (mm, slice axis first): {_fmt(report.target_spacing, 4)}")
    if report.normalization is not None:
        n = report.normalization
        if n.modality == "ct":
            console.print(f"normalisation: CT window [{n.window[0]:.1f}, {n.window[1]:.1f}], "
                          f"mean {n.mean:.2f}, std {n.std:.2f}")
        else:
            console.print("normalisation: per-image z-score (MR)")
    console.print(f"{len(report.usable_cases)} usable training cases, {len(report.warnings)} warnings, "
                  f"{len(report.fatal)} fatal problems")
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(report.model_dump_json(indent=2) + "\n")
    for issue in report.issues:
        print(issue.line(), file=sys.stderr)
    if not report.ok:
        raise typer.Exit(1)
