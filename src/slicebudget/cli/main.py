"""Entry point of `budget-study`: registers the command modules and turns user errors into one line."""

from __future__ import annotations

import sys

import typer
import typer.main

from slicebudget.cli.app import app
from slicebudget.errors import UserError

# Importing a command module registers its commands on the apps in slicebudget.cli.app.
from slicebudget.cli import data_cmds, design_cmds, efficient_cmds, inference_cmds, models_cmds, plan_cmds, propagation_cmds, report_cmds, selection_cmds, study_cmds  # noqa: E402,F401

try:  # typer vendors click as typer._click; its usage errors are not click's own classes
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - a typer that uses click itself
    from click.exceptions import ClickException


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    debug = False
    try:
        # Parse first, so that the root's declared --debug option is known when a command fails.
        with command.make_context("budget-study", argv) as ctx:
            debug = bool(ctx.params.get("debug"))
            result = command.invoke(ctx)
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:  # --help, and commands that exit with a code
        return exc.exit_code
    except ClickException as exc:  # unknown options, missing arguments, bad values
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except (typer.Abort, EOFError):
        print("aborted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
