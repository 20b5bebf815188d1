"""Metrics against hand-computed values, and MIST's results.csv layout."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from slicebudget.metrics import (
    SUMMARY_ROWS,
    case_metrics,
    dice,
    hd95,
    iou,
    summarize,
    surface,
    surface_dice,
    write_results_csv,
)


def cube(shape, start, size=10):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_iou_and_dice_of_half_overlapping_boxes():
    pred = np.zeros((8, 4, 4), dtype=bool)
    gt = np.zeros_like(pred)
    pred[0:4] = True  # 64 voxels
    gt[2:6] = True  # 64 voxels, 32 shared
    assert iou(pred, gt) == pytest.approx(32 / 96)
    assert dice(pred, gt) == pytest.approx(0.5)


def test_hd95_of_shifted_cubes_uses_anisotropic_spacing():
    # A 10-voxel cube and the same cube two slices higher. 100 of the 488 surface voxels of each
    # (its far face) lie two slices from the other surface and every other one is closer, so the
    # 95th percentile is exactly the 2-slice gap: 6 mm at 3 mm slices, 2 mm when shifted in-plane.
    shape = (16, 14, 14)
    a = cube(shape, (1, 2, 2))
    assert hd95(a, cube(shape, (3, 2, 2)), spacing=(3.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(a, cube(shape, (1, 2, 4)), spacing=(3.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95(a, a, spacing=(3.0, 1.0, 1.0)) == 0.0


def test_surface_dice_of_shifted_cubes_counts_surface_voxels_within_tolerance():
    # Per direction, of 488 surface voxels: 288 lie on the other surface (0 mm), the 64 inner voxels
    # of the near face sit 1..4 mm in-plane from the other cube's sides (28 at 1, 20 at 2, 12 at 3,
    # 4 at 4), the ring one slice in sits 3 mm away and the far face 6 mm away.
    shape = (16, 14, 14)
    a, b = cube(shape, (1, 2, 2)), cube(shape, (3, 2, 2))
    spacing = (3.0, 1.0, 1.0)
    assert surface(a).sum() == 488
    assert surface_dice(a, b, spacing, tolerance_mm=2.0) == pytest.approx(2 * (288 + 48) / 976)
    assert surface_dice(a, b, spacing, tolerance_mm=3.0) == pytest.approx(2 * (288 + 48 + 12 + 36) / 976)
    assert surface_dice(a, b, spacing, tolerance_mm=6.0) == pytest.approx(1.0)


def test_hd95_matches_brute_force_on_random_blobs_touching_the_border():
    rng = np.random.default_rng(3)
    spacing = (2.5, 0.8, 1.1)
    for _ in range(3):
        pred = rng.random((7, 9, 8)) > 0.6
        gt = rng.random((7, 9, 8)) > 0.5
        points = {}
        for name, mask in (("p", pred), ("g", gt)):
            points[name] = np.argwhere(surface(mask)) * np.asarray(spacing)
        d = cdist(points["p"], points["g"])
        expected = max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))
        assert hd95(pred, gt, spacing) == pytest.approx(expected)


def test_empty_mask_conventions():
    shape, spacing = (4, 5, 6), (2.0, 1.0, 1.0)
    empty = np.zeros(shape, dtype=int)
    full = np.zeros(shape, dtype=int)
    full[1:3, 1:3, 1:3] = 1
    classes = {"tumour": 1}
    both_empty = case_metrics(empty, empty, spacing, classes)
    assert both_empty == {"tumour_iou": 1.0, "tumour_dice": 1.0, "tumour_hd95": 0.0, "tumour_surface_dice": 1.0}
    diagonal = np.sqrt(8.0**2 + 5.0**2 + 6.0**2)
    for pred, gt in ((empty, full), (full, empty)):
        one_empty = case_metrics(pred, gt, spacing, classes)
        assert one_empty["tumour_iou"] == 0.0 and one_empty["tumour_dice"] == 0.0
        assert one_empty["tumour_surface_dice"] == 0.0
        assert one_empty["tumour_hd95"] == pytest.approx(diagonal)


def test_case_metrics_per_class_and_merged_classes():
    gt = np.zeros((6, 6, 6), dtype=int)
    gt[0:2] = 1
    gt[2:4] = 2
    pred = gt.copy()
    pred[2:4] = 1  # class 2 predicted as class 1
    out = case_metrics(pred, gt, (1.0, 1.0, 1.0), {"liver": 1, "tumour": 2, "whole": [1, 2]})
    assert list(out) == [f"{c}_{m}" for c in ("liver", "tumour", "whole") for m in ("iou", "dice", "hd95", "surface_dice")]
    assert out["liver_iou"] == pytest.approx(0.5)
    assert out["liver_dice"] == pytest.approx(2 * 72 / (144 + 72))
    assert out["tumour_iou"] == 0.0
    assert out["whole_iou"] == 1.0 and out["whole_hd95"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        case_metrics(pred[:3], gt, (1.0, 1.0, 1.0), {"liver": 1})


def test_summarize_means_skip_nan():
    per_case = {"a": {"x_iou": 0.5, "x_hd95": 2.0}, "b": {"x_iou": 1.0, "x_hd95": float("nan")}}
    assert summarize(per_case) == {"x_iou": 0.75, "x_hd95": 2.0}


def test_results_csv_has_mist_layout(tmp_path):
    per_case = {
        "case_1": {"liver_iou": 0.2, "liver_dice": 0.4},
        "case_2": {"liver_iou": 0.6, "liver_dice": 0.8},
        "case_3": {"liver_iou": 1.0, "liver_dice": 0.9},
    }
    path = write_results_csv(tmp_path / "results.csv", per_case)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "liver_iou", "liver_dice"]
    assert [r[0] for r in rows[1:]] == ["case_1", "case_2", "case_3", *SUMMARY_ROWS]
    assert list(SUMMARY_ROWS) == ["Mean", "Std", "25th Percentile", "Median", "75th Percentile"]
    table = {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}
    assert table["case_2"] == [0.6, 0.8]
    ious = np.array([0.2, 0.6, 1.0])
    assert table["Mean"][0] == pytest.approx(ious.mean())
    assert table["Std"][0] == pytest.approx(ious.std())
    assert table["25th Percentile"][0] == pytest.approx(0.4)
    assert table["Median"][0] == pytest.approx(0.6)
    assert table["75th Percentile"][0] == pytest.approx(0.8)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary left behind
