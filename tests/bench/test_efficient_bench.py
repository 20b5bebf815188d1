from __future__ import annotations

import pytest

from slicebudget.bench.efficient import compare_pair, parse_pairs
from slicebudget.errors import UserError


def run(model: str, density: float, repeat: int, iou: float, cpu_train: float, status: str = "done") -> dict:
    return {"model": model, "status": status, "density": density, "volume_fraction": 1.0, "policy": "fixed",
            "interpolation": "off", "repeat": repeat, "is_dense_baseline": False, "metrics": {"iou": iou},
            "cpu_seconds_train": cpu_train, "cpu_seconds_infer_per_case": cpu_train / 10,
            "seconds_train": 2 * cpu_train, "seconds_infer_per_case": cpu_train / 5}


def test_pairs_runs_by_cell_and_repeat_and_decides_the_margin():
    base = [run("big", d, r, 0.80 + 0.05 * r + d, 40.0) for d in (0.1, 0.2) for r in (0, 1, 2)]
    # Same ups and downs as the baseline (it is paired), 0.005 lower: within 0.02 only because the
    # pairing removes the spread between cells and repeats.
    close = [run("small", d, r, 0.795 + 0.05 * r + d + 0.001 * r, 10.0) for d in (0.1, 0.2) for r in (0, 1, 2)]
    unpaired_extra = [run("small", 0.4, 0, 0.1, 10.0), run("big", 0.1, 5, 0.9, 40.0, status="failed")]
    row = compare_pair(base + close + unpaired_extra, "small", "big")
    assert row["paired_runs"] == 6
    assert row["costs"]["cpu_seconds_train"]["ratio"] == pytest.approx(4.0)
    assert row["iou_diff"]["mean"] == pytest.approx(-0.004)
    assert row["within_margin"] and -0.02 <= row["iou_diff"]["ci"][0] < -0.004

    far = [run("small", d, r, 0.75 + 0.05 * r + d, 10.0) for d in (0.1, 0.2) for r in (0, 1, 2)]
    assert not compare_pair(base + far, "small", "big")["within_margin"]


def test_unknown_model_and_bad_pair_are_one_line_errors():
    with pytest.raises(UserError, match="model 'tiny' is not in the study; its models: big"):
        compare_pair([run("big", 0.1, 0, 0.8, 1.0)], "tiny", "big")
    with pytest.raises(UserError, match="EFFICIENT=BASELINE"):
        parse_pairs(["lightmedseg"])
    assert parse_pairs(["a = b"]) == [("a", "b")]
