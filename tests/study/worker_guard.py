"""Preloaded into the test cluster's `dask worker` processes (``--preload``): refuses, and logs, every
file access under the folders named in ``SLICEBUDGET_TEST_FORBID`` (os.pathsep separated).

The tests run as whatever user CI uses (often root, which file permissions do not stop), so an audit
hook stands in for "this worker cannot see that folder": it catches Python-level opens, listings,
renames and removals. The log lands in the worker's own working folder; a test that finds it there
knows the worker touched a forbidden folder.
"""

import os
import sys

FORBIDDEN = [os.path.realpath(p) for p in os.environ.get("SLICEBUDGET_TEST_FORBID", "").split(os.pathsep) if p]
LOG = os.path.join(os.getcwd(), "forbidden-access.log")
ONE_PATH = {"open", "os.mkdir", "os.remove", "os.rmdir", "os.listdir", "os.scandir", "shutil.rmtree",
            "os.chmod", "os.truncate", "os.utime"}
TWO_PATHS = {"os.rename", "os.replace", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"}


def _forbidden(path) -> str | None:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return None  # a file descriptor
    real = os.path.realpath(os.fsdecode(path))
    return real if any(real == f or real.startswith(f + os.sep) for f in FORBIDDEN) else None


def _hook(event: str, args: tuple) -> None:
    if event in ONE_PATH:
        paths = args[:1]
    elif event in TWO_PATHS:
        paths = args[:2]
    else:
        return
    for path in paths:
        real = _forbidden(path)
        if real is not None:
            with open(LOG, "a") as log:
                log.write(f"{event} {real}\n")
            raise PermissionError(13, "Permission denied", real)


if FORBIDDEN:
    sys.addaudithook(_hook)
