"""`budget-study plan`: the table and JSON, and every bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest

from slicebudget.cli.main import main


def test_plan_prints_the_table_and_writes_json(synthetic_study, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", str(synthetic_study), "--budget", "64", "--target-iou", "0.7", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "For 64 slices, annotate" in text and "Self-check" in text and "leave-one-cell-out MAE" in text
    assert "Form: " in text and "of resamples" in text
    plan = json.loads(out.read_text())
    assert plan["best"]["total_slices"] <= 64
    assert {"interval80", "interval95", "extrapolated"} <= set(plan["best"])
    assert plan["runner_up"] and 0 <= plan["prob_best_beats_runner_up"] <= 1
    assert plan["target"]["expected_iou"] > 0 and plan["self_check"]["loco_mae"] >= 0
    shares = plan["surface"]["form_shares"]
    assert sum(shares.values()) == pytest.approx(1.0) and plan["surface"]["form"] in plan["form_note"]


def test_volume_cap_is_said(synthetic_study, capsys):
    assert main(["plan", str(synthetic_study), "--budget", "64", "--volumes-available", "5"]) == 0
    text = capsys.readouterr().out
    assert "needs" in text and "you have 5" in text


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "more than 0"),
    (["--budget", "-5"], "more than 0"),
    (["--budget", "10", "--target-iou", "1.2"], "between 0 and 1"),
    (["--budget", "10", "--unit", "weeks"], "unknown budget unit"),
])
def test_bad_arguments(synthetic_study, tmp_path, capsys, args, message):
    out = tmp_path / "plan.json"
    assert main(["plan", str(synthetic_study), *args, "--json", str(out)]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_not_a_study(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", str(tmp_path), "--budget", "10", "--json", str(out)]) == 2
    assert "not a study folder" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_bad_cost_file(synthetic_study, tmp_path, capsys):
    costs = tmp_path / "c.costs.json"
    costs.write_text('{"format": "slicebudget-annotation-costs", "version": 1, "volumes": "no"}')
    out = tmp_path / "plan.json"
    assert main(["plan", str(synthetic_study), "--budget", "2", "--unit", "hours", "--costs", str(costs),
                 "--json", str(out)]) == 2
    assert "malformed cost file" in _one_error_line(capsys)
    assert not out.exists()


def test_too_few_runs(synthetic_study, tmp_path, capsys):
    from slicebudget.study.store import StudyStore

    study = tmp_path / "study"
    shutil.copytree(synthetic_study, study)
    with StudyStore(study) as store:
        for run in store.runs():
            if run["density"] != 0.1 or run["volume_fraction"] > 0.5:
                store.mark_failed(run["run_id"], "out of memory")
    assert main(["plan", str(study), "--budget", "10"]) == 2
    line = _one_error_line(capsys)
    assert "too few finished runs" in line and "2 grid cells" in line and "1 failed" not in line
    assert "3 failed" in line


def test_plan_imports_no_heavy_module(synthetic_study):
    import subprocess
    import sys

    code = ("import sys; from slicebudget.cli.main import main; "
            f"main(['plan', {str(synthetic_study)!r}, '--budget', '20']); "
            "print('heavy:' + ','.join(m for m in ('torch', 'matplotlib', 'pandas', 'napari', 'scipy.stats') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy:"


def test_report_ends_with_the_planners_plans(synthetic_study, tmp_path, capsys):
    study = tmp_path / "study"
    shutil.copytree(synthetic_study, study)
    assert main(["report", str(study)]) == 0
    out = capsys.readouterr().out
    assert "planned from the budget surface" in out and "For 32 slices, annotate" in out
    assert "Self-check: leave-one-cell-out MAE" in out and "80% intervals cover" in out
