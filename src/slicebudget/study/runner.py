"""Run a whole study: lock the folder, expand the grid, execute what is not done, then call the
report writer the caller hands in (the CLI passes ``slicebudget.report.write_report``; the study
package sits below the report and never imports it).

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

Only this process (the driver) writes the study folder: a run, in-process or on a Dask worker, hands
back a :class:`~slicebudget.study.product.RunProduct` and the driver unpacks it into
``runs/<run_id>/`` atomically. Files a run reads besides the dataset travel with its task (see
:func:`worker_task`), so a worker needs read access to the dataset folder and nothing else.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.study.config import StudyConfig, load_config
from slicebudget.study.executors import ExecuteFn, RunOutcome, RunTask, make_executor
from slicebudget.study.product import INPUT_PREFIX, pack
from slicebudget.study.grid import DatasetInfo, check_feasible, describe_dataset, expand_grid, short_hash
from slicebudget.study.store import StudyStore

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


def _write_resolved_config(study_dir: Path, config: StudyConfig, config_path: Path, dataset_path: Path,
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


@dataclass
class StudyOutcome:
    study_dir: Path
    counts: dict[str, int]
    executed: int = 0
    failed_now: list[str] = field(default_factory=list)
    seconds: float = 0.0
    estimate: object = None  # the StudyEstimate printed before the runs (None when nothing ran)
    run_seconds: float = 0.0  # wall time of the runs alone (what the estimate predicts)


def _default_execute(checkpoints: bool = False) -> ExecuteFn:
    import functools

    from slicebudget.study.execute_run import execute_run

    return functools.partial(execute_run, checkpoints=True) if checkpoints else execute_run


def _read_input(path: Path, what: str) -> bytes:
    try:
        return pack(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read the {what}: {exc.strerror}", path) from exc


def worker_task(record: dict, config_path: Path, dataset_path: Path, adapted: Path | None = None) -> RunTask:
    """The task a worker gets for a stored run: its spec, with every file it reads besides the dataset
    (a model's ``weights_path`` relative to the config, a sli2vol model file, the study's adapted
    model ``adapted``) shipped as an input and named ``@input/<name>`` (neither is part of the id)."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.study.adapt import ADAPT
    from slicebudget.study.choices import OFF

    spec, inputs = record["spec"], {}
    weights = spec["model"].get("weights_path")
    if weights:
        path = (config_path.parent / weights).resolve()
        inputs["weights" + "".join(path.suffixes)] = _read_input(path, "model weights")
        spec = {**spec, "model": {**spec["model"], "weights_path": INPUT_PREFIX + "weights" + "".join(path.suffixes)}}
    if spec["interpolation"] != OFF:
        method, params = parse_method_spec(spec["interpolation"])
        if "model" in params:
            path = adapted if params["model"] == ADAPT else Path(params["model"]).resolve()
            inputs["propagation.pt"] = _read_input(path, "propagation model")
            params["model"] = INPUT_PREFIX + "propagation.pt"
            spec = {**spec, "interpolation": ":".join([method, *(f"{k}={v}" for k, v in params.items())])}
    return RunTask(record["run_id"], spec, str(dataset_path), inputs)


def _adapt_if_asked(records: list[dict], study_dir: Path, dataset_path: Path, view) -> Path | None:
    """The study's adapted sli2vol model, made here in the driver before any run that asks for it
    (``model: adapt``) is dispatched; None when no pending run asks."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.study.adapt import ADAPT, adapted_model
    from slicebudget.study.choices import OFF
    from slicebudget.study.execute_run import PROCESS_CACHE
    from slicebudget.study.run_spec import RunSpec

    wanting = [r for r in records if r["spec"]["interpolation"] != OFF
               and parse_method_spec(r["spec"]["interpolation"])[1].get("model") == ADAPT]
    if not wanting:
        return None
    spec = RunSpec.of(wanting[0]["spec"])
    prepared = PROCESS_CACHE.get(dataset_path, spec)
    view.status("adapting the sli2vol model to the study's training images (once per study)")
    return adapted_model(study_dir, lambda c: prepared.case(c).image[0], spec.split.train,
                         spec.dataset.fingerprint, len(prepared.normalizations), spec.training.device)


def _estimate(store: StudyStore, config_path: Path, dataset_path: Path, adapted: Path | None, runner,
              parallel: int, view):
    """Time a short probe of each model on the real data and tell the view the study's wall time."""
    from slicebudget.study.estimate import estimate_study
    from slicebudget.study.executors import run_task

    tasks = [worker_task(r, config_path, dataset_path, adapted) for r in store.runs(status="pending")]
    if not tasks:
        return None
    view.status("timing probe: a few training iterations and one inference per model on the real data")
    estimate = estimate_study(tasks, parallel,
                              lambda task, on_progress: run_task(task, runner.execute, on_progress, runner.torch_threads))
    if estimate is not None:
        view.estimate(estimate)
        store.set_meta("estimate", {"runs": estimate.runs, "parallel": estimate.parallel, "seconds": estimate.seconds,
                                    "probe_seconds": estimate.probe_seconds})
    return estimate


