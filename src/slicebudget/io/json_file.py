"""Reading a JSON file the user pointed at: one line naming the file when it is missing or broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slicebudget.errors import UserError


def read_json(path: str | Path, missing: str = "file not found", missing_path: str | Path | None = None) -> Any:
    """The parsed content of ``path``; UserError ``missing`` (naming ``missing_path``, default the
    file) when it does not exist, ``invalid JSON (... at line N)`` when it does not parse, ``cannot read
    it as JSON`` when it is a folder, unreadable or not text."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(missing, path if missing_path is None else missing_path) from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path) from exc
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, binary content
        raise UserError(f"cannot read it as JSON ({exc.strerror if isinstance(exc, OSError) else exc.reason})",
                        path) from exc
