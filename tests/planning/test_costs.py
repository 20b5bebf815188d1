"""The cost model and the plugin's cost file (format slicebudget-annotation-costs v1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.planning.costs import from_config, measured


def _volume(name, slices, active, depth=20):
    return {"volume": name, "n_slices": depth, "active_seconds": active, "idle_cutoff_seconds": 60,
            "slices": [{"slice": s, "kind": kind, "seconds": sec} for s, kind, sec in slices]}


def _write(path, volumes, **top):
    data = {"format": "slicebudget-annotation-costs", "version": 1, "volumes": volumes, **top}
    path.write_text(json.dumps(data))
    return path


def test_defaults_and_config():
    default = from_config(None)
    assert "assumed" in default.source
    assert default.seconds(2, 10) == pytest.approx(2 * (120 + 10 * (0.7 * 60 + 0.3 * 10)))
    custom = from_config({"seconds_per_object_slice": 30, "seconds_per_volume": 0, "empty_share": 0})
    assert custom.seconds(3, 4) == pytest.approx(3 * 4 * 30)
    assert custom.slices_within(360.0, np.array([3]))[0] == 4


def test_three_costs_are_fitted_with_their_spread(tmp_path):
    path = _write(tmp_path / "a.costs.json", [
        _volume("v1", [(0, "object", 40.0), (5, "object", 60.0), (9, "empty", 5.0)], active=165.0),
        _volume("v2", [(1, "object", 50.0), (3, "empty", 15.0)], active=125.0),
    ])
    costs = measured(path, from_config(None))
    assert costs.seconds_per_object_slice == pytest.approx(50.0)
    assert costs.seconds_per_empty_slice == pytest.approx(10.0)
    assert costs.seconds_per_volume == pytest.approx((60.0 + 60.0) / 2)
    assert costs.empty_share == pytest.approx(2 / 5)
    assert costs.spread["sd_object_slice"] == pytest.approx(10.0)
    assert costs.spread["n_volumes"] == 2 and "measured" in costs.source


def test_a_folder_of_cost_files_is_pooled_and_missing_empty_time_falls_back(tmp_path):
    _write(tmp_path / "a.costs.json", [_volume("v1", [(0, "object", 30.0)], active=40.0)])
    _write(tmp_path / "b.costs.json", [_volume("v2", [(0, "object", 50.0)], active=60.0)])
    costs = measured(tmp_path, from_config(None))
    assert costs.seconds_per_object_slice == pytest.approx(40.0)
    assert costs.seconds_per_empty_slice == 10.0 and "empty-slice time from defaults" in costs.source


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "not a cost file"),
    (lambda d: d.update(version=2), "version 2"),
    (lambda d: d.update(volumes=[]), "non-empty list"),
    (lambda d: d["volumes"][0]["slices"][0].update(kind="maybe"), "kind 'maybe'"),
    (lambda d: d["volumes"][0]["slices"][0].update(seconds=-1), "seconds must be a number"),
    (lambda d: d["volumes"][0]["slices"][0].update(slice=25), "outside 0..19"),
    (lambda d: d["volumes"][0]["slices"].append(dict(d["volumes"][0]["slices"][0])), "appears twice"),
    (lambda d: d["volumes"][0].update(active_seconds=10.0), "inconsistent cost file"),
    (lambda d: d["volumes"][0].update(n_slices=0), "n_slices"),
])
def test_malformed_or_inconsistent_files_are_one_line(tmp_path, mutate, message):
    data = {"format": "slicebudget-annotation-costs", "version": 1,
            "volumes": [_volume("v1", [(0, "object", 40.0)], active=50.0)]}
    mutate(data)
    path = tmp_path / "x.costs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as info:
        measured(path, from_config(None))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_not_json_and_missing(tmp_path):
    bad = tmp_path / "bad.costs.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        measured(bad, from_config(None))
    with pytest.raises(UserError, match="not found"):
        measured(tmp_path / "none.json", from_config(None))


def test_the_plugins_own_writer_is_read(tmp_path):
    """The plugin's write_costs output (its real format) parses without the core importing the plugin."""
    costs_module = pytest.importorskip("napari_slicebudget.logic.costs")
    path = costs_module.write_costs(tmp_path / "v.costs.json", [
        _volume("v", [(2, "object", 33.0), (4, "empty", 3.0)], active=50.0)])
    costs = measured(path, from_config(None))
    assert costs.seconds_per_object_slice == 33.0 and costs.seconds_per_volume == pytest.approx(14.0)