def _install_product(study_dir: Path, run_id: str, outcome: RunOutcome) -> None:
    """Unpack a finished run's artefacts into ``runs/<run_id>/`` atomically (replacing leftovers)."""
    from slicebudget.io import atomic_dir

    with atomic_dir(study_dir / "runs" / run_id, overwrite=True) as tmp:
        outcome.product.write_into(tmp)


def run_study(
    config_path: str | Path,
    study_dir: str | Path | None = None,
    dataset: str | Path | None = None,
    executor: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    retry_failed: bool = False,
    threads: int | None = None,
    checkpoints: bool = False,
    execute: ExecuteFn | None = None,
    write_report: Callable[[Path], object] | None = None,
    view=None,
    design: Callable[[StudyStore, DatasetInfo, set[str], int], list[str]] | None = None,
) -> StudyOutcome:
    """Run (or resume) the study of ``config_path``; see the module docstring.

    ``execute`` replaces :func:`slicebudget.study.execute_run.execute_run` (tests inject a fake);
    ``checkpoints``: keep each run's trained weights (model.pt, nmsw.pt) in its folder; off by
    default, since they are most of what a run ships back and nothing downstream reads them;
    ``write_report(study_dir)`` runs at the end, still under the study lock (None: no report);
    ``view`` gets progress events (see ``cli.study_cmds``).
    ``threads``: torch threads per run (None: torch's default in-process, 1 per Dask worker); CPU
    metrics are bit-identical between executors at equal thread counts.
    ``design``: an adaptive design (slicebudget.design): ``design(store, info, busy, free)`` is asked
    whenever ``free`` workers wait, with the runs in flight (``busy``), and names the pending runs
    to do next; an empty answer with nothing in flight ends the study (the rest stays pending).
    """
    from slicebudget.study.progress import SilentView

    view = view or SilentView()
    runner = make_executor(executor, execute or _default_execute(checkpoints), workers, scheduler, threads)
    config_path = Path(config_path)
    config = load_config(config_path)
    study_dir = Path(study_dir) if study_dir is not None else default_study_dir(config_path)
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the study folder: {exc.strerror}", study_dir) from exc
    started = time.perf_counter()
    parallel = runner.parallel()  # connects to a --scheduler now: one that does not answer is told first
    if dataset is None and not isinstance(config.dataset, str):  # refuse before generating a phantom
        phantom = config.dataset.phantom
        check_feasible(config, phantom.cases, phantom.shape[0], config_path)
    with StudyLock(study_dir):
        dataset_path = resolve_dataset(config, config_path, study_dir, dataset, view.status)
        info = describe_dataset(dataset_path, config.test_fraction, config.seed)
        try:
            runs = expand_grid(config, info)
        except UserError as exc:  # name the config, not the dataset, for grid problems
            raise UserError(exc.message, exc.path or config_path) from exc
        _write_resolved_config(study_dir, config, config_path, dataset_path, info, len(runs))
        with StudyStore(study_dir, create=True) as store:
            store.sync_grid(runs)
            store.set_meta("config", config.model_dump(mode="json"))
            store.set_meta("dataset_path", str(dataset_path))
            interrupted = store.reset_interrupted()
            if interrupted:
                view.status(f"{interrupted} run(s) were cut off earlier and will run again")
            if retry_failed:
                store.reset_failed()
            _clean_temporaries(study_dir / "runs")
            if design is not None:
                design(store, info, set(), 0)  # no worker free: checks its settings before any progress shows
            adapted = _adapt_if_asked(store.runs(status="pending"), study_dir, dataset_path, view)
            estimate = None
            if execute is None:  # a real study (a fake ``execute`` in tests has nothing worth timing)
                estimate = _estimate(store, config_path, dataset_path, adapted, runner, parallel, view)
            outcome = _execute_pending(store, study_dir, config_path, dataset_path, adapted, runner, view,
                                       None if design is None else (lambda busy, free: design(store, info, busy, free)))
            outcome.counts = store.counts()
            outcome.estimate = estimate
        outcome.seconds = time.perf_counter() - started
        if write_report is not None:  # under the lock: no second runner rewrites it meanwhile
            view.status("writing the report")
            write_report(study_dir)
    return outcome


