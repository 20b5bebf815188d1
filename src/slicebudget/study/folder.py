"""The study folder: its layout, its lock, its dataset, its resolved config, and the run folders
only the driver writes.

Study folder layout::

    STUDY_DIR/
      .lock                 fcntl lock held by the running `budget-study run` (pid inside)
      study.sqlite          the store (one row per run, see slicebudget.study.store)
      config.resolved.yaml  the validated config with the dataset resolved, and the split used
      data/phantom-<hash>/  a generated phantom dataset (when the config asks for one)
      runs/<run_id>/        results.csv, selection.json, run.json of finished runs (model.pt, nmsw.pt
                            only with ``checkpoints``)
      adapted/              the study's adapted sli2vol model (``model: adapt``), made by the driver
      logs/<run_id>.txt     the traceback of a run's last failure
      report.html, summary.json, ...   written by slicebudget.report

Resume: the same command skips finished runs. Rows left 'running' by a runner that died (even by
SIGKILL: the OS drops its lock) go back to 'pending'; failed runs rerun only with ``retry_failed``.
Ctrl-C puts the interrupted runs back to 'pending'.

Only the process holding the lock (the driver, :func:`slicebudget.study.runner.run_study`) writes
here: a finished run's artefacts are unpacked into ``runs/<run_id>/`` atomically
(:func:`install_product`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.study.config import StudyConfig
from slicebudget.study.executors import RunOutcome
from slicebudget.study.grid import DatasetInfo, short_hash

LOCK_NAME = ".lock"
RESOLVED_CONFIG = "config.resolved.yaml"
DEFAULT_OUT_ROOT = "studies-out"


class StudyLock:
    """An exclusive ``fcntl.flock`` on ``STUDY_DIR/.lock``. The OS releases it when the process dies,
    so a killed runner never leaves a stale lock; a second runner is refused with a clear line."""

    def __init__(self, study_dir: str | Path):
        self.path = Path(study_dir) / LOCK_NAME
        self._handle = None

    def acquire(self) -> StudyLock:
        try:
            handle = open(self.path, "a+")
        except OSError as exc:
            raise UserError(f"cannot create the study lock: {exc.strerror}", self.path.parent) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"study folder is in use by another `budget-study run` ({holder}); "
                            "wait for it to finish or stop it first", self.path.parent) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(study_dir: str | Path) -> str | None:
    """Who runs the study now ("pid N on host"), or None when nobody holds its lock."""
    path = Path(study_dir) / LOCK_NAME
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def default_study_dir(config_path: str | Path) -> Path:
    """``./studies-out/<yaml stem>`` under the current folder (outputs stay out of the source tree)."""
    return Path.cwd() / DEFAULT_OUT_ROOT / Path(config_path).stem


def resolve_dataset(config: StudyConfig, config_path: Path, study_dir: Path, override: str | Path | None,
                    on_status: Callable[[str], None]) -> Path:
    """The dataset folder: ``override``, else the config's path (relative to the YAML file), else
    the config's phantom, generated into the study folder when absent."""
    if override is not None:
        path = Path(override).resolve()
    elif isinstance(config.dataset, str):
        path = (config_path.parent / config.dataset).resolve()
    else:
        from slicebudget.data.phantoms import write_phantom_dataset

        spec = config.dataset.phantom
        path = study_dir / "data" / f"phantom-{spec.task}-{short_hash(spec.model_dump(mode='json'), 8)}"
        if not (path / "dataset.json").exists():
            on_status(f"generating the {spec.task} phantom ({spec.cases} + {spec.test_cases} cases) into {path}")
            write_phantom_dataset(path, spec.task, cases=spec.cases, seed=spec.seed, shape=spec.shape,
                                  spacing=spec.spacing, test_cases=spec.test_cases, overwrite=True)
        return path
    if not path.exists():
        raise UserError("dataset folder not found", path)
    return path


def write_resolved_config(study_dir: Path, config: StudyConfig, config_path: Path, dataset_path: Path,
                           info: DatasetInfo, n_runs: int) -> None:
    import yaml

    from slicebudget.io import atomic_write

    resolved = {
        **config.model_dump(mode="json"),
        "resolved": {
            "config_file": str(config_path.resolve()),
            "dataset_path": str(dataset_path),
            "dataset_fingerprint": info.fingerprint,
            "train_cases": list(info.train_ids),
            "test_cases": list(info.test_ids),
            "test_source": info.test_source,
            "runs": n_runs,
        },
    }
    with atomic_write(study_dir / RESOLVED_CONFIG) as tmp:
        tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))


def install_product(study_dir: Path, run_id: str, outcome: RunOutcome) -> None:
    """Unpack a finished run's artefacts into ``runs/<run_id>/`` atomically (replacing leftovers)."""
    from slicebudget.io import atomic_dir

    with atomic_dir(study_dir / "runs" / run_id, overwrite=True) as tmp:
        outcome.product.write_into(tmp)


def clean_temporaries(runs_dir: Path) -> None:
    """Half-written run folders of a runner that died (we hold the lock: nobody else writes them)."""
    if runs_dir.exists():
        for leftover in runs_dir.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in runs_dir.glob(".old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
