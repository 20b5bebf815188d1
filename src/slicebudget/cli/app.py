"""The typer apps that command modules attach to.

Command modules import heavy libraries (torch, SimpleITK) inside their functions, so that
`budget-study --help` starts instantly.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="budget-study",
    help="Plan annotation budgets and choose slices to annotate in CT and MRI segmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate phantom datasets and check datasets.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
propagation_app = typer.Typer(help="Train, calibrate and steer the learned mask propagator (next best slice).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(propagation_app, name="propagation")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")):
    """Plan annotation budgets and choose slices to annotate in CT and MRI segmentation."""
    # `cli.main` reads the parsed value from the click context; nothing to do here.
