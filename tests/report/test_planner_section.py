"""The report's planner sections come from the planner: one plan per studied budget, the self-check, figures."""

from __future__ import annotations

from html import escape as html_escape

from slicebudget.bench.planning import synthetic_runs
from slicebudget.report.build import build_report, report_dict
from slicebudget.report.render import render_html


def test_report_plans_every_studied_budget_with_its_self_check():
    records = synthetic_runs(seed=11)
    report = build_report(records)
    (planned,) = report.planning.models
    budgets = sorted({r["n_volumes"] * r["slices_per_volume"] for r in records})
    assert [p.budget for p in planned.plans] == budgets
    assert all(p.best.total_slices <= p.budget for p in planned.plans)
    assert planned.self_check.loco_mae > 0 and planned.frontier_slices and planned.frontier_hours
    assert {"budget_surface", "planning_frontier"} <= set(report.figures)
    html = render_html(report, "t")
    assert "Plan: the budget surface" in html and planned.plans[0].sentence in html
    assert "leave-one-cell-out MAE" in html and "noise floor" in html
    note = planned.plans[0].shares_note  # how often the resamples chose each form
    assert note.startswith("won ") and html_escape(note, quote=False) in html
    # one instruction per report: the studied cells are the plan's evidence, never a second "annotate ..."
    assert "The plan above is the recommendation" in html
    evidence = html.split('<section id="recommendations">')[1].split("</section>")[0]
    assert "best studied cell annotates" in evidence and ", annotate" not in evidence
    assert report_dict(report)["planning"]["models"][0]["plans"][0]["best"]["n_volumes"] >= 1


def test_frontier_intervals_stay_inside_zero_one():
    report = build_report(synthetic_runs(seed=12, repeat_sd=0.2), with_figures=False)
    for point in report.planning.models[0].frontier_slices:
        assert 0.0 <= point["interval80"][0] <= point["interval80"][1] <= 1.0


def test_too_few_cells_is_said_in_the_report_not_raised():
    records = synthetic_runs(densities=(0.1,), fractions=(0.5, 1.0))
    report = build_report(records, with_figures=False)
    assert report.planning.models == []
    assert "too few finished runs" in report.planning.problems[0]
    html = render_html(report, "t")
    assert "No budget surface: too few finished runs" in html
    assert "The plan above is the recommendation" not in html and "The raw evidence" in html