def _clean_temporaries(runs_dir: Path) -> None:
    """Half-written run folders of a runner that died (we hold the lock: nobody else writes them)."""
    if runs_dir.exists():
        for leftover in runs_dir.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in runs_dir.glob(".old-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _execute_pending(store: StudyStore, study_dir: Path, config_path: Path, dataset_path: Path,
                     adapted: Path | None, runner, view, design: Callable[[set[str], int], list[str]] | None = None) -> StudyOutcome:
    runs_dir = study_dir / "runs"
    try:
        runs_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the runs folder: {exc.strerror}", runs_dir) from exc
    records = {r["run_id"]: r for r in store.runs()}

    def task_for(r: dict) -> RunTask:
        return worker_task(r, config_path, dataset_path, adapted)

    tasks = [task_for(r) for r in store.runs(status="pending")] if design is None else []
    refill = None
    if design is not None:
        def refill(free: int) -> list[RunTask]:
            pending = {r["run_id"]: r for r in store.runs(status="pending")}
            chosen = [task_for(pending[i]) for i in design(set(in_flight), free) if i in pending]
            return chosen

    owner = f"pid {os.getpid()} on {socket.gethostname()}"
    outcome = StudyOutcome(study_dir, store.counts())
    in_flight: set[str] = set()
    done_before = sum(1 for r in records.values() if r["status"] == "done")
    view.begin(total=len(records), done=done_before, failed=sum(r["status"] == "failed" for r in records.values()))

    def on_start(task: RunTask) -> None:
        store.mark_running(task.run_id, owner)
        in_flight.add(task.run_id)
        view.started(records[task.run_id])

    def on_progress(run_id: str, info: dict) -> None:
        view.progress(records[run_id], info)

    started = time.perf_counter()
    stream = runner.run(tasks, on_start, on_progress, refill) if refill is not None else runner.run(
        tasks, on_start, on_progress)
    try:
        for result in stream:
            _record_outcome(store, study_dir, result)
            in_flight.discard(result.run_id)
            outcome.executed += 1
            if not result.ok:
                outcome.failed_now.append(result.run_id)
            view.finished(records[result.run_id], result)
    finally:
        # Ctrl-C, a fatal disk error or a crash of the driver: nothing is left marked 'running'.
        stream.close()  # stops a Dask cluster now, not whenever the generator is collected
        for run_id in in_flight:
            try:
                store.mark_pending(run_id)
            except UserError:
                pass  # the store itself is what failed; the next runner resets the row anyway
        view.end()
    outcome.run_seconds = time.perf_counter() - started
    return outcome


def _record_outcome(store: StudyStore, study_dir: Path, result: RunOutcome) -> None:
    if result.ok:
        _install_product(study_dir, result.run_id, result)
        store.mark_done(result.run_id, result.product.result)
        return
    if result.fatal:
        store.mark_pending(result.run_id)
        raise UserError(result.error, study_dir)
    store.mark_failed(result.run_id, result.error)
    if result.details:
        try:
            (study_dir / "logs").mkdir(exist_ok=True)
            (study_dir / "logs" / f"{result.run_id}.txt").write_text(result.details)
        except OSError:
            pass  # the error text is in the store already; the traceback is a convenience
