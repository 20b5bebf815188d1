"""`budget-study run --adaptive`: in process and with Dask, resume after SIGKILL mid-batch, bad input."""

from __future__ import annotations

import subprocess
from html import escape
import sys
import textwrap

import pytest

from slicebudget.cli.main import main
from slicebudget.design.adaptive import META_LOG, META_STOP, AdaptiveSettings, StudyDesign
from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

from .conftest import SURFACE_EXECUTE, surface_execute


def _run(config, out, max_runs=9, executor="local", workers=1, budgets=(12.0,)):
    design = StudyDesign(AdaptiveSettings(list(budgets), "slices", max_runs, 0), out,
                         batch=workers if executor == "dask" else 1)
    outcome = run_study(config, out, execute=surface_execute, write_report=None, design=design,
                        executor=executor, workers=workers, threads=1)
    return outcome, design


def _state(out):
    with StudyStore(out) as store:
        return store.counts(), store.meta(META_LOG), store.meta(META_STOP), store.runs(status="done")


def test_adaptive_run_stops_at_the_limit_or_settled_and_logs_why(adaptive_config, tmp_path):
    out = tmp_path / "study"
    outcome, design = _run(adaptive_config(), out, max_runs=9)
    counts, log, stop, done = _state(out)
    assert counts["done"] == outcome.executed <= 9 and counts["pending"] == 48 - counts["done"]
    assert design.stop in ("settled", "run limit") and stop["stop"] == design.stop
    assert sorted(e["run_id"] for e in log) == sorted(r["run_id"] for r in done)
    assert log[0]["why"].startswith("space-filling start") and "expected regret" in log[-1]["why"]
    # a second call resumes and, with the same store, stops at once: nothing runs again
    again, _ = _run(adaptive_config(), out, max_runs=9)
    assert again.executed == 0 and _state(out)[0] == counts
    # the report shows the order and the reasons, with the planner's sections
    from slicebudget.report import write_report

    html = write_report(out).read_text()
    assert "Adaptive design: the order runs were chosen in" in html and escape(log[-1]["why"]) in html
    assert f"Stopped after {stop['runs_done']} runs" in html and 'id="plan"' in html


