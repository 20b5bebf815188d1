"""Entry point of `budget-study`: registers the command modules and turns user errors into one line."""

from __future__ import annotations

import sys

import click

from slicebudget.cli.app import app
from slicebudget.errors import UserError

# Importing a command module registers its commands on the apps in slicebudget.cli.app.
from slicebudget.cli import data_cmds, design_cmds, inference_cmds, models_cmds, plan_cmds, propagation_cmds, report_cmds, selection_cmds, study_cmds  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        # Without standalone mode, click *returns* the code of a `typer.Exit(code)` instead of raising.
        result = app(args=argv, prog_name="budget-study", standalone_mode=False)
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
