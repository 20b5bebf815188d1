"""The one exception type that reaches users as a single line."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, worded for the user.

    The CLI prints it as one line (``error: <path>: <message>``) and exits non-zero;
    the traceback is shown only with ``--debug``.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
