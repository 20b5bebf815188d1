"""Where runs execute: in this process, or on Dask workers (a LocalCluster or an existing scheduler).

An executor takes :class:`RunTask` objects and yields :class:`RunOutcome` objects as runs finish.
Both executors run a task the same way, :func:`run_task`: the run writes into a private scratch
folder (the worker's temporary folder, never the study folder) and its artefacts come back inside
the outcome as a :class:`~slicebudget.study.product.RunProduct`; on Dask that is the task's result,
so the artefacts travel through Dask. Only the driver writes the study folder and the store.
Exceptions inside a run become failed outcomes (the study goes on); a full or read-only disk is
marked ``fatal`` so the driver stops with one clear line instead of failing every remaining run the
same way.
"""

from __future__ import annotations

import errno
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slicebudget.study.product import RunProduct, materialize_inputs, pack_folder

# execute(spec, dataset_path, run_dir, on_progress=None) -> result dict; writes its artefacts into
# run_dir, a fresh scratch folder that run_task packs into the outcome.
ExecuteFn = Callable[..., dict]
# refill(free) -> more tasks when the given ones are all started and ``free`` workers wait (an
# adaptive design choosing runs as results come in); an empty list with nothing in flight ends the run.
Refill = Callable[[int], list]
# A disk that takes no writes stops the study; a permission error is not among them: a run reads more
# than it writes (a worker that may not read the dataset fails its runs, and the study goes on).
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
CONNECT_TIMEOUT_S = 15  # a scheduler that answers does so in milliseconds; the user hears within 30 s
MAX_RESUBMITS = 1  # after Dask's own retries (allowed-failures) a run gets one more fresh submission


@dataclass(frozen=True)
class RunTask:
    run_id: str
    spec: dict  # paths of shipped inputs read INPUT_PREFIX + name (see slicebudget.study.product)
    dataset_path: str
    inputs: dict[str, bytes] = field(default_factory=dict)  # name -> compressed content


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    ok: bool
    product: RunProduct | None = None  # the store record and the artefacts, when ok
    error: str | None = None
    details: str | None = None  # traceback, kept in the study's logs/ folder
    fatal: bool = False


