"""`budget-study bench design`: the replay's regret arithmetic, and the command's output and bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from slicebudget.bench.design import (
    Replay,
    ReplayBench,
    _compare,
    bench_replay,
    redrawn_repeats,
    reference_stability,
    replay_once,
)
from slicebudget.bench.planning import synthetic_runs, write_synthetic_study
from slicebudget.cli.main import main
from slicebudget.design import stop
from slicebudget.design.surfaces import current_plans
from slicebudget.planning.costs import from_config

COSTS = from_config(None)


@pytest.fixture(scope="module")
def records():
    return synthetic_runs(densities=(0.1, 0.2, 0.3, 0.5), fractions=(0.25, 0.5, 0.75, 1.0), repeats=3)


def test_regret_is_the_full_surface_iou_lost_by_the_other_plan(records):
    plans, truth = current_plans(records, [36.0], "slices", COSTS)
    ref = plans[36.0]
    other = replace(ref, best=replace(ref.best, n_volumes=4, slices_per_volume=9))
    surface = truth[(ref.model, ref.dims)].surface
    at = surface.predictive(np.array([ref.best.n_volumes, 4]), np.array([ref.best.slices_per_volume, 9]),
                            np.array([0, 0])).expected
    regret, same, _ = _compare({36.0: other}, plans, truth, [36.0])
    assert regret[36.0] == pytest.approx(at[0] - at[1]) and regret[36.0] > 0 and not same[36.0]
    regret, same, _ = _compare(plans, plans, truth, [36.0])
    assert regret[36.0] == 0.0 and same[36.0]


def test_a_design_given_every_run_reaches_the_full_grids_plan(records, monkeypatch):
    monkeypatch.setattr(stop, "SETTLED", 1.01)  # never settled: it runs to the limit
    plans, truth = current_plans(records, [17.0, 76.0], "slices", COSTS)
    replay = replay_once(records, plans, truth, [17.0, 76.0], "slices", COSTS, max_runs=len(records), seed=0,
                         batch=8)
    assert replay.runs_used == len(records) and replay.stop == stop.STOP_EXHAUSTED
    assert all(v == 0.0 for v in replay.regret.values()) and all(replay.same_plan.values())
    assert len({p.run_id for p in replay.order}) == len(records)


def test_redrawn_repeats_draw_whole_repeats_shared_by_every_cell(records):
    rng = np.random.default_rng(3)
    for _ in range(5):
        copy = redrawn_repeats(records, rng)
        assert len(copy) == len(records)
        for slot in range(3):
            origins = {r["run_id"].rsplit("-", 1)[1].split("~")[0] for r in copy if r["repeat"] == slot}
            assert len(origins) == 1  # every cell of a slot comes from the same original repeat
        assert len({r["run_id"] for r in copy}) == len(copy)


@pytest.mark.parametrize("repeat_sd, stable", [(0.002, True), (0.1, False)])
def test_reference_stability_is_one_when_repeats_agree_and_falls_when_they_move_the_plan(repeat_sd, stable):
    budgets = [17.0, 36.0, 76.0]
    runs = synthetic_runs(densities=(0.1, 0.2, 0.3, 0.5), fractions=(0.25, 0.5, 0.75, 1.0), repeats=3,
                          repeat_sd=repeat_sd, residual_sd=repeat_sd / 4, seed=0)
    plans, truth = current_plans(runs, budgets, "slices", COSTS)
    shares = reference_stability(runs, plans, truth, budgets, "slices", COSTS, replicates=10)
    assert set(shares) == set(budgets) and all(0.0 <= v <= 1.0 for v in shares.values())
    assert (min(shares.values()) == 1.0) == stable


def test_target_arithmetic():
    ok = Replay(0, 14, "run limit", {1.0: 0.01, 2.0: -0.001}, {1.0: False, 2.0: True}, {}, {1.0: 0.0, 2.0: 0.0})
    assert ok.met(48)  # 14 <= 0.3 * 48 and regret <= 0.01 everywhere
    assert not replace(ok, runs_used=15).met(48)
    assert not replace(ok, regret={1.0: 0.0101, 2.0: 0.0}).met(48)
    # the paired random design is judged by its own regret, at the same number of runs
    assert ok.met(48, random=True) and not replace(ok, random_regret={1.0: 0.02, 2.0: 0.0}).met(48, random=True)
    assert replace(ok, regret={1.0: 0.5, 2.0: 0.0}).met(48, random=True)
    bench = ReplayBench("r", 48, 14, [1.0, 2.0], "slices", {}, [ok, replace(ok, random_regret={1.0: 0.02, 2.0: 0.0})])
    assert (bench.seeds_met, bench.random_seeds_met) == (2, 1)


def test_bench_design_prints_runs_regret_and_the_target(records, tmp_path, capsys):
    study = write_synthetic_study(tmp_path / "full", records)
    out = tmp_path / "replays.json"
    assert main(["bench", "design", "--reference", str(study), "--seeds", "2", "--budgets", "36",
                 "--stability", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 1:" in text and "budget 36 slices: regret median" in text and "target (" in text
    assert "on 4 copies with its repeats redrawn: within 0.01 of itself in 36: " in text
    data = json.loads(out.read_text())
    assert data["seeds"] == 2 and data["grid_runs"] == 48 and data["max_runs"] == 14
    assert all(r["runs_used"] <= 14 for r in data["replays"])
    assert set(data["reference_stability"]) == {"36"}
    assert "seeds -> " in text and f"(the paired random designs: {data['random_seeds_met']}/2)" in text


@pytest.mark.parametrize("args, message", [
    (["--budgets", "400"], "more than the dataset can supply"),
    (["--budgets", "40,abc"], "--budgets must be numbers"),
    (["--max-runs", "3"], "below the design's start"),
])
def test_bad_input_is_one_line(records, tmp_path, capsys, args, message):
    study = write_synthetic_study(tmp_path / "full", records)
    assert main(["bench", "design", "--reference", str(study), "--seeds", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_synthetic_reference_is_written_once_and_replayed(tmp_path, capsys):
    folder = tmp_path / "syn"
    assert main(["bench", "design", "--synthetic", str(folder), "--seeds", "1", "--budgets", "36", "--stability", "0"]) == 0
    assert (folder / "study.sqlite").is_file() and "(48 runs)" in capsys.readouterr().out
    assert main(["bench", "design", "--seeds", "1"]) == 2
    assert "give one of --reference" in capsys.readouterr().err


def test_an_unfinished_reference_is_refused(records, tmp_path, capsys):
    from slicebudget.study.store import StudyStore

    study = write_synthetic_study(tmp_path / "full", records)
    with StudyStore(study) as store:
        store.mark_pending(records[0]["run_id"])
    assert main(["bench", "design", "--reference", str(study)]) == 2
    assert "not finished (47 of 48 runs done)" in capsys.readouterr().err
