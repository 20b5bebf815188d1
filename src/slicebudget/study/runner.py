"""Run a whole study: lock the folder, expand the grid, execute what is not done, then call the
report writer the caller hands in (the CLI passes ``slicebudget.report.write_report``; the study
package sits below the report and never imports it).

The study folder (layout, lock, run folders) is described in :mod:`slicebudget.study.folder`.

Only this process (the driver) writes the study folder: a run, in-process or on a Dask worker, hands
back a :class:`~slicebudget.study.product.RunProduct` and the driver unpacks it into
``runs/<run_id>/`` atomically. Files a run reads besides the dataset travel with its task (see
:func:`~slicebudget.study.tasks.worker_task`), so a worker needs read access to the dataset folder and nothing else.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.study.config import load_config
from slicebudget.study.executors import ExecuteFn, RunOutcome, RunTask, make_executor
from slicebudget.study.folder import (
    StudyLock,
    clean_temporaries,
    default_study_dir,
    install_product,
    resolve_dataset,
    write_resolved_config,
)
from slicebudget.study.grid import DatasetInfo, check_feasible, describe_dataset, expand_grid
from slicebudget.study.store import StudyStore
from slicebudget.study.tasks import adapt_if_asked, worker_task

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
        write_resolved_config(study_dir, config, config_path, dataset_path, info, len(runs))
        with StudyStore(study_dir, create=True) as store:
            store.sync_grid(runs)
            store.set_meta("config", config.model_dump(mode="json"))
            store.set_meta("dataset_path", str(dataset_path))
            interrupted = store.reset_interrupted()
            if interrupted:
                view.status(f"{interrupted} run(s) were cut off earlier and will run again")
            if retry_failed:
                store.reset_failed()
            clean_temporaries(study_dir / "runs")
            if design is not None:
                design(store, info, set(), 0)  # no worker free: checks its settings before any progress shows
            adapted = adapt_if_asked(store.runs(status="pending"), study_dir, dataset_path, view)
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
        install_product(study_dir, result.run_id, result)
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
