"""Orchestration with a fake executor: resume, failures, retry, the lock, Ctrl-C, a full disk, status."""

from __future__ import annotations

import errno
import json
import sqlite3

import pytest

from slicebudget.errors import UserError
from slicebudget.study.folder import StudyLock, lock_holder
from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

from .conftest import FakeExecute  # noqa: TID252

N_RUNS = 9  # 2 densities x 2 fractions x 2 policies + the dense baseline


def statuses(study_dir) -> dict[str, str]:
    with StudyStore(study_dir) as store:
        return {r["run_id"]: r["status"] for r in store.runs()}


def test_run_writes_store_artifacts_and_records(write_config, tmp_path):
    out = tmp_path / "study"
    fake = FakeExecute()
    reports = []
    outcome = run_study(write_config(), out, execute=fake, write_report=reports.append)
    assert outcome.counts == {"pending": 0, "running": 0, "done": N_RUNS, "failed": 0}
    assert outcome.executed == N_RUNS and len(set(fake.calls)) == N_RUNS
    assert reports == [out]
    with StudyStore(out) as store:
        records = store.runs()
    record = next(r for r in records if r["density"] == 0.25 and r["volume_fraction"] == 0.5)
    assert record["metrics"]["iou"] == pytest.approx(0.125)
    assert record["n_volumes"] == 2 and record["n_volumes_total"] == 4 and record["attempts"] == 1
    assert record["model"] == "unet-resnet18" and record["dims"] == 2 and record["interpolation"] == "off"
    assert record["seconds_train"] == pytest.approx(0.01) and record["error"] is None
    assert record["finished_at"] is not None
    assert all((out / "runs" / r["run_id"] / "marker.txt").exists() for r in records)
    assert not list((out / "runs").glob(".tmp-*"))
    assert (out / "config.resolved.yaml").exists()
    # the journal is in WAL mode, so the report can read while the runner writes
    assert sqlite3.connect(out / "study.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rerun_skips_finished_runs(write_config, tmp_path):
    out = tmp_path / "study"
    run_study(write_config(), out, execute=FakeExecute(), write_report=None)
    again = FakeExecute()
    outcome = run_study(write_config(), out, execute=again, write_report=None)
    assert again.calls == [] and outcome.executed == 0 and outcome.counts["done"] == N_RUNS


def test_run_cut_off_by_a_kill_is_reset_and_rerun(write_config, tmp_path):
    out = tmp_path / "study"
    run_study(write_config(), out, execute=FakeExecute(), write_report=None)
    # Simulate a runner killed with SIGKILL mid-run: its row says 'running', nobody holds the lock,
    # and a half-written temporary folder is left behind.
    victim = sorted(statuses(out))[3]
    with StudyStore(out) as store:
        store.mark_running(victim, "pid 999999 on gone")
    (out / "runs" / f".tmp-{victim}-dead00").mkdir()
    assert lock_holder(out) is None
    fake = FakeExecute()
    run_study(write_config(), out, execute=fake, write_report=None)
    assert fake.calls == [victim]
    assert set(statuses(out).values()) == {"done"}
    assert not list((out / "runs").glob(".tmp-*"))
    with StudyStore(out) as store:
        assert next(r for r in store.runs() if r["run_id"] == victim)["attempts"] == 3  # first run, the killed one, the rerun


def test_failure_is_recorded_study_goes_on_and_retry_failed_reruns(write_config, tmp_path):
    from slicebudget.training import TrainingDiverged

    out = tmp_path / "study"
    diverge = FakeExecute(raise_for=lambda spec, n: TrainingDiverged("training diverged: loss is nan at iteration 3")
                          if spec["policy"] == "random" and spec["density"] == 0.5 else None)
    outcome = run_study(write_config(), out, execute=diverge, write_report=None)
    assert outcome.counts == {"pending": 0, "running": 0, "done": N_RUNS - 2, "failed": 2}
    with StudyStore(out) as store:
        failed = store.runs(status="failed")
    assert all(r["error"] == "TrainingDiverged: training diverged: loss is nan at iteration 3" for r in failed)
    assert all((out / "logs" / f"{r['run_id']}.txt").exists() for r in failed)
    assert not any((out / "runs" / r["run_id"]).exists() for r in failed)

    plain = FakeExecute()
    run_study(write_config(), out, execute=plain, write_report=None)
    assert plain.calls == []  # failed runs stay failed without --retry-failed

    retry = FakeExecute()
    outcome = run_study(write_config(), out, execute=retry, retry_failed=True, write_report=None)
    assert sorted(retry.calls) == sorted(r["run_id"] for r in failed)
    assert outcome.counts["done"] == N_RUNS
    with StudyStore(out) as store:
        assert all(r["error"] is None and r["attempts"] == 2 for r in store.runs() if r["run_id"] in retry.calls)


def test_lock_refuses_a_second_runner(write_config, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    fake = FakeExecute()
    with StudyLock(out):
        assert lock_holder(out).startswith("pid ")
        with pytest.raises(UserError, match="in use by another `budget-study run`"):
            run_study(write_config(), out, execute=fake, write_report=None)
    assert fake.calls == []
    assert lock_holder(out) is None
    run_study(write_config(), out, execute=fake, write_report=None)  # free again once released
    assert len(fake.calls) == N_RUNS


def test_ctrl_c_puts_the_run_back_to_pending_and_resume_finishes(write_config, tmp_path):
    out = tmp_path / "study"
    interrupt = FakeExecute(raise_for=lambda spec, n: KeyboardInterrupt() if n == 4 else None)
    with pytest.raises(KeyboardInterrupt):
        run_study(write_config(), out, execute=interrupt, write_report=None)
    counts = list(statuses(out).values())
    assert counts.count("done") == 3 and counts.count("pending") == N_RUNS - 3 and "running" not in counts
    assert not list((out / "runs").glob(".tmp-*"))
    resume = FakeExecute()
    run_study(write_config(), out, execute=resume, write_report=None)
    assert len(resume.calls) == N_RUNS - 3 and interrupt.calls[3] in resume.calls
    assert set(statuses(out).values()) == {"done"}


def test_full_disk_stops_the_study_with_one_line(write_config, tmp_path):
    out = tmp_path / "study"
    full = FakeExecute(raise_for=lambda spec, n: OSError(errno.ENOSPC, "No space left on device", "/x/model.pt")
                       if n == 2 else None)
    with pytest.raises(UserError) as info:
        run_study(write_config(), out, execute=full, write_report=None)
    assert "No space left on device" in str(info.value) and str(out) in str(info.value)
    assert len(full.calls) == 2
    assert list(statuses(out).values()).count("pending") == N_RUNS - 1  # the failing run too


def test_unwritable_study_folder_is_one_line(write_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the study folder"):
        run_study(write_config(), blocker / "study", execute=FakeExecute(), write_report=None)


def test_stale_runs_leave_the_active_grid(write_config, tmp_path):
    out = tmp_path / "study"
    run_study(write_config(), out, execute=FakeExecute(), write_report=None)
    run_study(write_config(densities=[0.25]), out, execute=FakeExecute(), write_report=None)
    with StudyStore(out) as store:
        assert len(store.runs()) == 5 and len(store.runs(include_stale=True)) == N_RUNS
        assert all(r["density"] in (0.25, 1.0) for r in store.runs())
        assert store.meta("config")["densities"] == [0.25]


def test_status_command_prints_counts(write_config, tmp_path, capsys):
    from slicebudget.cli.main import main

    out = tmp_path / "study"
    run_study(write_config(), out, execute=FakeExecute(
        raise_for=lambda spec, n: ValueError("bad") if n == 1 else None), write_report=None)
    with StudyStore(out) as store:
        store.mark_running(store.runs(status="done")[0]["run_id"], "pid 1")
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in text.splitlines() if line.count("│") == 3}
    assert rows["done"] == str(N_RUNS - 2) and rows["failed"] == "1" and rows["running"] == "1"
    assert rows["pending"] == "0"
    assert "were cut off" in text and "ValueError: bad" in text
    assert main(["status", str(tmp_path / "nothing")]) == 2


def test_report_reads_records_through_the_store(write_config, tmp_path):
    out = tmp_path / "study"
    run_study(write_config(), out, execute=FakeExecute(), write_report=None)
    with StudyStore(out / "study.sqlite") as store:
        record = store.runs(status="done")[0]
    expected = {"run_id", "status", "model", "dims", "policy", "density", "volume_fraction", "repeat",
                "interpolation", "is_dense_baseline", "n_volumes", "n_volumes_total", "slices_per_volume",
                "budget_slices", "metrics", "interp_iou", "seconds_train", "seconds_infer_per_case", "error"}
    assert expected <= set(record)
    assert json.loads(json.dumps(record["spec"])) == record["spec"]
    assert record["metrics"]["val_dice"] != record["metrics"]["val_dice"]  # NaN survives as NaN


def test_run_command_reports_a_bad_config_as_one_line(write_config, tmp_path, capsys):
    from slicebudget.cli.main import main

    path = write_config(densities=[0.1, 0.2, 1.5])
    assert main(["run", str(path), "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: densities.2: Input should be less than or equal to 1"
    assert not (tmp_path / "study" / "study.sqlite").exists()
