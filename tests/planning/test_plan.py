"""Plans: the budget is kept, the volumes cap holds, extrapolation is marked, the target search works."""

from __future__ import annotations

import pytest

from slicebudget.bench.planning import TrueSurface, synthetic_runs
from slicebudget.errors import UserError
from slicebudget.planning.costs import CostModel
from slicebudget.planning.plan import fit_model, plan_surface, plan_study

MODEL = "unet-resnet18"


@pytest.fixture(scope="module")
def fitted():
    return fit_model(synthetic_runs(seed=8, repeat_sd=0.01), MODEL, 2, None)


def test_best_plan_spends_the_budget_and_follows_the_surface(fitted):
    plan = plan_surface(*fitted, budget=64)
    assert plan.best.total_slices <= 64
    truth = TrueSurface()
    options = [(n, 64 // n) for n in range(1, 17) if 64 // n <= 20]
    best_true = max(truth(n, k) for n, k in options)
    assert truth(plan.best.n_volumes, plan.best.slices_per_volume) > best_true - 0.005
    assert plan.best.extrapolated is None
    low, high = plan.best.interval80
    assert low < plan.best.expected_iou < high
    assert plan.best.interval95[0] <= low and plan.best.interval95[1] >= high


def test_prediction_intervals_cover_the_true_surface_across_studies():
    """Over independent synthetic studies (test sets included), the 95% interval of the plan holds the
    true IoU most of the time; a one-seed check would be a coin toss at the tails."""
    truth, inside = TrueSurface(), 0
    for seed in range(12):
        plan = plan_surface(*fit_model(synthetic_runs(seed=100 + seed, repeat_sd=0.01), MODEL, 2, None,
                                       replicates=60), budget=64)
        inside += plan.best.interval95[0] < truth(plan.best.n_volumes, plan.best.slices_per_volume) < plan.best.interval95[1]
    assert inside >= 9


def test_never_more_volumes_than_available_and_says_what_more_would_give(fitted):
    plan = plan_surface(*fitted, budget=64, volumes_available=6)
    assert plan.best.n_volumes <= 6
    assert plan.more_volumes is not None and plan.more_volumes.n_volumes > 6
    assert plan.more_volumes.expected_iou > plan.best.expected_iou
    assert plan.runner_up is None or plan.runner_up.n_volumes <= 6


def test_extrapolation_is_marked_with_how_far(fitted):
    small = plan_surface(*fitted, budget=3)  # less than the smallest studied cell (4 volumes x 2 slices)
    assert small.best.extrapolated and "the smallest studied" in small.best.extrapolated
    assert "Extrapolated" in small.sentence
    more = plan_surface(*fitted, budget=160, volumes_available=6)
    assert more.more_volumes is not None and more.more_volumes.n_volumes > 6
    tiny = plan_surface(*fitted, budget=1)
    n_ratio = f"{tiny.best.n_volumes / 4:.2f}x the smallest studied (4 volumes)"
    assert n_ratio in tiny.best.extrapolated


def test_runner_up_is_materially_different_and_probability_is_a_share(fitted):
    plan = plan_surface(*fitted, budget=64)
    assert plan.runner_up is not None
    ratio = plan.runner_up.n_volumes / plan.best.n_volumes
    assert ratio >= 1.25 or ratio <= 0.8
    assert 0.5 <= plan.prob_best_beats_runner_up <= 1.0


def test_target_search_finds_the_cheapest_plan_with_80_percent(fitted):
    import numpy as np

    surface, _ = fitted
    plan = plan_surface(*fitted, budget=64, target_iou=0.62)
    assert plan.target is not None and plan.target_probability >= 0.8
    # brute force: no allocation with fewer slices reaches the target with 80%
    n, k = np.meshgrid(np.arange(1, 17), np.arange(1, 21), indexing="ij")
    n, k = n.ravel(), k.ravel()
    probability = surface.predictive(n, k, np.zeros_like(n)).prob_at_least(0.62)
    assert not np.any((probability >= 0.8) & (n * k < plan.target.total_slices))
    unreachable = plan_surface(*fitted, budget=64, target_iou=0.95)
    assert unreachable.target is None and unreachable.target_probability < 0.8


def test_hours_budget_uses_the_cost_model(fitted):
    costs = CostModel(30.0, 10.0, 60.0, 0.5, "test")
    plan = plan_surface(*fitted, budget=1.0, unit="hours", costs=costs)
    assert plan.best.hours <= 1.0 + 1e-9
    n, k = plan.best.n_volumes, plan.best.slices_per_volume
    assert plan.best.hours == pytest.approx(n * (60 + 20 * k) / 3600)


def test_plan_study_reads_the_folder_and_writes_nothing(synthetic_study):
    before = sorted(p.name for p in synthetic_study.iterdir())
    plan = plan_study(synthetic_study, 64, target_iou=0.7, replicates=50)
    assert plan.surface["per_case"] and plan.surface["n_cases"] == 6
    assert plan.as_dict()["best"]["n_volumes"] == plan.best.n_volumes
    assert sorted(p.name for p in synthetic_study.iterdir()) == before


@pytest.mark.parametrize("kwargs, message", [
    ({"budget": 0}, "more than 0"),
    ({"budget": -3}, "more than 0"),
    ({"budget": 10, "unit": "days"}, "unknown budget unit"),
    ({"budget": 10, "target_iou": 1.0}, "between 0 and 1"),
    ({"budget": 10, "target_iou": 0.0}, "between 0 and 1"),
    ({"budget": 10, "volumes_available": 0}, "at least 1"),
])
def test_bad_requests(fitted, kwargs, message):
    with pytest.raises(UserError, match=message):
        plan_surface(*fitted, **kwargs)


def test_too_few_runs_say_how_many_more_and_where():
    runs = synthetic_runs(densities=(0.1, 0.2), fractions=(0.5, 1.0), repeats=1)
    runs[-1]["status"] = "pending"
    with pytest.raises(UserError) as info:
        fit_model(runs, MODEL, 2, None)
    text = str(info.value)
    assert "3 grid cells with finished runs" in text and "at least 5 cells" in text
    assert "rho=0.2, s=1 (fixed): 1 pending" in text


def test_plans_stay_within_the_studied_range_when_the_budget_allows(fitted):
    """Outside the grid the forms disagree and no bootstrap shows it: a huge budget is not all planned,
    and more volumes are looked at only up to twice the studied count."""
    plan = plan_surface(*fitted, budget=5000, volumes_available=500)
    assert plan.best.n_volumes <= 16 and plan.best.slices_per_volume <= 10 and plan.best.extrapolated is None
    assert "It spends 160 of the 5000 slices" in plan.sentence and "at most 10 slices per volume and 16 volumes" in plan.sentence
    assert plan.more_volumes is None or plan.more_volumes.n_volumes <= 32


def test_the_dense_baseline_does_not_widen_the_studied_range():
    runs = synthetic_runs(seed=9)
    dense = [dict(r, density=1.0, volume_fraction=1.0, is_dense_baseline=True, slices_per_volume=20.0,
                  n_volumes=16, budget_slices=320, run_id=f"dense-{r['repeat']}")
             for r in runs if r["density"] == 0.5 and r["volume_fraction"] == 1.0]
    surface, check = fit_model(runs + dense, MODEL, 2, None)
    assert surface.studied_range()["k"] == (2.0, 10.0)
    plan = plan_surface(surface, check, budget=60)
    assert plan.best.slices_per_volume <= 10


def test_one_repeat_gives_no_plan_without_intervals():
    runs = synthetic_runs(repeats=1)
    with pytest.raises(UserError, match="two or more finished repeats, need at least 2"):
        fit_model(runs, MODEL, 2, None)
