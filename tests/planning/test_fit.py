"""The fit recovers a known surface; the self-check and the form choice behave on known data."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.bench.planning import TrueSurface, synthetic_runs
from slicebudget.planning.fit import cell_weights, fit_grid, loco_grid, refit_held_out, training_inputs
from slicebudget.planning.forms import FORMS
from slicebudget.planning.observations import observations
from slicebudget.planning.plan import fit_model
from slicebudget.planning.selfcheck import largest_budget_cells, noise_floor

MODEL = "unet-resnet18"


def _obs(**kwargs):
    return observations(synthetic_runs(**kwargs), MODEL, 2)


def test_power_fit_recovers_the_true_surface_inside_and_beyond_the_grid():
    truth = TrueSurface(policy_offsets=(0.0,))
    obs = _obs(truth=truth, repeat_sd=0.005, case_sd=0.01, residual_sd=0.002, seed=4)
    fit = fit_grid(FORMS["power"], training_inputs(obs), obs.cell_means(), cell_weights(obs))
    n, k = np.meshgrid([4, 6, 8, 12, 16, 24], [2, 3, 5, 8, 10, 14])
    predicted = fit.predict(n.ravel(), k.ravel(), 0)[0]
    assert np.max(np.abs(predicted - truth(n.ravel(), k.ravel()))) < 0.01
    # the exponents are found, not just the values at the cells
    assert fit.exponents[0] == pytest.approx([truth.alpha, truth.beta], rel=0.35)


def test_policy_offset_is_recovered():
    truth = TrueSurface(policy_offsets=(0.0, -0.05))
    obs = _obs(truth=truth, policies=("fixed", "random"), repeat_sd=0.003, case_sd=0.01, residual_sd=0.002)
    fit = fit_grid(FORMS["power"], training_inputs(obs), obs.cell_means(), cell_weights(obs))
    gap = fit.predict(8, 4, 0)[0, 0] - fit.predict(8, 4, 1)[0, 0]
    assert gap == pytest.approx(0.05, abs=0.01)


def test_closed_form_loco_matches_refitting_each_fold():
    obs = _obs(seed=2)
    weights, means = cell_weights(obs), obs.cell_means()
    for name in ("power", "log", "k-levels"):
        fast = loco_grid(FORMS[name], training_inputs(obs), means[None, :], weights)[0]
        for cell in range(obs.n_cells):
            slow = refit_held_out(FORMS[name], obs, cell, means[None, :], weights)[0]
            if np.isfinite(fast[cell]):
                assert fast[cell] == pytest.approx(slow, abs=1e-9), (name, cell)


def test_self_check_on_a_true_power_surface_is_close_to_its_noise_floor():
    surface, check = fit_model(synthetic_runs(seed=5, repeat_sd=0.03), MODEL, 2, None)
    assert check.loco_mae < 2.5 * check.noise_floor
    assert check.largest_mae < 0.05
    assert 0.5 <= check.coverage80 <= 1.0
    assert set(check.form_errors) >= {"power", "log", "k-levels"}
    assert check.form_errors[check.form] == min(check.form_errors.values())


def test_a_k_effect_only_the_k_levels_form_follows_chooses_it():
    """The k = 2 row dips (a policy that puts both slices near the organ's ends): the piecewise form
    wins by held-out error."""
    runs = synthetic_runs(seed=6, repeat_sd=0.005)
    for r in runs:
        bump = 0.12 if r["density"] == 0.1 else 0.0
        r["case_iou"] = {c: v - bump for c, v in r["case_iou"].items()}
    _, check = fit_model(runs, MODEL, 2, None)
    assert check.form == "k-levels" and check.non_monotone == []
    assert check.form_errors["power"] > check.form_errors["k-levels"]


def test_forms_that_lower_iou_with_more_annotation_are_found():
    """A fit falling in n is flagged; when every form falls (the data say so), all still compete."""
    from slicebudget.planning.formchoice import choose_form

    rising = observations(synthetic_runs(seed=6, repeat_sd=0.005), MODEL, 2)
    assert not {"power", "log", "k-levels"} & set(choose_form(rising)[2])
    runs = synthetic_runs(seed=6, repeat_sd=0.005)
    for r in runs:  # IoU falls by 0.1 per doubling of volumes
        r["case_iou"] = {c: v - 0.1 * np.log2(r["n_volumes"]) for c, v in r["case_iou"].items()}
    falling = observations(runs, MODEL, 2)
    form, errors, aside = choose_form(falling)
    assert form == min(errors, key=errors.get) and set(aside) >= {"power", "log", "k-levels"}


def test_a_surface_no_form_follows_is_caught_by_the_self_check():
    """IoU that zig-zags in n (no form has an n shape like that): LOCO MAE far above the noise floor,
    a large form error, and intervals that, carrying it, still cover honestly."""
    runs = synthetic_runs(seed=6, repeat_sd=0.005)
    for r in runs:
        bump = 0.15 if r["volume_fraction"] == 0.5 else 0.0
        r["case_iou"] = {c: v - bump for c, v in r["case_iou"].items()}
    _, check = fit_model(runs, MODEL, 2, None)
    assert check.loco_mae > 3 * check.noise_floor
    assert check.form_sd > 3 * check.noise_floor
    assert 0.6 <= check.coverage80 <= 1.0


def test_largest_budget_cells_are_the_top_quarter_by_n_times_k():
    obs = _obs()
    held = largest_budget_cells(obs)
    budgets = obs.budget()
    assert len(held) == 3
    assert set(budgets[held]) == set(np.sort(budgets)[-3:])


def test_noise_floor_grows_with_repeat_noise():
    assert noise_floor(_obs(repeat_sd=0.08, seed=1)) > 2 * noise_floor(_obs(repeat_sd=0.01, seed=1))
