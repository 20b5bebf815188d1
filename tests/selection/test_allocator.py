"""Budget allocation: volume counts, pairing across policies, scopes, and replayable plans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.selection import SCOPES, SelectionPlan, draw_volumes, get_policy, plan_selection


@pytest.fixture
def volumes():
    rng = np.random.default_rng(5)
    return {f"case_{i:02d}": rng.normal(size=(20 + 3 * i, 8, 8)).astype(np.float32) for i in range(8)}


@pytest.mark.parametrize(("fraction", "expected"), [(1 / 8, 1), (0.25, 2), (0.5, 4), (1.0, 8), (0.01, 1)])
def test_volume_count(volumes, fraction, expected):
    plan = plan_selection(volumes, "fixed", 0.1, fraction, seed=0)
    assert len(plan.n_slices_total) == expected and len(plan.chosen) == expected


def test_same_seed_same_volumes_for_every_policy_and_scope(volumes):
    drawn = {
        (policy, scope): plan_selection(volumes, policy, 0.2, 0.5, seed=4, scope=scope).drawn
        for policy in ("fixed", "random", "coreset")
        for scope in SCOPES
    }
    assert len(set(drawn.values())) == 1
    assert draw_volumes(volumes, 0.5, 4) == next(iter(drawn.values()))
    assert len({draw_volumes(volumes, 0.5, s) for s in range(10)}) > 1


def test_smaller_fraction_draws_a_subset(volumes):
    for seed in range(5):
        assert set(draw_volumes(volumes, 0.25, seed)) <= set(draw_volumes(volumes, 0.5, seed))


def test_per_volume_counts_and_budget(volumes):
    plan = plan_selection(volumes, "random", 0.2, 1.0, seed=1)
    for case_id, slices in plan.chosen.items():
        depth = volumes[case_id].shape[0]
        assert len(slices) == round(0.2 * depth) and plan.n_slices_total[case_id] == depth
        assert slices == sorted(set(slices)) and 0 <= slices[0] and slices[-1] < depth
    assert plan.budget == sum(round(0.2 * v.shape[0]) for v in volumes.values())


def test_volume_picks_do_not_depend_on_other_volumes(volumes):
    half = plan_selection(volumes, "random", 0.3, 0.5, seed=2)
    full = plan_selection(volumes, "random", 0.3, 1.0, seed=2)
    for case_id, slices in half.chosen.items():
        assert full.chosen[case_id] == slices


@pytest.mark.parametrize("policy", ["fixed", "random", "coreset"])
def test_dataset_scopes_spend_the_same_budget(volumes, policy):
    plans = {scope: plan_selection(volumes, policy, 0.2, 0.5, seed=3, scope=scope) for scope in SCOPES}
    assert len({p.budget for p in plans.values()}) == 1
    quota, per_volume = plans["dataset-quota"], plans["volume"]
    assert {c: len(s) for c, s in quota.chosen.items()} == {c: len(s) for c, s in per_volume.chosen.items()}
    assert set(plans["dataset"].chosen) <= set(plans["dataset"].n_slices_total)


def test_plan_is_deterministic_and_round_trips_through_json(volumes):
    a = plan_selection(volumes, "coreset", 0.2, 0.5, seed=9, scope="dataset")
    b = plan_selection(volumes, get_policy("coreset"), 0.2, 0.5, seed=9, scope="dataset")
    assert a == b
    text = json.dumps(a.to_json())
    assert SelectionPlan.from_json(json.loads(text)) == a
    assert json.loads(text)["budget"] == a.budget


def test_lazy_mapping_reads_only_drawn_volumes(volumes):
    reads = []

    class Lazy(dict):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    plan = plan_selection(Lazy(volumes), "coreset", 0.2, 0.25, seed=0, scope="dataset-quota")
    assert sorted(reads) == sorted(plan.n_slices_total) and len(reads) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"density": 0}, {"density": 1.5}, {"volume_fraction": 0}, {"volume_fraction": 2},
        {"scope": "global"}, {"policy": "smart"}, {"seed": -1},
    ],
)
def test_bad_arguments(volumes, kwargs):
    args = {"policy": "fixed", "density": 0.1, "volume_fraction": 0.5, "seed": 0, **kwargs}
    with pytest.raises(UserError):
        plan_selection(volumes, **args)


def test_from_json_rejects_inconsistent_plans(volumes):
    data = plan_selection(volumes, "fixed", 0.1, 0.25, seed=0).to_json()
    case_id = next(iter(data["chosen"]))
    data["chosen"][case_id] = [0, 10_000]
    with pytest.raises(UserError, match="invalid slices"):
        SelectionPlan.from_json(data)
    with pytest.raises(UserError, match="lacks"):
        SelectionPlan.from_json({"policy": "fixed"})
