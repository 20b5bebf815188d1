from __future__ import annotations

import numpy as np
import pandas as pd
import pytest



@pytest.fixture
def report(paper_like_report):
    return paper_like_report


def _raw(report):
    return report.frame.loc[report.frame["status"] == "done"]


def test_policy_deltas_sum_to_zero_and_match_hand_computation(report):
    deltas = report.tables["policy_deltas"]
    sums = deltas.groupby(["dims", "model", "density", "volume_fraction", "repeat"])["delta"].sum()
    assert np.allclose(sums, 0.0)
    raw = _raw(report)
    group = raw.loc[(raw["model"] == "unet2d") & (raw["density"] == 0.2) & (raw["volume_fraction"] == 0.5)
                    & (raw["repeat"] == 1) & (raw["interpolation"] == "off")]
    expected = group.set_index("policy")["metric_iou"] - group["metric_iou"].mean()
    got = deltas.loc[(deltas["model"] == "unet2d") & (deltas["density"] == 0.2)
                     & (deltas["volume_fraction"] == 0.5) & (deltas["repeat"] == 1)].set_index("policy")["delta"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_dense_drop_is_config_mean_minus_dense_mean(report):
    raw = _raw(report)
    model = raw.loc[(raw["model"] == "unet3d") & (raw["interpolation"] == "off")]
    dense = model.loc[model["is_dense_baseline"], "metric_iou"].mean()
    config = model.loc[(model["density"] == 0.1) & (model["volume_fraction"] == 0.25), "metric_iou"].mean()
    drop = report.tables["dense_drop"]
    row = drop.loc[(drop["model"] == "unet3d") & (drop["density"] == 0.1) & (drop["volume_fraction"] == 0.25)]
    assert row["drop"].item() == pytest.approx(config - dense)
    assert (drop["drop"] < 0).all()  # the synthetic sparse configurations are all below dense


def test_interpolation_quality_is_table_3_layout(report):
    quality = report.tables["interpolation_quality"]
    assert set(quality["method"]) == {"sli2vol"}
    assert quality.set_index("density")["interp_iou"].to_dict() == pytest.approx(
        {0.1: 0.88, 0.2: 0.91, 0.4: 0.97})


def test_timing_and_failed_tables(report):
    timing = report.tables["timing"].set_index("model")
    assert timing.loc["unet2d", "seconds_infer_per_case"] == pytest.approx(1.0)
    assert timing.loc["unet3d", "seconds_infer_per_case"] == pytest.approx(1.5)
    # CPU seconds beside wall seconds, and the mean IoU beside both (the run-cost table).
    assert timing.loc["unet3d", "cpu_seconds_train"] == pytest.approx(120.0)
    assert timing.loc["unet2d", "cpu_seconds_infer_per_case"] == pytest.approx(0.4)
    done = report.frame.loc[(report.frame["status"] == "done") & (report.frame["model"] == "unet3d")]
    assert timing.loc["unet3d", "iou"] == pytest.approx(done["metric_iou"].mean())
    failed = report.tables["failed"]
    assert failed["run_id"].tolist() == ["zz-failed"]
    assert "loss became NaN" in failed["error"].item()
    assert report.status_counts == {"done": len(report.frame) - 1, "failed": 1}


def test_interpolation_provenance_table_averages_the_runs_summaries(make_records, tmp_path):
    from slicebudget.report import write_report
    from slicebudget.report.build import build_report

    records = make_records()
    for r in records:
        if r["interpolation"] != "off":
            learned = 0.8 if r["density"] == 0.1 else 0.6
            r["interp_provenance"] = {
                "foreground": {"learned": learned, "interpolation": 1 - learned, "nearest": 0.0},
                "slices": {"learned": 0.5, "interpolation": 0.3, "nearest": 0.0, "stopped": 0.2, "none": 0.0},
                "confidence": 0.7, "slice_iou": 0.65, "filled_slices": 10}
    table = build_report(records, with_figures=False).tables["interpolation_provenance"]
    row = table.loc[(table["method"] == "sli2vol") & (table["density"] == 0.1)].iloc[0]
    assert row["interp_fg_learned"] == pytest.approx(0.8) and row["interp_fg_interpolation"] == pytest.approx(0.2)
    assert row["interp_slices_stopped"] == pytest.approx(0.2) and row["interp_confidence"] == pytest.approx(0.7)
    assert row["n_runs"] == 6  # 2 models x 3 repeats
    page = write_report(tmp_path, runs=records).read_text(encoding="utf-8")
    assert "Where the interpolated masks came from" in page and "0.650" in page
    # runs recorded before provenance existed: no table, no error
    assert build_report(make_records(), with_figures=False).tables["interpolation_provenance"].empty
