"""Every registered model trains from a study config on sparse phantom labels, on CPU, and is scored."""

from __future__ import annotations

import pytest
import yaml

from slicebudget.models import MODEL_REGISTRY, model_info
from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

from ..conftest import RECIPE_KEYS, recipe_facts  # noqa: TID252
from .conftest import base_config  # noqa: TID252


def model_entries() -> list[dict]:
    entries = []
    for name in sorted(MODEL_REGISTRY):
        for dims in sorted(model_info(name)):
            entry = {"name": name, "dims": dims}
            if dims == 3:
                entry["patch_size"] = [8, 16, 16]
            entries.append(entry)
    return entries


def test_every_registered_model_trains_from_a_study_config(tmp_path, tiny_dataset):
    entries = model_entries()
    assert {e["name"] for e in entries} >= {"unet", "fpn", "deeplabv3plus", "segformer", "unet3d",
                                             "lightmedseg", "meddanet_v2"}
    # NMSW rides on a 3D backbone: one entry exercises its training and inference inside a study.
    entries.append({"name": "unet3d", "dims": 3, "patch_size": [8, 16, 16],
                    "label": "unet3d-nmsw", "inference": {"name": "nmsw", "k": 2, "iterations": 2}})
    config = {**base_config(tiny_dataset), "densities": [0.5], "volume_fractions": [1.0],
              "policies": ["fixed"], "models": entries, "dense_baseline": False,
              "training": {"iterations": 3, "batch_size": 2, "learning_rate": 0.001, "val_every": 3}}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    outcome = run_study(path, tmp_path / "study", threads=1, write_report=None)
    with StudyStore(tmp_path / "study") as store:
        records = store.runs()
    failed = {r["model"]: r["error"] for r in records if r["status"] != "done"}
    assert not failed, failed
    assert outcome.counts["done"] == len(entries)
    for record in records:
        assert 0.0 <= record["metrics"]["iou"] <= 1.0
        assert record["budget_slices"] == 16 and record["seconds_infer_per_case"] > 0
    assert {r["dims"] for r in records} == {2, 3}
    # What predicted is measured, not copied from the config: NMSW fed the backbone K = 2 patches
    # per test case, the sliding window all 9 windows of an 8 x 32 x 32 volume, 2D models one input
    # per slice; and NMSW was trained with the benchmark's recipe.
    by_label = {r["model"]: r["prediction"] for r in records}
    nmsw, sw = by_label["unet3d-nmsw"], by_label["unet3d"]
    assert (nmsw["inferer"], nmsw["k"], sw["inferer"]) == ("nmsw", 2, "sliding_window")
    assert set(nmsw["backbone_inputs"].values()) == {2} and set(sw["backbone_inputs"].values()) == {9}
    assert set(by_label["unet"]["backbone_inputs"].values()) == {8}
    assert by_label["unet"]["inferer"] == "slices"
    # the report's run-cost table shows that recorded inferer, not the config's 3D default
    assert {r["model"]: r["inference"] for r in records}["unet"] == "slices"
    assert {key: nmsw["nmsw_training"][key] for key in RECIPE_KEYS} == recipe_facts(iterations=2)
    assert sw["nmsw_training"] is None
