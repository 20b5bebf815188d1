"""A study on a real Dask cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1, each
in its own empty working folder, and the driver as a real `budget-study run` subprocess.

The workers run with an audit hook (worker_guard.py) that refuses any access to the folder holding
the study folders, so a study that finishes proves the workers never needed it: results travel
back through Dask. Then: a worker SIGKILLed while it holds a run, the driver SIGKILLed mid-study and
resumed, a worker that cannot read the dataset, a scheduler that does not answer.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

from .conftest import base_config  # noqa: TID252

HERE = Path(__file__).parent
DRIVER = "import sys; from slicebudget.cli.main import main; sys.exit(main(sys.argv[1:]))"
# 2 grid runs + the dense baseline: with two workers, the third run waits for a free one, so a
# driver killed at its first finished run leaves work to resume
GRID = {"densities": [0.5], "volume_fractions": [0.5, 1.0], "policies": ["random"],
        "training": {"iterations": 10, "batch_size": 4, "learning_rate": 0.001, "val_every": 5}}
N_RUNS = 3


def _env(**extra) -> dict:
    src = str(Path(__import__("slicebudget").__file__).parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.05, driver: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if driver is not None and driver.poll() is not None:
            stdout, stderr = driver.communicate()
            raise AssertionError(f"the driver ended (exit {driver.returncode}) before {what}:\n{stdout}\n{stderr[-3000:]}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _statuses(study_dir: Path) -> dict[str, str]:
    path = study_dir / "study.sqlite"
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return dict(conn.execute("SELECT run_id, status FROM runs WHERE active = 1").fetchall())
    except sqlite3.OperationalError:
        return {}  # the driver is still creating it


class Cluster:
    """A scheduler and named workers, each a subprocess in its own empty folder."""

    def __init__(self, root: Path, forbidden: list[Path]):
        self.root, self.forbidden = root, forbidden
        self.procs: dict[str, subprocess.Popen] = {}
        folder = self._folder("scheduler")
        self.procs["scheduler"] = subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(folder / "scheduler.json"), "--idle-timeout", "3600"], cwd=folder, env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client

        try:
            info = _wait_for(lambda: (folder / "scheduler.json").exists()
                             and json.loads((folder / "scheduler.json").read_text()), 60, "the scheduler")
            self.address = info["address"]
            self.client = Client(self.address, timeout="30s")  # the test's own view of the cluster
        except BaseException:
            self.procs["scheduler"].kill()
            raise

    def _folder(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        return folder

    def start_worker(self, name: str) -> None:
        folder = self._folder(name)
        (folder / "tmp").mkdir()
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
             "--no-dashboard", "--death-timeout", "60", "--local-directory", str(folder / "tmp"),
             "--preload", str(HERE / "worker_guard.py")], cwd=folder,
            env=_env(TMPDIR=str(folder / "tmp"), SLICEBUDGET_TEST_FORBID=os.pathsep.join(map(str, self.forbidden))),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers(self) -> dict[str, str]:
        """name -> address of the workers the scheduler knows now."""
        return {w["name"]: addr for addr, w in self.client.scheduler_info(n_workers=-1)["workers"].items()}

    def busy_worker(self) -> str | None:
        """The name of a worker the scheduler has given a run to, if any."""
        names = {addr: name for name, addr in self.workers().items()}
        return next((names[addr] for addr, keys in self.client.processing().items() if keys and addr in names), None)

    def wait_workers(self, names: set[str]) -> None:
        _wait_for(lambda: names <= set(self.workers()), 60, f"workers {sorted(names)}", interval=0.5)

    def forbidden_accesses(self) -> list[str]:
        return [line for log in self.root.glob("*/forbidden-access.log") for line in log.read_text().splitlines()]

    def stop(self) -> None:
        self.client.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_dataset):
    root = tmp_path_factory.mktemp("cluster")
    studies, unreadable = root / "studies", root / "unreadable"
    studies.mkdir()
    unreadable.mkdir()
    running = Cluster(root / "processes", forbidden=[studies, unreadable])
    try:
        running.start_worker("w1")
        running.start_worker("w2")
        running.wait_workers({"w1", "w2"})
        yield running, studies
    finally:
        running.stop()


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_dataset):
    """The study YAML and its in-process store (1 torch thread, as each Dask worker uses)."""
    folder = tmp_path_factory.mktemp("grid")
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({**base_config(tiny_dataset), **GRID}))
    run_study(path, folder / "local", threads=1, write_report=None)
    with StudyStore(folder / "local") as store:
        return path, {r["run_id"]: r["metrics"] for r in store.runs()}


DRIVERS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _reap_drivers():
    yield
    while DRIVERS:
        proc = DRIVERS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _driver(config: Path, out: Path, *args: str) -> subprocess.Popen:
    DRIVERS.append(_start_driver(config, out, *args))
    return DRIVERS[-1]


def _start_driver(config: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, "run", str(config), "--out", str(out),
                             "--executor", "dask", *args], env=_env(), cwd=out.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(driver: subprocess.Popen, timeout: float = 900) -> str:
    stdout, stderr = driver.communicate(timeout=timeout)
    assert driver.returncode == 0, stderr[-3000:]
    return stdout


def _assert_same_metrics(study_dir: Path, expected: dict[str, dict]) -> None:
    with StudyStore(study_dir) as store:
        records = store.runs()
    assert {r["run_id"] for r in records} == set(expected) and all(r["status"] == "done" for r in records)
    for r in records:
        for name, value in expected[r["run_id"]].items():
            other = r["metrics"][name]
            assert (math.isnan(value) and math.isnan(other)) or value == other, (r["run_id"], name)


def _assert_each_run_once(study_dir: Path) -> None:
    runs = study_dir / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted(_statuses(study_dir))  # no leftovers, none missing
    for run in runs.iterdir():
        assert {p.name for p in run.iterdir()} == {"results.csv", "selection.json", "run.json"}


def test_worker_sigkill_mid_run_loses_nothing_and_metrics_equal_in_process(cluster, grid):
    running, studies = cluster
    config, expected = grid
    out = studies / "worker-kill"
    driver = _driver(config, out, "--scheduler", running.address)
    victim = _wait_for(running.busy_worker, 600, "a worker holding a run", driver=driver)
    running.procs[victim].send_signal(signal.SIGKILL)
    stdout = _finish(driver)
    assert f"ran {N_RUNS} run(s)" in stdout  # every run recorded once: none done twice
    _assert_same_metrics(out, expected)
    _assert_each_run_once(out)
    with StudyStore(out) as store:
        assert all(r["attempts"] == 1 for r in store.runs())  # Dask re-queued it; the driver never gave up on it
    assert running.forbidden_accesses() == []  # no worker ever opened the study folder
    running.start_worker(f"{victim}-again")
    running.wait_workers({f"{victim}-again"})


def test_driver_sigkill_mid_study_then_resume_gives_the_same_store(cluster, grid):
    running, studies = cluster
    config, expected = grid
    out = studies / "driver-kill"
    driver = _driver(config, out, "--scheduler", running.address)
    _wait_for(lambda: "done" in _statuses(out).values(), 600, "a first finished run", driver=driver)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=30)
    done_at_kill = list(_statuses(out).values()).count("done")
    assert 0 < done_at_kill < N_RUNS
    stdout = _finish(_driver(config, out, "--scheduler", running.address))
    assert f"ran {N_RUNS - done_at_kill} run(s)" in stdout  # the finished runs are not done twice
    _assert_same_metrics(out, expected)
    _assert_each_run_once(out)
    assert running.forbidden_accesses() == []


def test_a_worker_that_cannot_read_the_dataset_fails_its_runs_and_the_study_goes_on(cluster, grid, tiny_dataset):
    import shutil

    running, studies = cluster
    config, _ = grid
    hidden = running.forbidden[1] / "organ"  # the workers' guard refuses this folder; the driver reads it
    if not hidden.exists():
        shutil.copytree(tiny_dataset, hidden)
    out = studies / "unreadable"
    stdout = _finish(_driver(config, out, "--scheduler", running.address, "--dataset", str(hidden)))
    assert f"0 done, {N_RUNS} failed" in stdout
    with StudyStore(out) as store:
        errors = {r["error"] for r in store.runs()}
    assert len(errors) <= 2 and all(e.startswith("worker ") and "cannot read the dataset: Permission denied" in e
                                    and str(hidden) in e for e in errors), errors


def test_a_scheduler_that_does_not_answer_is_one_line_after_the_connect_timeout(grid, tmp_path):
    """The driver gives up after CONNECT_TIMEOUT_S with one line, not distributed's traceback. No wall
    clock bound here: under load, the driver's own start-up (torch imports) varies by tens of seconds,
    and speed belongs to benchmarks; the 60 s guard only catches a driver that hangs."""
    from slicebudget.study.executors import CONNECT_TIMEOUT_S

    config, _ = grid
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    driver = _driver(config, tmp_path / "study", "--scheduler", address)
    _, stderr = driver.communicate(timeout=60 + CONNECT_TIMEOUT_S)
    assert driver.returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0], stderr
    assert f"cannot reach the Dask scheduler within {CONNECT_TIMEOUT_S} s" in lines[0], stderr
