"""Which surface form: the rule, for the study's cell means and for each bootstrap replicate alike.

The rule (``choose_forms``): every usable form's leave-one-cell-out (LOCO) MAE; the smallest wins among
the forms whose fit never lowers IoU when volumes or slices are added (a fit that does follows noise,
and a plan would buy less annotation to get more IoU); all forms compete when none qualifies.

``choose_form`` applies it to the study's cell means: the plan's form. ``surface.chosen_surface``
applies it (``choose_forms``) to the cell means and to each bootstrap replicate's own resampled cell
means in one pass, so the replicates carry the uncertainty of the form choice as well as of the fit
(bootstrap model selection: Efron 2014, "Estimation and accuracy after model selection"). Each
replicate is then fitted with the form it chose, and a close call between two forms that disagree on
the plan shows in P(best beats runner-up) and the intervals, where replicates of the chosen form
alone would be sure of a plan that nearly half the resamples reject. Why this and not a fixed mixture
of the forms near the best error (the adaptive design's pool): it needs no threshold, and a form
enters each replicate by the same rule that chose the plan's form, as often as the data support it.
LOCO per form for every replicate is cheap: ``fit.loco_grid`` takes all replicates at once.
"""

from __future__ import annotations

import numpy as np

from slicebudget.planning.fit import Fit, cell_weights, loco_predictions, training_inputs
from slicebudget.planning.forms import usable_forms
from slicebudget.planning.observations import Observations

MONOTONE_TOLERANCE = 0.01


def _falls(obs: Observations, fit: Fit) -> np.ndarray:
    """(rows,) whether each row of ``fit`` lowers the expected IoU by more than MONOTONE_TOLERANCE
    anywhere on the studied grid when volumes or slices per volume are added."""
    n = np.geomspace(obs.n.min(), obs.n.max(), 8)
    k = np.geomspace(obs.k.min(), obs.k.max(), 8)
    nn, kk = np.meshgrid(n, k, indexing="ij")
    out = np.zeros(fit.coef.shape[0], dtype=bool)
    for level in range(len(obs.levels)):
        grid = fit.predict(nn, kk, level).reshape(-1, n.size, k.size)
        out |= (np.diff(grid, axis=1).min(axis=(1, 2)) < -MONOTONE_TOLERANCE)
        out |= (np.diff(grid, axis=2).min(axis=(1, 2)) < -MONOTONE_TOLERANCE)
    return out


def choose_forms(obs: Observations, targets: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Fit]]:
    """The rule (module docstring) applied to each row of ``targets`` (rows, cells) as cell means.

    Returns the usable forms' names, their (rows, forms) LOCO MAE, the (rows, forms) mask of forms set
    aside as non-monotone, and each form's fit to every row (so a caller need not fit again)."""
    targets = np.atleast_2d(targets)
    at, weights = training_inputs(obs), cell_weights(obs)
    names, errors, aside, fits = [], [], [], {}
    for form in usable_forms(at, obs.n_cells):
        pred, fits[form.name] = loco_predictions(form, obs, targets, weights, with_fit=True)
        names.append(form.name)
        errors.append(np.mean(np.abs(np.clip(pred, 0.0, 1.0) - targets), axis=1))
        aside.append(_falls(obs, fits[form.name]))
    if not names:
        raise ValueError("no surface form can be identified from these cells")
    return names, np.column_stack(errors), np.column_stack(aside), fits


def winners(errors: np.ndarray, aside: np.ndarray) -> np.ndarray:
    """(rows,) index of each row's form: the smallest error among forms not set aside (all when every
    form is set aside in that row)."""
    pool = np.where(aside.all(axis=1, keepdims=True), False, aside)
    return np.argmin(np.where(pool, np.inf, errors), axis=1)


def row_verdict(names: list[str], errors: np.ndarray, aside: np.ndarray, row: int = 0
                ) -> tuple[str, dict[str, float], list[str]]:
    """Row ``row`` of :func:`choose_forms`'s output in words: its form, every form's LOCO MAE and the
    forms set aside."""
    return (names[int(winners(errors[row:row + 1], aside[row:row + 1])[0])],
            dict(zip(names, map(float, errors[row]))), [name for name, off in zip(names, aside[row]) if off])


def choose_form(obs: Observations) -> tuple[str, dict[str, float], list[str]]:
    """The plan's form (the rule on the study's cell means), every form's LOCO MAE and the forms set aside."""
    names, errors, aside, _ = choose_forms(obs, obs.cell_means()[None, :])
    return row_verdict(names, errors, aside)
