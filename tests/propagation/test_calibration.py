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
    FEATURES,
    SliceMap,
    load_calibration,
    reliability,
    size_class,
    size_fraction,
    slice_features,
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


def _features(signal, **columns):
    out = np.zeros((len(signal), len(FEATURES)))
    out[:, 0] = signal
    for name, values in columns.items():
        out[:, FEATURES.index(name)] = values
    return out


def test_maps_are_monotone_in_their_score_and_recover_a_known_curve_on_two_features():
    # IoU falls with the signal's shortfall AND with drift of the area (a feature distance alone lacks):
    # a map that read the signal only could not get both groups right.
    rng = np.random.default_rng(0)
    signal, ratio = rng.random(4000), rng.choice([1.0, 2.5], 4000)
    truth = np.clip(0.2 + 0.6 * signal - 0.3 * (ratio > 2), 0, 1)
    features = _features(signal, area_ratio=ratio)
    records = [("learned", f, float(np.clip(t + rng.normal(0, 0.05), 0, 1)), 0.01) for f, t in zip(features, truth)]
    maps = fit_maps(records)
    assert set(maps) == {"learned", "learned/medium"}  # pooled, and the one size class with enough slices
    assert np.all(np.diff(maps["learned"].knots_iou) >= 0)
    probe = _features(np.array([0.25, 0.9, 0.25, 0.9]), area_ratio=np.array([1.0, 1.0, 2.5, 2.5]))
    np.testing.assert_allclose(maps["learned"].predict(probe), [0.35, 0.74, 0.05, 0.44], atol=0.05)


def test_slice_features_by_hand():
    labels = np.zeros((6, 10, 10), np.uint8)
    labels[0, :4, :5] = 1  # human, 20 px
    labels[1, :4, :4] = 1  # 16 px
    labels[2, :2, :2] = 1  # 4 px
    labels[4, :2, :5] = 1  # human, 10 px
    annotated = np.array([True, False, False, False, True, False])
    f = slice_features(annotated, labels, np.full(6, 0.5))
    column = {name: f[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(column["position"][[1, 2, 3, 5]], [0.25, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(column["outer"][[1, 5]], [0.0, 1.0])
    np.testing.assert_allclose(column["log_distance"][[1, 2, 5]], np.log1p([1, 2, 1]))
    np.testing.assert_allclose(column["area_ratio"][[1, 2, 3, 5]], [16 / 20, 4 / 20, 0.0, 0.0])
    np.testing.assert_allclose(column["log_reference"][[1, 5]], np.log10([0.2 + 1e-4, 0.1 + 1e-4]))


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


def _constant_map(low: float, high: float) -> SliceMap:
    """A map from the signal alone (the first feature): IoU from ``low`` at 0 to ``high`` at 1."""
    n = len(FEATURES)
    weights = np.zeros(n)
    weights[0] = 1.0
    return SliceMap(np.zeros(n), np.ones(n), weights, 0.0, np.array([0.0, 1.0]), np.array([low, high]))


def test_fallback_slices_take_the_interpolations_map_and_machine_slices_stay_below_one():
    maps = {k: _constant_map(0.1, 1.0) for k in ("learned", "stopped", "none", "nearest", "mci")}
    maps["sdf"] = _constant_map(0.0, 0.6)
    maps["learned/large"] = _constant_map(0.0, 0.5)
    calibration = Calibration(maps, {})
    provenance = np.array(["human", "interpolation", "learned", "stopped", "learned"], dtype=object)
    size = np.array([0.2, 0.2, 0.001, 0.2, 0.2])  # the last slice's size class has its own map
    out = calibration.apply("sli2vol", provenance, _features(np.array([1.0, 1.0, 1.0, 0.5, 1.0])), size)
    np.testing.assert_allclose(out, [1.0, 0.6, 0.99, 0.55, 0.5])
    assert calibration_kind("sdf", "interpolation") == calibration_kind("sli2vol", "interpolation") == "sdf"
    assert calibration_kind("mci", "interpolation") == "mci"
    # a file written by this version reads back to the same numbers
    again = Calibration({k: SliceMap.from_json(m.to_json()) for k, m in maps.items()}, {})
    np.testing.assert_allclose(again.apply("sli2vol", provenance, _features(np.array([1.0, 1.0, 1.0, 0.5, 1.0])),
                                           size), out)


def test_shipped_calibration_records_how_it_was_made():
    calibration = load_calibration()
    assert {"learned", "sdf", "nearest", "mci", "stopped", "none"} <= set(calibration.maps)
    made = calibration.made
    assert made["cases_per_task"] >= 10 and made["seed"] != 100  # held out from the model's phantoms
    assert payload_version() == 2 and made["slices"] > 20_000
    assert set(made["tasks"]) == {"organ", "lesion", "vessel"}
    assert default_calibration_path().stat().st_size < 200_000


def payload_version() -> int:
    return json.loads(default_calibration_path().read_text())["version"]


def test_bad_calibration_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not a slicebudget propagation calibration"):
        load_calibration(tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(UserError, match="cannot read"):
        load_calibration(tmp_path / "junk.json")
    # a version-1 file (signal-only maps) is refused by its version, with one line
    (tmp_path / "v1.json").write_text(json.dumps({"format": "slicebudget-calibration", "version": 1, "maps": {}}))
    with pytest.raises(UserError, match="version 1 is not supported"):
        load_calibration(tmp_path / "v1.json")


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