def _disk_problem(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (following causes) when it means the disk cannot take writes."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FATAL_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class DatasetUnreadable(Exception):
    """This process cannot read the dataset folder (a worker without access to it)."""


def check_dataset_readable(dataset_path: str) -> None:
    """Open the dataset's description the way a run will, so that a worker without access fails the
    run with a line naming the worker and the path instead of a traceback from deep inside it."""
    import socket

    folder = Path(dataset_path)
    try:
        names = [p.name for p in folder.iterdir()]
        description = folder / "dataset.json" if "dataset.json" in names else None
        if description is not None:
            with open(description, "rb") as handle:
                handle.read(1)
    except OSError as exc:
        raise DatasetUnreadable(f"worker {socket.gethostname()} cannot read the dataset: "
                                f"{exc.strerror or exc} ({exc.filename or folder})") from exc


def run_task(task: RunTask, execute: ExecuteFn, on_progress: Callable[[dict], None] | None = None,
             torch_threads: int | None = None) -> RunOutcome:
    """Run one task in a private scratch folder and return its outcome, artefacts packed inside; only
    KeyboardInterrupt (and SystemExit) escape.

    ``torch_threads`` sets torch's intra-op threads for the run (and restores them after): CPU
    results depend on it in the last bits, which a short training run can amplify, so equal
    thread counts are what make a Dask run reproduce an in-process one exactly.
    """
    import tempfile
    from contextlib import nullcontext

    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    # NumPy/SciPy's BLAS and OpenMP pools size themselves to the whole machine; with several
    # workers on one host their idle threads spin against each other, so cap them like torch's.
    limits = nullcontext() if torch_threads is None else threadpool_limits(limits=torch_threads)
    try:
        with limits, tempfile.TemporaryDirectory(prefix=f"slicebudget-{task.run_id}-") as scratch:
            out = Path(scratch) / "run"
            inputs = Path(scratch) / "inputs"
            out.mkdir()
            inputs.mkdir()
            check_dataset_readable(task.dataset_path)
            spec = materialize_inputs(task.spec, task.inputs, inputs)
            result = {**execute(spec, task.dataset_path, str(out), on_progress),
                      "torch_threads": torch.get_num_threads()}
            product = pack_folder(result, out)
    except Exception as exc:  # noqa: BLE001 - every failure of one run is recorded, the study goes on
        disk = _disk_problem(exc)
        if disk is not None:
            where = f" ({disk.filename})" if disk.filename else ""
            return RunOutcome(task.run_id, False, error=f"cannot write run artifacts: {disk.strerror}{where}",
                              details=traceback.format_exc(), fatal=True)
        if isinstance(exc, DatasetUnreadable):
            return RunOutcome(task.run_id, False, error=str(exc), details=traceback.format_exc())
        message = str(exc) or type(exc).__name__
        return RunOutcome(task.run_id, False, error=f"{type(exc).__name__}: {message}", details=traceback.format_exc())
    finally:
        torch.set_num_threads(previous)
    return RunOutcome(task.run_id, True, product=product)


class LocalExecutor:
    """Runs one task after another in this process, reporting training progress."""

    def __init__(self, execute: ExecuteFn, torch_threads: int | None = None):
        self.execute = execute
        self.torch_threads = torch_threads

    def run(self, tasks: Iterable[RunTask], on_start: Callable[[RunTask], None],
            on_progress: Callable[[str, dict], None] | None = None,
            refill: Refill | None = None) -> Iterator[RunOutcome]:
        queue = list(tasks)
        while queue or refill is not None:
            if not queue:
                queue = list(refill(1))  # type: ignore[misc]
                if not queue:
                    return
            task = queue.pop(0)
            on_start(task)
            callback = None if on_progress is None else (lambda info, rid=task.run_id: on_progress(rid, info))
            yield run_task(task, self.execute, callback, self.torch_threads)

    def parallel(self) -> int:
        """How many runs execute at once."""
        return 1


class DaskExecutor:
    """Runs tasks on Dask workers: a new LocalCluster of ``workers`` processes (one Dask thread each,
    ``torch_threads`` torch threads per run, default 1), or the cluster behind ``scheduler``. Keeps about two tasks per worker thread in flight, so 'running'
    rows in the store are the runs actually dispatched.
    """

    def __init__(self, execute: ExecuteFn, workers: int = 2, scheduler: str | None = None,
                 torch_threads: int | None = None, max_resubmits: int = MAX_RESUBMITS):
        self.execute = execute
        self.workers = workers
        self.scheduler = scheduler
        self.torch_threads = 1 if torch_threads is None else torch_threads
        self.max_resubmits = max_resubmits

    def _connect(self):
        import dask
        from distributed import Client, LocalCluster

        from slicebudget.errors import UserError

        if self.scheduler:
            try:
                return Client(self.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s"), None
            except OSError as exc:  # distributed's message spans lines and repeats the address
                raise UserError(f"cannot reach the Dask scheduler within {CONNECT_TIMEOUT_S} s",
                                self.scheduler) from exc
        # A worker that dies mid-run makes the scheduler re-run its task; bound that.
        # Dask's default worker environment sets MALLOC_TRIM_THRESHOLD_, which switches off glibc's
        # adaptive mmap threshold: every tensor-sized allocation then becomes an mmap and page
        # faults, and training ran 2-3x slower per run than in-process. Keep only the thread caps.
        single_threaded = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
        with dask.config.set({"distributed.scheduler.allowed-failures": 2,
                              "distributed.nanny.pre-spawn-environ": single_threaded}):
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            return Client(cluster), cluster

    def parallel(self) -> int:
        """How many runs execute at once: the local cluster's workers, or the scheduler's worker threads
        now (connecting to it, so a scheduler that does not answer is reported before anything else)."""
        if not self.scheduler:
            return self.workers
        client, _ = self._connect()
        try:
            return max(1, sum(client.nthreads().values()))
        finally:
            client.close()

    def run(self, tasks: Iterable[RunTask], on_start: Callable[[RunTask], None],
            on_progress: Callable[[str, dict], None] | None = None,
            refill: Refill | None = None) -> Iterator[RunOutcome]:
        from distributed import as_completed
        from distributed.client import FutureCancelledError

        try:
            from distributed import KilledWorker
        except ImportError:  # older layouts
            from distributed.scheduler import KilledWorker

        pending = list(tasks)
        client, cluster = self._connect()
        futures: dict = {}
        attempts: dict[str, int] = {}
        try:
            threads = max(1, sum(client.nthreads().values()))
            # Queued tasks wait for a free thread; an adaptive design decides each run when a thread
            # frees up (with what has finished by then), so it gets exactly one task per thread.
            window = threads if refill is not None else 2 * threads
            completed = as_completed()

            def submit(task: RunTask) -> None:
                attempts[task.run_id] = attempts.get(task.run_id, 0) + 1
                future = client.submit(run_task, task, self.execute, None, self.torch_threads,
                                       key=f"run-{task.run_id}-{attempts[task.run_id]}", pure=False)
                futures[future] = task
                completed.add(future)

            def top_up() -> None:
                while len(futures) < window:
                    if not pending and refill is not None:
                        pending.extend(refill(window - len(futures)))
                    if not pending:
                        return
                    task = pending.pop(0)
                    on_start(task)
                    submit(task)

            top_up()
            for future in completed:
                task = futures.pop(future)
                try:
                    outcome = future.result()
                except (KilledWorker, FutureCancelledError, OSError) as exc:
                    if attempts[task.run_id] <= self.max_resubmits:
                        submit(task)
                        continue
                    outcome = RunOutcome(task.run_id, False, error=f"worker died running this run "
                                         f"({attempts[task.run_id]} submissions): {type(exc).__name__}: {exc}")
                yield outcome
                top_up()
        finally:
            for future in list(futures):
                future.cancel()
            client.close()
            if cluster is not None:
                cluster.close()


def make_executor(kind: str, execute: ExecuteFn, workers: int = 2, scheduler: str | None = None,
                  torch_threads: int | None = None):
    """``torch_threads`` None: torch's default in-process, 1 per Dask worker."""
    from slicebudget.errors import UserError

    if torch_threads is not None and torch_threads < 1:
        raise UserError(f"--threads must be at least 1, got {torch_threads}")
    if kind == "local":
        return LocalExecutor(execute, torch_threads)
    if kind == "dask":
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        return DaskExecutor(execute, workers=workers, scheduler=scheduler, torch_threads=torch_threads)
    raise UserError(f"unknown executor {kind!r}; choose local or dask")
