"""`budget-study bench calibration`: the scoring arithmetic, the worlds, and bad input."""

from __future__ import annotations

import pytest

from slicebudget.bench.calibration import BumpySurface, calibration, summarise, world


def test_summary_arithmetic():
    rows = [{"p": 0.9, "won": True, "in80": True, "in95": True}, {"p": 0.95, "won": False, "in80": False, "in95": True},
            {"p": 0.5, "won": True, "in80": True, "in95": True}, {"p": 0.2, "won": False, "in80": True, "in95": False}]
    out = summarise(rows)
    assert out["mean_p"] == pytest.approx(0.6375) and out["truly_won"] == 0.5
    assert out["brier"] == pytest.approx((0.01 + 0.9025 + 0.25 + 0.04) / 4)
    assert out["claims_p90"] == 2 and out["claims_p90_right"] == 0.5
    assert out["coverage80"] == 0.75 and out["coverage95"] == 0.75


def test_worlds_are_seeded_and_the_bump_is_outside_the_family():
    assert world("bump", 4) == world("bump", 4) and world("bump", 4) != world("bump", 5)
    bumpy = world("bump", 4)
    assert isinstance(bumpy, BumpySurface) and abs(bumpy.height) == 0.06
    flat = world("in-family", 0)
    assert abs(bumpy(bumpy.n0, bumpy.k0) - flat(bumpy.n0, bumpy.k0)) == pytest.approx(0.06)
    with pytest.raises(ValueError):
        world("nope", 0)


def test_calibration_runs_on_a_few_worlds():
    out = calibration(("in-family",), worlds=2)
    r = out["in-family"]
    assert r["pairs"] >= 4 and 0.0 <= r["mean_p"] <= 1.0 and 0.0 <= r["coverage80"] <= r["coverage95"] <= 1.0


def test_unknown_world_kind_is_one_line(capsys):
    from slicebudget.cli.main import main

    assert main(["bench", "calibration", "--kinds", "nope", "--worlds", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown world kind nope" in err and "Traceback" not in err
