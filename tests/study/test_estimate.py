"""The wall-time estimate: told before the first run, sane, and the ETA's switch to the measured pace."""

from __future__ import annotations

import math

import pytest
import yaml

from slicebudget.study.progress import eta_seconds


def test_eta_uses_the_estimate_until_a_run_finishes_then_the_measured_pace():
    assert eta_seconds(elapsed=10.0, finished_now=0, remaining=4, estimate=100.0) == 90.0
    assert eta_seconds(elapsed=500.0, finished_now=0, remaining=4, estimate=100.0) == 0.0  # late, never negative
    assert eta_seconds(elapsed=30.0, finished_now=2, remaining=4, estimate=100.0) == 60.0
    assert eta_seconds(elapsed=30.0, finished_now=0, remaining=4, estimate=None) is None
    assert eta_seconds(elapsed=30.0, finished_now=3, remaining=0, estimate=100.0) == 0.0


def test_run_prints_the_estimate_before_the_first_run_and_compares_it_after(tmp_path, tiny_dataset, capsys):
    from slicebudget.cli.main import main
    from slicebudget.study.store import StudyStore

    from .conftest import base_config  # noqa: TID252

    config = {**base_config(tiny_dataset), "densities": [0.5], "volume_fractions": [0.5, 1.0], "policies": ["fixed"],
              "dense_baseline": False}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "study"
    assert main(["run", str(path), "--out", str(out), "--threads", "1"]) in (0, None)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("estimate: ")]
    assert len(lines) == 1 and lines[0].startswith("estimate: 2 run(s) = ") and "unet-resnet18 2D: 2 run(s)" in lines[0]
    assert captured.err.index("estimate: ") < captured.err.index("runs")  # before the progress display
    assert "measured / estimated = " in captured.out
    with StudyStore(out) as store:
        estimate = store.meta("estimate")
    # sane: a positive, finite time for 2 runs of 5 iterations on 8 x 32 x 32 volumes (minutes at most)
    assert estimate["runs"] == 2 and estimate["parallel"] == 1
    assert 0.0 < estimate["seconds"] < 600 and math.isfinite(estimate["seconds"])
    # resuming a finished study runs nothing, so there is nothing to estimate
    assert main(["run", str(path), "--out", str(out)]) in (0, None)
    assert "estimate: " not in capsys.readouterr().err


def test_the_probe_separates_fixed_iteration_validation_and_inference_costs(monkeypatch):
    from slicebudget.study import estimate as module
    from slicebudget.study.executors import RunOutcome, RunTask
    from slicebudget.study.product import RunProduct

    clock = [0.0]
    monkeypatch.setattr(module, "_now", lambda: clock[0])

    def probe(task, on_progress):  # a fake run: 0.5 s per iteration, 1 s per validation, 2 s per test case
        n = task.spec["training"]["iterations"]
        assert task.spec["split"]["test"] == ["t1"] and task.spec["training"]["val_every"] == n
        for i in range(1, n + 1):
            clock[0] += 0.5 + (1.0 if i == n else 0.0)
            on_progress({"stage": "train", "iteration": i, "iterations": n})
        train = 0.3 + 0.5 * n + 1.0  # 0.3 s of set-up
        result = {"seconds_train": train, "seconds_infer_per_case": 2.0, "seconds_total": train + 0.7 + 2.0}
        return RunOutcome(task.run_id, True, RunProduct(result))

    spec = {"training": {"iterations": 7, "val_every": 2}, "split": {"test": ["t1", "t2", "t3"]},
            "model": {"display_name": "m", "dims": 2, "inference": {"name": "sliding_window"}},
            "interpolation": "off", "n_volumes": 2, "density": 0.5}
    estimate = module.estimate_study([RunTask(f"r{i}", spec, "/data") for i in range(4)], 2, probe)
    cost = estimate.models[0]
    assert cost.seconds_per_iteration == pytest.approx(0.5) and cost.seconds_fixed == pytest.approx(1.0)
    per_run = 1.0 + 7 * 0.5 + (7 // 2) * 1.0 + 3 * 2.0
    assert cost.seconds_per_run == pytest.approx(per_run) and cost.runs == 4
    assert estimate.seconds == pytest.approx(4 * per_run / 2) and estimate.runs == 4
    assert estimate.describe().startswith("estimate: 4 run(s) / 2 at once = 27 s (m 2D: 4 run(s) x 14 s")
