from __future__ import annotations

import copy

import pandas as pd
import pytest

from slicebudget.report import build_report
from slicebudget.report.records import budget_levels, runs_frame


def _best_by_hand(records):
    """Independent computation: per (dims, model, budget), the configuration with the highest mean IoU."""
    rows = [{**{k: r[k] for k in ("dims", "model", "budget_slices", "density", "volume_fraction", "policy",
                                  "interpolation")}, "iou": r["metrics"]["iou"]}
            for r in records if r["status"] == "done"]
    means = pd.DataFrame(rows).groupby(["dims", "model", "budget_slices", "density", "volume_fraction",
                                        "policy", "interpolation"])["iou"].mean().reset_index()
    return means.loc[means.groupby(["dims", "model", "budget_slices"])["iou"].idxmax()]


def test_recommendation_picks_the_highest_mean_configuration(make_records):
    records = make_records()
    report = build_report(records, with_figures=False)
    expected = _best_by_hand(records)
    assert len(report.recommendations) == len(expected)
    by_key = {(r.dims, r.model, r.budget_slices): r for r in report.recommendations}
    for row in expected.itertuples(index=False):
        rec = by_key[(row.dims, row.model, int(row.budget_slices))]
        assert rec.mean_iou == pytest.approx(row.iou)
        assert (rec.density, rec.volume_fraction, rec.policy, rec.interpolation) == (
            row.density, row.volume_fraction, row.policy, row.interpolation)
        assert rec.n_repeats == 3 and rec.ci95[0] < rec.mean_iou < rec.ci95[1]


def test_sentence_reads_right_and_uses_the_data(make_records):
    records = make_records(policy_effects={"fixed": 0.05}, with_interpolation=False)
    report = build_report(records, with_figures=False)
    rec = next(r for r in report.recommendations if r.dims == 2 and r.budget_slices == 200)
    assert rec.sentence == "At 200 slices the best studied cell annotates 40 volumes at 5 slices each, at a fixed interval."
    assert (rec.n_volumes, rec.slices_per_volume, rec.density, rec.volume_fraction) == (40, 5.0, 0.1, 1.0)
    assert rec.separable is True and "so the data separate them" in rec.separation
    dense = next(r for r in report.recommendations if r.dims == 2 and r.budget_slices == 2000)
    assert dense.sentence == "At 2,000 slices the best studied cell annotates every slice of all 40 volumes."
    assert dense.separable is None and dense.runner_up is None


def test_sentence_names_policy_interpolation_and_fractional_slices(make_records):
    records = make_records(models=(("unet3d", 3),), policy_effects={"random": 0.05}, interpolation_gain=0.2,
                           repeats=2, with_failed=False)
    for record in records:  # volumes of uneven depth: the mean annotated slices is not a whole number
        if record["density"] == 0.2 and record["volume_fraction"] == 1.0:
            record["slices_per_volume"] = 10.4
    rec = next(r for r in build_report(records, with_figures=False).recommendations if r.budget_slices == 400)
    assert rec.sentence == ("At 400 slices the best studied cell annotates 40 volumes at 10.4 slices each on average, at a fixed "
                            "interval, and fills the slices in between by sli2vol mask interpolation before "
                            "training.")


def test_overlapping_intervals_say_the_data_cannot_separate(make_records):
    records = make_records(volume_weight=0.0, density_weight=0.0, noise=0.02, with_interpolation=False)
    report = build_report(records, with_figures=False)
    sparse = [r for r in report.recommendations if r.budget_slices != 2000]
    assert sparse and all(r.separable is False for r in sparse)
    assert all("the data cannot separate them" in r.separation for r in sparse)


def test_single_repeat_gives_no_interval(make_records):
    report = build_report(make_records(repeats=1, with_interpolation=False), with_figures=False)
    rec = next(r for r in report.recommendations if r.budget_slices == 200)
    assert rec.ci95 is None and rec.n_repeats == 1 and rec.separable is None
    assert "n=1, no interval" in rec.separation


def test_budget_levels_group_rounded_budgets(make_records):
    records = make_records(models=(("unet2d", 2),), with_failed=False, with_interpolation=False, repeats=1)
    for record in records:  # rounding makes rho=0.2, s=0.5 cost 204 slices instead of 200
        if (record["density"], record["volume_fraction"]) == (0.2, 0.5):
            record["budget_slices"] = 204
    levels = budget_levels(runs_frame(records))
    same = levels.loc[levels["budget_slices"].isin([200, 204]), "budget_level"].unique()
    assert list(same) == [200]  # the level is named by the median of its configurations' budgets
    strict = budget_levels(runs_frame(records), tolerance=0.0)
    assert strict.loc[strict["budget_slices"].isin([200, 204]), "budget_level"].nunique() == 2


def test_inputs_are_not_mutated_and_results_are_deterministic(make_records):
    records = make_records()
    before = copy.deepcopy(records)
    first = build_report(records, with_figures=False)
    second = build_report(records, with_figures=False)
    assert records == before
    assert [r.as_dict() for r in first.recommendations] == [r.as_dict() for r in second.recommendations]
