"""The rich set-up every command shares: where tables go, where progress goes, and what a bar shows.

Imported inside commands only (rich is not needed for ``--help``).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def output_console() -> Console:
    """stdout for results and tables; in logs and pipes 160 columns wide, so a table is not squeezed
    into 80."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def status_console() -> Console:
    """stderr, for progress and status lines that are not the command's result."""
    return Console(stderr=True)


def progress_bar(text: str = "{task.description}") -> Progress:
    """A progress bar on stderr: ``text``, the bar, done/total, time elapsed and the ETA. It clears
    itself when done and stays silent when stderr is not a terminal (logs get the result only)."""
    console = status_console()
    return Progress(TextColumn(text), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)