def test_dask_keeps_both_workers_busy_and_resumes_after_a_sigkill_mid_batch(adaptive_config, tmp_path):
    """The driver and its two Dask workers die by SIGKILL (the whole process group) with a run in
    flight; the same design resumed with Dask loses nothing, runs nothing twice and stops."""
    import os
    import signal
    import sqlite3
    import time

    out = tmp_path / "study"
    config = adaptive_config()
    script = SURFACE_EXECUTE + textwrap.dedent(f"""
        import time
        from slicebudget.design.adaptive import AdaptiveSettings, StudyDesign
        from slicebudget.study.runner import run_study
        def execute(spec, dataset_path, run_dir, on_progress=None):
            time.sleep(1.0)  # long enough for the test to kill the driver with a run in flight
            return surface_execute(spec, dataset_path, run_dir, on_progress)
        design = StudyDesign(AdaptiveSettings([12.0], "slices", 12, 0), {str(out)!r}, batch=2)
        run_study({str(config)!r}, {str(out)!r}, execute=execute, write_report=None, design=design,
                  executor="dask", workers=2, threads=1)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def statuses() -> list[str]:
        try:
            with sqlite3.connect(f"file:{out / 'study.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
                return [row[0] for row in conn.execute("SELECT status FROM runs WHERE active = 1")]
        except sqlite3.OperationalError:
            return []  # not created yet

    try:
        deadline = time.monotonic() + 240
        while statuses().count("done") < 8:  # past the 7-run start: the design's own picks are running
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the Dask driver did not finish 8 runs in 240 s"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its workers, mid-batch
        driver.communicate(timeout=60)
    counts, log, _, done_before = _state(out)
    assert 8 <= counts["done"] < 12 and counts["running"] >= 1
    outcome, design = _run(config, out, max_runs=12, executor="dask", workers=2)
    counts, log, stop, done = _state(out)
    assert {r["run_id"] for r in done_before} <= {r["run_id"] for r in done}  # nothing lost
    assert counts["running"] == 0 and counts["done"] == len(done_before) + outcome.executed <= 12
    assert len(log) == len({e["run_id"] for e in log}) == counts["done"]  # a cut-off run is logged once
    assert stop is not None and design.stop == stop["stop"]
    # a worker that finishes gets the next run while the other still runs: no one waits for a batch
    assert any(entry["in_flight"] == 1 for entry in log) and max(e["in_flight"] for e in log) <= 1


def test_sigkill_mid_batch_loses_nothing_and_the_design_resumes(adaptive_config, tmp_path):
    out = tmp_path / "study"
    config = adaptive_config()
    # The driver dies by SIGKILL on its 8th run: 7 runs are done, the 8th is left 'running'.
    script = SURFACE_EXECUTE + textwrap.dedent(f"""
        import os, signal
        from slicebudget.design.adaptive import AdaptiveSettings, StudyDesign
        from slicebudget.study.runner import run_study
        calls = []
        def execute(spec, dataset_path, run_dir, on_progress=None):
            calls.append(1)
            if len(calls) == 8:
                os.kill(os.getpid(), signal.SIGKILL)
            return surface_execute(spec, dataset_path, run_dir, on_progress)
        design = StudyDesign(AdaptiveSettings([12.0], "slices", 10, 0), {str(out)!r})
        run_study({str(config)!r}, {str(out)!r}, execute=execute, write_report=None, design=design)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    counts, log, _, done_before = _state(out)
    assert counts["done"] == 7 and counts["running"] == 1 and len(log) == 8
    outcome, design = _run(config, out, max_runs=10)
    counts, log, stop, done = _state(out)
    assert {r["run_id"] for r in done_before} <= {r["run_id"] for r in done}  # nothing lost
    assert counts["running"] == 0 and counts["done"] == 7 + outcome.executed <= 10
    assert len(log) == len({e["run_id"] for e in log}) == counts["done"]  # the cut-off run logged once
    assert stop is not None


@pytest.mark.parametrize("args, message", [
    (["--budgets", "500"], "more than the dataset can supply"),
    (["--max-runs", "4"], "below the design's start of 7 runs"),
    (["--unit", "days"], "unknown budget unit"),
    (["--budgets", "x"], "--budgets must be numbers"),
])
def test_bad_adaptive_input_is_one_line(adaptive_config, tmp_path, capsys, args, message):
    code = main(["run", str(adaptive_config()), "--out", str(tmp_path / "study"), "--adaptive", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_resume_with_a_changed_config_is_refused_and_keeps_every_run(adaptive_config, tmp_path, capsys):
    out = tmp_path / "study"
    _run(adaptive_config(), out, max_runs=7)
    before = _state(out)
    changed = adaptive_config("changed.yaml", training={"iterations": 6, "batch_size": 4, "val_every": 5})
    code = main(["run", str(changed), "--out", str(out), "--adaptive", "--max-runs", "7"])
    err = capsys.readouterr().err
    assert code == 2 and "started with another config (changed: training)" in err and err.count("\n") == 1
    code = main(["run", str(adaptive_config()), "--out", str(out), "--adaptive", "--max-runs", "9"])
    err = capsys.readouterr().err
    assert code == 2 and "max_runs 7 (asked 9)" in err
    code = main(["run", str(adaptive_config()), "--out", str(out)])
    assert code == 2 and "holds an adaptive design" in capsys.readouterr().err
    assert _state(out) == before


def test_design_in_the_yaml_makes_the_study_adaptive_and_the_command_line_wins(adaptive_config):
    from slicebudget.design.adaptive import settings_from
    from slicebudget.errors import UserError
    from slicebudget.study.config import load_config

    config = load_config(adaptive_config(design={"adaptive": True, "max_runs": 7, "budgets": [12], "unit": "slices"}))
    assert settings_from(config, False, None, None, None) == AdaptiveSettings([12.0], "slices", 7, 0)
    assert settings_from(config, False, 9, [20.0], None) == AdaptiveSettings([20.0], "slices", 9, 0)
    plain = load_config(adaptive_config("plain.yaml"))
    assert settings_from(plain, False, None, None, None) is None
    with pytest.raises(UserError, match="add --adaptive"):
        settings_from(plain, False, 9, None, None)
