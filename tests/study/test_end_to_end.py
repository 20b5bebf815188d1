"""A tiny real study (8 x 32 x 32 phantoms, 5 iterations): every stage runs, and Dask agrees with
in-process execution to the last digit."""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import sys
from pathlib import Path

import pytest

from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

TINY = {
    "densities": [0.5],
    "volume_fractions": [1.0],
    "policies": ["fixed"],
    "interpolation": ["off", "nearest"],
    "dense_baseline": False,
}


@pytest.fixture(scope="module")
def local_study(tmp_path_factory, tiny_dataset):
    import yaml

    from .conftest import base_config  # noqa: TID252

    folder = tmp_path_factory.mktemp("e2e")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**base_config(tiny_dataset), **TINY}))
    outcome = run_study(path, folder / "local", threads=1, checkpoints=True, write_report=None)
    return path, folder, outcome


def test_real_runs_finish_with_metrics_and_artifacts(local_study):
    _, folder, outcome = local_study
    assert outcome.counts["done"] == 2, outcome
    with StudyStore(folder / "local") as store:
        records = {r["interpolation"]: r for r in store.runs()}
    off, interp = records["off"], records["nearest"]
    for record in (off, interp):
        metrics = record["metrics"]
        for name in ("iou", "dice", "surface_dice", "organ_iou", "tumour_dice"):
            assert 0.0 <= metrics[name] <= 1.0
        assert metrics["hd95"] >= 0.0
        # the overall figure is the mean over the foreground classes
        assert metrics["iou"] == pytest.approx((metrics["organ_iou"] + metrics["tumour_iou"]) / 2)
        assert record["n_volumes"] == 4 and record["budget_slices"] == 16 and record["slices_per_volume"] == 4
        assert record["seconds_train"] > 0 and record["seconds_infer_per_case"] > 0
        run_dir = folder / "local" / "runs" / record["run_id"]
        assert {p.name for p in run_dir.iterdir()} >= {"model.pt", "results.csv", "selection.json", "run.json"}
        rows = list(csv.DictReader((run_dir / "results.csv").open()))
        assert rows[0]["id"] == "case_0004" and rows[1]["id"] == "Mean"
        assert json.loads((run_dir / "selection.json").read_text())["budget"] == 16
    assert off["interp_iou"] is None
    assert 0.0 < interp["interp_iou"] <= 1.0
    # where the interpolated labels came from, and how sure the calibrated confidence was of them
    assert off["interp_provenance"] is None
    provenance = interp["interp_provenance"]
    assert provenance["foreground"]["nearest"] == 1.0  # nearest copies between annotated slices,
    assert provenance["slices"]["nearest"] > 0  # and fills nothing beyond them ("none")
    assert provenance["slices"]["nearest"] + provenance["slices"]["none"] == pytest.approx(1.0)
    assert 0.0 < provenance["confidence"] < 1.0 and 0.0 < provenance["slice_iou"] <= 1.0
    # paired: interpolation changes the labels trained on, never which slices were annotated
    sel = [(folder / "local" / "runs" / r["run_id"] / "selection.json").read_text() for r in (off, interp)]
    assert sel[0] == sel[1]


def test_model_checkpoint_reloads(local_study):
    import torch

    from slicebudget.models import create_model

    _, folder, _ = local_study
    with StudyStore(folder / "local") as store:
        record = store.runs()[0]
    saved = torch.load(folder / "local" / "runs" / record["run_id"] / "model.pt", weights_only=False)
    model = create_model("unet", 2, saved["in_channels"], saved["n_classes"], encoder="resnet18")
    model.load_state_dict(saved["state_dict"])
    assert saved["n_classes"] == 3 and saved["normalization"][0]["modality"] == "ct"


def die_once_then_execute(marker_dir: str, spec: dict, dataset_path: str, run_dir: str, on_progress=None) -> dict:
    """Kill the worker process the first time any run starts, then behave as execute_run."""
    marker = Path(marker_dir) / "died"
    if not marker.exists():
        marker.touch()
        os._exit(1)
    from slicebudget.study.execute_run import execute_run

    return execute_run(spec, dataset_path, run_dir, on_progress)


def test_dask_survives_a_dying_worker_and_reproduces_in_process_metrics(local_study):
    import cloudpickle

    path, folder, _ = local_study
    # The workers cannot import this test module; ship the function by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    execute = functools.partial(die_once_then_execute, str(folder))
    outcome = run_study(path, folder / "dask", executor="dask", workers=1, execute=execute, write_report=None)
    assert (folder / "died").exists()
    assert outcome.counts["done"] == 2
    # checkpoints are off by default: a run ships back its results, selection and curves only
    for run in (folder / "dask" / "runs").iterdir():
        assert {p.name for p in run.iterdir()} == {"results.csv", "selection.json", "run.json"}
    with StudyStore(folder / "local") as a, StudyStore(folder / "dask") as b:
        local = {r["run_id"]: r["metrics"] for r in a.runs()}
        remote = {r["run_id"]: r["metrics"] for r in b.runs()}
    assert local.keys() == remote.keys()
    for run_id, metrics in local.items():
        for name, value in metrics.items():
            other = remote[run_id][name]
            assert (math.isnan(value) and math.isnan(other)) or value == other, (run_id, name)
