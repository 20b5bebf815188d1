"""The form choice in the plan's uncertainty: each bootstrap replicate picks its own form, and
P(best beats runner-up) reads Student-t differences (three repeats measure a spread with 2 df)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slicebudget.bench.calibration import (
    CASES, DENSITIES, DEPTH, FRACTIONS, N_TOTAL, REPEAT_SD, RESIDUAL_SD, CASE_SD, world,
)
from slicebudget.bench.planning import TrueSurface, synthetic_runs
from slicebudget.planning.bootstrap import Predictive, t_scales
from slicebudget.planning.formchoice import choose_form, choose_forms, winners
from slicebudget.planning.forms import FORMS
from slicebudget.planning.plan import fit_model, plan_surface
from slicebudget.planning.surface import fit_surface

MODEL = "unet-resnet18"


def _bump_world(seed: int):
    truth = world("bump", seed)
    return truth, synthetic_runs(truth, DENSITIES, FRACTIONS, repeats=3, cases=CASES, n_total=N_TOTAL, depth=DEPTH,
                                 repeat_sd=REPEAT_SD, case_sd=CASE_SD, residual_sd=RESIDUAL_SD, seed=seed)


@pytest.fixture(scope="module")
def two_forms():
    """Bump world 29 of ``bench calibration`` (found by looking for such a world among 60): k-levels and
    power predict held-out cells about equally well (LOCO MAE 0.0075 vs 0.0084) and disagree at 60
    slices (10 x 6 against 6 x 10)."""
    truth, runs = _bump_world(29)
    return truth, fit_model(runs, MODEL, 2, None)


def test_two_forms_that_fit_equally_well_and_disagree_give_p_near_a_half(two_forms):
    truth, (surface, check) = two_forms
    errors = check.form_errors
    assert check.form == "k-levels" and errors["power"] < 1.15 * errors["k-levels"]
    plan = plan_surface(surface, check, 60)
    other = plan_surface(fit_surface(surface.obs, FORMS["power"], form_var=check.form_sd ** 2), check, 60)
    assert (plan.best.n_volumes, other.best.n_volumes) == (10, 6)  # the forms disagree on the plan
    shares = surface.form_shares()
    assert shares["k-levels"] > 0.3 and shares["power"] > 0.3  # both win resamples
    # the chosen form alone is sure of its plan; with the form choice redone per replicate it is not
    single = fit_surface(surface.obs, surface.form, form_var=check.form_sd ** 2)
    assert plan_surface(single, check, 60).prob_best_beats_runner_up >= 0.9
    assert plan.prob_best_beats_runner_up < 0.7
    # the form mixture alone does most of that (the Student-t scales do the rest)
    assert plan_surface(dataclasses.replace(surface, t_scale=None), check, 60).prob_best_beats_runner_up < 0.75


def test_the_plan_stays_the_chosen_forms_argmax(two_forms):
    _, (surface, check) = two_forms
    single = fit_surface(surface.obs, surface.form, form_var=check.form_sd ** 2)
    for budget in (24, 40, 60, 100):
        a, b = plan_surface(surface, check, budget), plan_surface(single, check, budget)
        assert a.best == dataclasses.replace(b.best, interval80=a.best.interval80, interval95=a.best.interval95)
        assert a.best.expected_iou == b.best.expected_iou


def test_a_clearly_better_plan_on_a_clean_in_family_grid_keeps_p_near_one():
    truth = TrueSurface(policy_offsets=(0.0,), b=0.8, c=0.05)  # volumes matter, slices hardly
    runs = synthetic_runs(truth, DENSITIES, FRACTIONS, repeats=3, cases=CASES, n_total=N_TOTAL, depth=DEPTH,
                          repeat_sd=0.005, case_sd=0.02, residual_sd=0.005, seed=1)
    surface, check = fit_model(runs, MODEL, 2, None)
    for budget in (24, 60):
        plan = plan_surface(surface, check, budget)
        assert truth(plan.best.n_volumes, plan.best.slices_per_volume) > truth(plan.runner_up.n_volumes,
                                                                               plan.runner_up.slices_per_volume) + 0.01
        assert plan.prob_best_beats_runner_up >= 0.97


def test_the_point_rule_is_the_replicate_rule_on_row_zero():
    _, runs = _bump_world(3)
    surface, check = fit_model(runs, MODEL, 2, None)
    obs = surface.obs
    names, errors, aside, _ = choose_forms(obs, obs.cell_means()[None, :])
    assert names[int(winners(errors, aside)[0])] == choose_form(obs)[0] == check.form


def test_winners_skip_forms_set_aside_unless_every_form_is():
    errors = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    aside = np.array([[True, False, False], [True, True, True], [False, False, False]])
    assert winners(errors, aside).tolist() == [1, 0, 2]


def test_p_reads_student_t_differences_with_repeats_minus_one_df():
    """Bootstrap differences normal around d with SD s: P is Phi(d / s) without the t scales and
    T_2(d / s) with three repeats' (d / s = 2: 0.977 against 0.908)."""
    from scipy.stats import norm, t

    z = norm.ppf((np.arange(4000) + 0.5) / 4000)
    surfaces = np.column_stack([0.02 + 0.01 * z, np.zeros_like(z)])
    plain = Predictive(np.array([0.02, 0.0]), surfaces, np.zeros(2))
    assert plain.prob_beats(0, 1) == pytest.approx(norm.cdf(2.0), abs=0.002)
    scaled = dataclasses.replace(plain, t_scale=t_scales(3, z.size, seed=0))
    assert scaled.prob_beats(0, 1) == pytest.approx(t.cdf(2.0, 2), abs=0.015)
    assert np.all(t_scales(1, 5, 0) == 1.0)  # one repeat: no spread to scale


def test_a_surface_whose_replicates_did_not_choose_claims_no_shares(two_forms):
    _, (surface, check) = two_forms
    single = fit_surface(surface.obs, surface.form, form_var=check.form_sd ** 2)
    plan = plan_surface(single, check, 60)
    assert single.form_shares() == {} and plan.form_note == "k-levels" and plan.shares_note == ""
    assert "of resamples" in plan_surface(surface, check, 60).form_note
