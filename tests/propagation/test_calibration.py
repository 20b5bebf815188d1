"""Calibrated confidence: the maps, the reliability figures, and the shipped asset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.propagation import propagate
from slicebudget.propagation.calibration import (
    Calibration,
    calibration_kind,
    default_calibration_path,
    empty_signal,
    fit_maps,
    load_calibration,
    reliability,
    size_class,
    size_fraction,
    slice_ious,
)
from slicebudget.volume import SparseAnnotation


def test_reliability_and_ece_by_hand():
    conf = np.array([0.05, 0.15, 0.15, 0.95])
    iou = np.array([0.05, 0.35, 0.15, 0.55])
    r = reliability(conf, iou)
    assert r.counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(r.iou[[0, 1, 9]], [0.05, 0.25, 0.55])
    # bins: |0.05-0.05| * 1/4 + |0.15-0.25| * 2/4 + |0.95-0.55| * 1/4
    assert r.ece == pytest.approx(0.05 + 0.1)


def test_isotonic_maps_are_monotone_and_recover_a_known_curve():
    rng = np.random.default_rng(0)
    x = rng.random(2000)
    truth = 0.2 + 0.6 * x**2
    records = [("learned", float(a), float(np.clip(b + rng.normal(0, 0.05), 0, 1)), 0.01) for a, b in zip(x, truth)]
    maps = fit_maps(records)
    assert set(maps) == {"learned", "learned/medium"}  # pooled, and the one size class with enough slices
    knots_x, knots_y = maps["learned"]
    assert np.all(np.diff(knots_y) >= 0)
    np.testing.assert_allclose(np.interp([0.25, 0.5, 0.9], knots_x, knots_y), 0.2 + 0.6 * np.array([0.25, 0.5, 0.9]) ** 2,
                               atol=0.04)


def test_size_classes_and_believed_size():
    labels = np.zeros((4, 10, 10), np.uint8)
    labels[1, :1, :1] = 1
    labels[2, :5, :5] = 1
    np.testing.assert_allclose(size_fraction(labels), [0.01, 0.01, 0.25, 0.25])
    assert [size_class(f) for f in (0.001, 0.01, 0.25)] == ["small", "medium", "large"]


def test_slice_ious_and_empty_signal():
    truth = np.zeros((4, 4, 4), np.uint8)
    pred = truth.copy()
    truth[1, :2] = 1
    pred[1, :1] = 1
    pred[2, 0, 0] = 1  # a false positive on a truly empty slice
    np.testing.assert_allclose(slice_ious(truth, pred), [1.0, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(empty_signal(pred), [0.5, 1.0, 1.0, 0.5])
    assert not empty_signal(np.zeros((3, 2, 2))).any()


def test_fallback_slices_take_the_interpolations_map_and_machine_slices_stay_below_one():
    maps = {k: (np.array([0.0, 1.0]), np.array([0.1, 1.0])) for k in ("learned", "stopped", "none", "nearest", "mci")}
    maps["sdf"] = (np.array([0.0, 1.0]), np.array([0.0, 0.6]))
    maps["learned/large"] = (np.array([0.0, 1.0]), np.array([0.0, 0.5]))
    calibration = Calibration(maps, {})
    provenance = np.array(["human", "interpolation", "learned", "stopped", "learned"], dtype=object)
    size = np.array([0.2, 0.2, 0.001, 0.2, 0.2])  # the last slice's size class has its own map
    out = calibration.apply("sli2vol", provenance, np.array([1.0, 1.0, 1.0, 0.5, 1.0]), size)
    np.testing.assert_allclose(out, [1.0, 0.6, 0.99, 0.55, 0.5])
    assert calibration_kind("sdf", "interpolation") == calibration_kind("sli2vol", "interpolation") == "sdf"
    assert calibration_kind("mci", "interpolation") == "mci"


def test_shipped_calibration_records_how_it_was_made():
    calibration = load_calibration()
    assert {"learned", "sdf", "nearest", "mci", "stopped", "none"} <= set(calibration.maps)
    made = calibration.made
    assert made["cases_per_task"] >= 16 and made["seed"] != 100  # held out from the model's phantoms
    assert set(made["tasks"]) == {"organ", "lesion", "vessel"}
    assert default_calibration_path().stat().st_size < 200_000


def test_bad_calibration_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not a slicebudget propagation calibration"):
        load_calibration(tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(UserError, match="cannot read"):
        load_calibration(tmp_path / "junk.json")


def test_calibrated_confidence_follows_iou_on_a_held_out_case():
    # A confidence that ignored quality (or a map fitted backwards) cannot track IoU this closely.
    from slicebudget.data.phantoms import generate_phantom

    ious, confs = [], []
    for task in ("organ", "vessel"):
        image, dense = generate_phantom(task, rng=301)
        annotation = SparseAnnotation.from_dense(dense, [6, 12, 18, 24])
        result = propagate(image, annotation, method="sli2vol", device="cpu")
        free = ~annotation.annotated
        ious += slice_ious(dense, result.labels)[free].tolist()
        confs += result.confidence[free].tolist()
    assert abs(np.mean(confs) - np.mean(ious)) < 0.1
    assert np.corrcoef(confs, ious)[0, 1] > 0.5
