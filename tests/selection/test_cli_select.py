"""`budget-study select`: JSON on stdout; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from slicebudget.cli.main import main


@pytest.fixture
def image_path(tmp_path):
    array = np.random.default_rng(0).normal(size=(20, 12, 12)).astype(np.float32)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 3.0))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def run(capsys, *args):
    code = main(["select", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("policy", ["fixed", "random", "coreset"])
def test_select_prints_json(capsys, image_path, policy):
    code, out, err = run(capsys, image_path, "--policy", policy, "--density", "0.2", "--seed", "3")
    assert code == 0, err
    result = json.loads(out)
    assert result["axis"] == 0 and result["n_slices_total"] == 20 and result["policy"] == policy
    assert len(result["slices"]) == 4 and result["slices"] == sorted(set(result["slices"]))
    assert all(0 <= s < 20 for s in result["slices"])


def test_select_fixed_slices_and_features(capsys, image_path):
    code, out, _ = run(capsys, image_path, "--policy", "fixed", "--slices", "4")
    assert code == 0 and json.loads(out)["slices"] == [2, 7, 12, 17]
    code, out, _ = run(capsys, image_path, "--policy", "coreset", "--slices", "3", "--features", "intensity")
    assert code == 0 and len(json.loads(out)["slices"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--density", "0"], "density must be in (0, 1]"),
        (["--density", "1.5"], "density must be in (0, 1]"),
        (["--slices", "21"], "only 20"),
        (["--slices", "0"], "at least 1"),
        ([], "exactly one of --density or --slices"),
        (["--density", "0.1", "--slices", "2"], "exactly one of --density or --slices"),
        (["--policy", "smart", "--slices", "2"], "choose one of"),
        (["--policy", "fixed", "--features", "encoder", "--slices", "2"], "only to --policy coreset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, image_path, args, message):
    code, out, err = run(capsys, image_path, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_missing_file_names_the_file(capsys, tmp_path):
    missing = tmp_path / "nope.nii.gz"
    code, _, err = run(capsys, missing, "--slices", "2")
    assert code == 2 and str(missing) in err and err.count("\n") == 1
