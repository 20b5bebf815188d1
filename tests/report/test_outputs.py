from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest

from slicebudget.report import write_report

SECTIONS = ("recommendations", "findings", "budget-curves", "dense-drop", "policies", "interpolation",
            "timing", "failed-runs")
RECOMMENDATION_KEYS = {"budget_slices", "n_volumes", "slices_per_volume", "density", "volume_fraction",
                       "policy", "model", "dims", "mean_iou", "ci95", "n_repeats", "sentence"}


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "srcset", "data", "action"}:
                self.links.append((tag, name, value or ""))
            if name == "id":
                self.ids.add(value)


def _strict_json(path):
    def reject(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


@pytest.fixture(scope="module")
def written(tmp_path_factory, make_records):
    records = make_records()
    study = tmp_path_factory.mktemp("study")
    html_path = write_report(study, runs=records)
    return study, html_path, records


def test_html_is_self_contained_with_every_section(written):
    study, html_path, _ = written
    assert html_path == study / "report.html"
    page = html_path.read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    assert not {"link", "script", "iframe"} & set(parser.tags)
    images = [value for tag, name, value in parser.links if tag == "img"]
    assert len(images) >= 6  # two budget-curve panels, dense drop, policies, interpolation, quality
    assert all(value.startswith("data:image/png;base64,") for value in images)
    assert all(value.startswith("data:") for _, _, value in parser.links)
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert set(SECTIONS) <= parser.ids


def test_html_reports_recommendations_findings_failures_and_timing(written):
    _, html_path, _ = written
    page = html_path.read_text(encoding="utf-8")
    assert "At 200 slices the best studied cell annotates 40 volumes at 5 slices each" in page
    assert "Spreading the budget over more volumes helped here" in page
    assert "zz-failed" in page and "loss became NaN at step 12" in page
    assert "2D models" in page and "3D models" in page
    assert "inference s / case" in page


def test_summary_json_schema(written):
    study, _, records = written
    summary = _strict_json(study / "summary.json")
    assert summary["version"] == 1
    assert len(summary["runs"]) == len(records)
    assert {r["run_id"] for r in summary["runs"]} == {r["run_id"] for r in records}
    failed = next(r for r in summary["runs"] if r["status"] == "failed")
    assert failed["metrics"] == {} and failed["error"].startswith("TrainingDiverged")
    done = next(r for r in summary["runs"] if r["status"] == "done")
    assert {"iou", "dice", "hd95", "surface_dice", "liver_iou"} <= set(done["metrics"])
    recs = summary["recommendations"]
    assert len(recs) == 12  # 2 models x (5 sparse budget levels + dense)
    for rec in recs:
        assert RECOMMENDATION_KEYS <= set(rec)
        assert isinstance(rec["budget_slices"], int) and isinstance(rec["n_volumes"], int)
        assert rec["dims"] in (2, 3) and rec["policy"] in {"fixed", "random", "coreset"}
        assert rec["ci95"] is None or (len(rec["ci95"]) == 2 and rec["ci95"][0] <= rec["mean_iou"] <= rec["ci95"][1])
        assert rec["sentence"].startswith(f"At {rec['budget_slices']:,} slices the best studied cell annotates")


def test_runs_csv_and_report_json(written):
    study, _, records = written
    with open(study / "report_runs.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records)
    assert {"run_id", "metric_iou", "metric_dice", "metric_hd95", "metric_surface_dice", "metric_liver_iou"} <= set(rows[0])
    original = {r["run_id"]: r for r in records}
    for row in rows:
        if row["status"] == "done":
            assert float(row["metric_iou"]) == pytest.approx(original[row["run_id"]]["metrics"]["iou"])
    report = _strict_json(study / "report.json")
    assert {"dense_drop", "policy_deltas", "interpolation_quality", "timing", "failed", "rho_s"} <= set(report["tables"])
    assert [f["topic"] for f in report["findings"] if f["dims"] == 2] == ["spread", "policy", "interpolation"]


def test_no_temporary_files_are_left(written):
    study, _, _ = written
    assert sorted(p.name for p in study.iterdir()) == ["report.html", "report.json", "report_runs.csv",
                                                       "summary.json"]


def test_contradicting_data_report_says_so(tmp_path, make_records):
    write_report(tmp_path, runs=make_records(volume_weight=0.01, density_weight=0.08, with_interpolation=False))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "the opposite of the paper&#39;s finding" in page or "the opposite of the paper's finding" in page
    assert "differs from the paper" in page
    assert "Interpolation was not part of this study" in page


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_a_study_with_no_finished_run_still_gets_a_report(tmp_path, make_records, status):
    records = [dict(r, status=status, metrics={}, budget_slices=None) for r in make_records(repeats=1)[:4]]
    write_report(tmp_path, runs=records)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No run has finished yet, so there is nothing to recommend." in page
    summary = _strict_json(tmp_path / "summary.json")
    assert summary["recommendations"] == [] and len(summary["runs"]) == 4
    if status == "pending":
        assert "4 run(s) had not finished" in page
