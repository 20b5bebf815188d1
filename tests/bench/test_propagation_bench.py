"""`budget-study bench propagation`: per-class IoU beside the class mean, and ITK's mci in-process."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.data.phantoms import write_phantom_dataset
from slicebudget.bench.propagation import format_table, run_bench
from slicebudget.metrics import class_ious


def test_class_ious_scores_each_present_class():
    truth = np.zeros((2, 4, 4), dtype=np.uint8)
    truth[0, :2, :2] = 1  # 4 voxels
    truth[1, :, :] = 2  # 16 voxels
    pred = truth.copy()
    pred[0, 0, :2] = 0  # class 1 loses half its voxels
    pred[1, 0, :] = 1  # class 2 loses 4, class 1 gains 4
    scores = class_ious(pred, truth)
    assert scores == pytest.approx({1: 2 / 8, 2: 12 / 16})


def test_bench_reports_per_class_iou_and_survives_mci(tmp_path):
    # Several mci runs in one process: ITK's multi-threaded filter used to corrupt the heap here.
    root = write_phantom_dataset(tmp_path / "organ", "organ", cases=1, seed=7, shape=(24, 48, 48), test_cases=0)
    result = run_bench(root, [0.2, 0.5], ["sdf", "mci"])
    payload = result.to_json()
    for method in ("sdf", "mci"):
        for key in ("0.2", "0.5"):
            per_class = payload["iou_per_class"][method][key]
            assert set(per_class) == {"1", "2"}
            assert all(0.0 <= v <= 1.0 for v in per_class.values())
            # One case holding both classes: the headline is exactly the mean of the two classes.
            assert payload["iou"][method][key] == pytest.approx(np.mean(list(per_class.values())))
    # The printed table names each class under its method, so a large class is read on its own.
    assert payload["class_names"] == {"1": "organ", "2": "tumour"}
    rows = format_table(result).splitlines()
    sdf_row = next(i for i, line in enumerate(rows) if line.startswith("sdf"))
    organ, tumour = rows[sdf_row + 1].split(), rows[sdf_row + 2].split()
    assert organ[0] == "organ" and tumour[0] == "tumour"
    assert [float(x) for x in organ[1:]] == pytest.approx(
        [payload["iou_per_class"]["sdf"][k]["1"] for k in ("0.2", "0.5")], abs=1e-4
    )


def test_bench_reports_learned_share_fallback_variant_and_calibration(tmp_path):
    root = write_phantom_dataset(tmp_path / "vessel", "vessel", cases=1, seed=7, shape=(20, 40, 40), test_cases=0)
    result = run_bench(root, [0.2], ["sli2vol", "sli2vol:fallback=none", "sdf"])
    payload = result.to_json()
    assert 0.0 < payload["learned_share"]["sli2vol"]["0.2"] <= 1.0
    assert payload["learned_share"]["sli2vol:fallback=none"]["0.2"] == pytest.approx(1.0)
    assert payload["learned_share"]["sdf"]["0.2"] == 0.0
    for method in ("sli2vol", "sdf"):
        figures = payload["calibration"][method]
        assert figures["all"]["slices"] == 16 and 0.0 <= figures["all"]["ece"] <= 1.0
        assert sum(figures["filled"]["counts"]) == figures["filled"]["slices"] <= 16
    text = format_table(result)
    assert "ECE filled" in text and "Reliability of sli2vol (filled slices)" in text


def test_unknown_method_parameter_is_refused(tmp_path):
    from slicebudget.errors import UserError

    root = write_phantom_dataset(tmp_path / "organ", "organ", cases=1, seed=7, shape=(12, 24, 24), test_cases=0)
    with pytest.raises(UserError, match="fallback"):
        run_bench(root, [0.2], ["sli2vol:fallback=linear"])
    with pytest.raises(UserError, match="KEY=VALUE"):
        run_bench(root, [0.2], ["sli2vol:fallback"])


def test_sequential_bench_simulates_an_annotator(tmp_path):
    from slicebudget.bench.propagation_sequential import ORDERS, format_sequential, run_sequential

    root = write_phantom_dataset(tmp_path / "organ", "organ", cases=2, seed=7, shape=(16, 32, 32), test_cases=0)
    result = run_sequential(root, "sdf", max_slices=4, target=0.5)
    assert set(result.curves) == set(ORDERS)
    for order in ORDERS:
        assert all(len(curve) == 4 and all(0.0 <= v <= 1.0 for v in curve) for curve in result.curves[order].values())
    # One painted slice: adaptive and fixed both start from the middle slice, so they agree.
    assert [c[0] for c in result.curves["adaptive"].values()] == [c[0] for c in result.curves["fixed"].values()]
    text = format_sequential(result)
    assert "slices to reach IoU 0.50" in text and "fewer slices than fixed interval" in text
    assert len([line for line in text.splitlines() if line[:3].strip().isdigit()]) == 4
