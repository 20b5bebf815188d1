from __future__ import annotations

from slicebudget.report import build_report


def _finding(report, topic, dims):
    return next(f for f in report.findings if f.topic == topic and f.dims == dims)


def test_paper_like_data_agree_with_the_paper(make_records):
    report = build_report(make_records(), with_figures=False)
    for dims in (2, 3):
        spread = _finding(report, "spread", dims)
        assert spread.verdict == "spread" and spread.agrees_with_paper is True
        assert f"{dims}D:" in spread.text and "5 of 5 comparisons" in spread.text
        # a null result follows one rule for every topic: no agreement claimed, the detectable effect said
        for topic in ("policy", "interpolation"):
            null = _finding(report, topic, dims)
            assert null.verdict == "no-difference" and null.agrees_with_paper is None
            assert "no detectable difference; this study could have detected a difference of" in null.text.lower()


def test_data_that_contradict_the_paper_produce_the_opposite_finding(make_records):
    # Fewer volumes at higher density wins at every budget: the report must say so.
    records = make_records(volume_weight=0.01, density_weight=0.08)
    report = build_report(records, with_figures=False)
    for dims in (2, 3):
        spread = _finding(report, "spread", dims)
        assert spread.verdict == "concentrate" and spread.agrees_with_paper is False
        assert "in 0 of 5 comparisons" in spread.text and "opposite of the paper" in spread.text
    rec = next(r for r in report.recommendations if r.dims == 2 and r.budget_slices == 200)
    assert rec.sentence.startswith("At 200 slices the best studied cell annotates 10 volumes at 20 slices each")


def test_2d_and_3d_are_judged_separately(make_records):
    records = (make_records(models=(("unet2d", 2),))
               + make_records(models=(("unet3d", 3),), volume_weight=0.01, density_weight=0.08,
                              with_failed=False))
    report = build_report(records, with_figures=False)
    assert _finding(report, "spread", 2).verdict == "spread"
    assert _finding(report, "spread", 3).verdict == "concentrate"


def test_a_policy_effect_beyond_repeat_noise_is_reported(make_records):
    report = build_report(make_records(policy_effects={"coreset": 0.03}), with_figures=False)
    policy = _finding(report, "policy", 2)
    assert policy.verdict == "matters" and policy.agrees_with_paper is False
    assert "coreset (+0.020)" in policy.text  # 0.03 above the other two -> +0.02 above the triplet mean


def test_interpolation_verdicts_follow_the_data(make_records):
    helps = build_report(make_records(interpolation_gain=0.03), with_figures=False)
    hurts = build_report(make_records(interpolation_gain=-0.03), with_figures=False)
    assert _finding(helps, "interpolation", 3).verdict == "helps"
    assert _finding(helps, "interpolation", 3).agrees_with_paper is False
    assert _finding(hurts, "interpolation", 2).verdict == "hurts"
    assert "Clear loss at rho = 0.1, 0.2, 0.4" in _finding(hurts, "interpolation", 2).text
    none = build_report(make_records(with_interpolation=False), with_figures=False)
    assert not [f for f in none.findings if f.topic == "interpolation"]


def test_single_repeat_findings_do_not_overclaim(make_records):
    report = build_report(make_records(repeats=1), with_figures=False)
    spread = _finding(report, "spread", 2)
    assert spread.verdict == "no-difference" and spread.agrees_with_paper is None  # no interval with n=1
    assert "with a single repeat this study cannot say" in spread.text
    assert _finding(report, "interpolation", 2).verdict == "no-difference"


def test_differences_inside_repeat_noise_are_inconclusive(make_records):
    # The means still lean towards more volumes, but the repeats scatter far more than the effect.
    report = build_report(make_records(volume_weight=0.01, noise=0.2), with_figures=False)
    spread = _finding(report, "spread", 2)
    assert spread.verdict == "no-difference" and spread.agrees_with_paper is None
    assert "neither confirm nor contradict" in spread.text
    assert "this study could have detected a difference of" in spread.text


def test_comparisons_are_paired_over_repeats_and_cases(make_records):
    """A small spread effect hidden under large repeat-level noise shared by every cell of a repeat is
    found by pairing (the noise cancels in the difference), and per-case IoU enter the count."""
    import numpy as np

    records = make_records(volume_weight=0.01, density_weight=0.0, noise=0.0, with_interpolation=False,
                           policies=("fixed",))
    rng = np.random.default_rng(0)
    shared = {repeat: rng.normal(0, 0.15) for repeat in range(3)}
    for r in records:
        if r["status"] == "done":
            r["metrics"]["iou"] += shared[r["repeat"]]
            r["case_iou"] = {f"c{i}": r["metrics"]["iou"] + 0.01 * i for i in range(4)}
    spread = _finding(build_report(records, with_figures=False), "spread", 2)
    assert spread.verdict == "spread" and "3 repeats x 4 test cases" in spread.text
    # the unpaired view (intervals over repeats of each configuration) cannot see it
    report = build_report(records, with_figures=False)
    configs = report.tables["rho_s"]
    assert (configs["ci_high"] - configs["ci_low"]).min() > 0.1
