"""The form error in the intervals: estimated from held-out residuals, near 0 when the form is right,
calibrating the self-check when it is not, and never estimated from the cell it is applied to."""

from __future__ import annotations

import numpy as np
import pytest

import slicebudget.planning.selfcheck as selfcheck
from slicebudget.bench.planning import TrueSurface, synthetic_runs
from slicebudget.planning.bootstrap import Predictive
from slicebudget.planning.formerror import paule_mandel
from slicebudget.planning.observations import observations
from slicebudget.planning.plan import fit_model

MODEL = "unet-resnet18"
GRID = {"fractions": (0.25, 0.5, 0.75, 1.0), "truth": TrueSurface(policy_offsets=(0.0,)), "repeat_sd": 0.02}


def _shifted(runs, shift):
    """Add ``shift(n, k)`` to every case IoU of the runs at (n, k)."""
    for r in runs:
        d = shift(r["n_volumes"], r["slices_per_volume"])
        r["case_iou"] = {c: v + d for c, v in r["case_iou"].items()}
    return runs


def _bump(seed: int, height: float = 0.12):
    """A power surface plus a bump of +-height somewhere inside the grid: no form of the planner's
    family has it."""
    rng = np.random.default_rng(1000 + seed)
    cn, ck, h = rng.uniform(np.log(4), np.log(16)), rng.uniform(np.log(2), np.log(10)), height * rng.choice([-1, 1])
    return _shifted(synthetic_runs(seed=seed, **GRID),
                    lambda n, k: h * np.exp(-((np.log(n) - cn) ** 2 + (np.log(k) - ck) ** 2) / (2 * 0.35 ** 2)))


def test_paule_mandel_recovers_the_excess_variance():
    rng = np.random.default_rng(0)
    known = rng.uniform(0.5, 2.0, 4000) * 1e-4
    assert paule_mandel(rng.normal(0, np.sqrt(known)), known) < 0.1e-4  # nothing beyond u: ~0
    tau2 = paule_mandel(rng.normal(0, np.sqrt(known + 4e-4)), known)
    assert tau2 == pytest.approx(4e-4, rel=0.1)
    assert paule_mandel(np.zeros(3), np.ones(3)) == 0.0


def test_a_surface_in_the_family_gets_a_form_error_near_zero():
    sds = [np.sqrt(fit_model(synthetic_runs(seed=s, **GRID), MODEL, 2, None)[0].form_var) for s in range(6)]
    assert np.median(sds) < 0.004  # against a repeat SD of 0.02
    assert max(sds) < 0.015


def test_independent_cell_effects_are_recovered():
    """IoU = power surface + an independent N(0, 0.03^2) effect per cell: exactly the model's form error."""
    sds = []
    for s in range(6):
        effect = np.random.default_rng(50 + s).normal(0, 0.03, 64)
        sds.append(np.sqrt(fit_model(_shifted(synthetic_runs(seed=s, **GRID),
                                                  lambda n, k: effect[int(n) * 3 + int(k)]), MODEL, 2, None)[0].form_var))
    assert 0.018 < np.median(sds) < 0.045


def test_a_bump_outside_the_family_is_covered_about_80_percent_only_with_the_form_error(monkeypatch):
    worlds = [_bump(s) for s in range(10)]
    with_term = np.mean([fit_model(runs, MODEL, 2, None)[1].coverage80 for runs in worlds])
    monkeypatch.setattr(selfcheck, "form_variance", lambda *args, **kwargs: 0.0)
    without = np.mean([fit_model(runs, MODEL, 2, None)[1].coverage80 for runs in worlds])
    assert 0.7 <= with_term <= 0.9
    assert without < with_term - 0.12


def test_a_held_out_cell_never_informs_its_own_interval():
    """Moving one cell's runs (its repeat spread kept) leaves that cell's interval exactly where it
    was: its prediction, repeat SD and form error all come from the other cells. Estimating the form
    error from all cells would widen it, since the moved cell's residual is then large."""
    base = synthetic_runs(seed=3, **GRID)
    moved = _shifted(synthetic_runs(seed=3, **GRID), lambda n, k: -0.2 if (n, k) == (8, 4) else 0.0)
    obs = observations(base, MODEL, 2)
    cell = int(np.flatnonzero((obs.n == 8) & (obs.k == 4))[0])
    # the form is fixed here: which form wins is chosen on every cell's held-out error (documented)
    before = selfcheck.self_check(obs, "power").loco[cell]
    after = selfcheck.self_check(observations(moved, MODEL, 2), "power").loco[cell]
    assert after.observed == pytest.approx(before.observed - 0.2)
    assert (after.low80, after.high80, after.predicted) == pytest.approx((before.low80, before.high80, before.predicted))
    assert not after.covered


def test_form_error_does_not_shrink_with_more_campaigns():
    surfaces = np.full((50, 1), 0.6)
    pred = Predictive(np.array([0.6]), surfaces, np.array([0.05]), 0.03)
    low, high = pred.interval(0.8, campaigns=1000)
    assert high[0] - low[0] == pytest.approx(2 * 1.2816 * 0.03, rel=0.1)
    low1, high1 = pred.interval(0.8)
    assert high1[0] - low1[0] == pytest.approx(2 * 1.2816 * np.hypot(0.03, 0.05), rel=0.1)
    assert pred.prob_at_least(0.6 + 0.0583)[0] == pytest.approx(0.15866, abs=0.01)  # 1 SD of hypot(0.03, 0.05)


def test_form_error_makes_a_close_call_less_certain():
    """Best and runner-up 0.01 apart on every bootstrap surface: certain without form error, about
    Phi(0.01 / (0.02 sqrt 2)) = 0.64 with a form error of SD 0.02 at each."""
    surfaces = np.column_stack([np.full(40, 0.71), np.full(40, 0.70)])
    sure = Predictive(surfaces[0], surfaces, np.full(2, 0.05))
    assert sure.prob_beats(0, 1) == 1.0 and sure.prob_beats(1, 0) == 0.0
    unsure = Predictive(surfaces[0], surfaces, np.full(2, 0.05), 0.02)
    assert unsure.prob_beats(0, 1) == pytest.approx(0.638, abs=0.01)
    assert unsure.prob_beats(0, 1) + unsure.prob_beats(1, 0) == pytest.approx(1.0)
