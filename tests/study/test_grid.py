"""Grid expansion: stable run ids, paired selections, and refusal of impossible grids before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from slicebudget.errors import UserError
from slicebudget.study.config import load_config
from slicebudget.study.grid import describe_dataset, expand_grid, run_id
from slicebudget.study.runner import run_study

from .conftest import FakeExecute  # noqa: TID252


def grid_of(path, dataset):
    config = load_config(path)
    return expand_grid(config, describe_dataset(dataset, config.test_fraction, config.seed))


def test_grid_size_order_and_dense_baseline(write_config, tiny_dataset):
    runs = grid_of(write_config(repeats=2), tiny_dataset)
    # 2 densities x 2 fractions x 2 policies x 2 repeats + one dense baseline per repeat
    assert len(runs) == 2 * 2 * 2 * 2 + 2
    specs = [spec for _, spec in runs]
    assert specs[0]["is_dense_baseline"] and specs[0]["repeat"] == 0
    assert [s["repeat"] for s in specs] == sorted(s["repeat"] for s in specs)
    assert all(rid == run_id(spec) and len(rid) == 12 for rid, spec in runs)
    assert specs[1]["n_volumes"] == 2 and specs[1]["n_volumes_total"] == 4  # s = 0.5 of 4 volumes
    assert specs[0]["split"]["test"] == ["case_0004"]


def test_run_ids_are_stable_and_survive_moving_the_dataset(write_config, tiny_dataset, tmp_path):
    first = [rid for rid, _ in grid_of(write_config(), tiny_dataset)]
    assert first == [rid for rid, _ in grid_of(write_config(), tiny_dataset)]
    moved = tmp_path / "moved"
    shutil.copytree(tiny_dataset, moved)
    assert first == [rid for rid, _ in grid_of(write_config(dataset=str(moved)), moved)]
    changed = [rid for rid, _ in grid_of(write_config(training={"iterations": 6}), tiny_dataset)]
    assert not set(first) & set(changed)


def test_grid_that_contains_the_dense_point_has_no_duplicate(write_config, tiny_dataset):
    runs = grid_of(write_config(densities=[1.0], volume_fractions=[1.0], policies=["fixed"]), tiny_dataset)
    assert len(runs) == 1 and runs[0][1]["is_dense_baseline"]


def test_seeds_are_shared_across_models_and_interpolation_only_by_design(write_config, tiny_dataset):
    models = [{"name": "unet", "encoder": "resnet18", "dims": 2}, {"name": "fpn", "encoder": "resnet18", "dims": 2}]
    runs = grid_of(write_config(models=models, interpolation=["off", "nearest"], repeats=2), tiny_dataset)
    by_repeat: dict[int, set] = {}
    for _, spec in runs:
        by_repeat.setdefault(spec["repeat"], set()).add(spec["selection_seed"])
    assert all(len(seeds) == 1 for seeds in by_repeat.values())
    assert by_repeat[0] != by_repeat[1]
    assert len({rid for rid, _ in runs}) == len(runs)


def test_paired_runs_get_identical_selection_files(write_config, tmp_path):
    models = [{"name": "unet", "encoder": "resnet18", "dims": 2}, {"name": "fpn", "encoder": "resnet18", "dims": 2}]
    config = write_config(models=models, densities=[0.25], volume_fractions=[0.5], policies=["random"])
    out = tmp_path / "study"
    run_study(config, out, execute=FakeExecute(select=True), write_report=None)
    from slicebudget.study.store import StudyStore

    with StudyStore(out) as store:
        records = [r for r in store.runs() if not r["is_dense_baseline"]]
    assert {r["model"] for r in records} == {"unet-resnet18", "fpn-resnet18"}
    plans = [json.loads((out / "runs" / r["run_id"] / "selection.json").read_text()) for r in records]
    assert plans[0] == plans[1]
    assert len(plans[0]["chosen"]) == 2 and all(len(s) == 2 for s in plans[0]["chosen"].values())


def test_too_few_volumes_is_refused_before_any_training(write_config, tmp_path):
    fake = FakeExecute()
    path = write_config(volume_fractions=[0.1, 1.0])
    with pytest.raises(UserError) as info:
        run_study(path, tmp_path / "study", execute=fake, write_report=None)
    assert "volume_fractions: 0.1 of 4 training volumes is less than one volume" in str(info.value)
    assert str(path) in str(info.value)
    assert fake.calls == []


def test_missing_test_split_is_refused(tmp_path, tiny_dataset):
    no_tests = tmp_path / "no_tests"
    shutil.copytree(tiny_dataset, no_tests)
    shutil.rmtree(no_tests / "imagesTs")
    shutil.rmtree(no_tests / "labelsTs")
    with pytest.raises(UserError, match="test_fraction"):
        describe_dataset(no_tests, None, 0)
    info = describe_dataset(no_tests, 0.25, 0)
    assert len(info.test_ids) == 1 and len(info.train_ids) == 3
    assert not set(info.test_ids) & set(info.train_ids)
    assert info.depths == {cid: 8 for cid in info.train_ids}


def test_dataset_path_is_relative_to_the_yaml_file(tmp_path, tiny_dataset):
    from .conftest import base_config  # noqa: TID252

    sub = tmp_path / "configs"
    sub.mkdir()
    shutil.copytree(tiny_dataset, tmp_path / "mydata")
    path = sub / "rel.yaml"
    path.write_text(yaml.safe_dump({**base_config(tiny_dataset), "dataset": "../mydata"}))
    fake = FakeExecute()
    run_study(path, tmp_path / "out", execute=fake, write_report=None)
    assert len(fake.calls) == 9


def _fake_info(n_train: int, depth: int):
    from slicebudget.study.grid import DatasetInfo

    ids = tuple(f"case_{i:04d}" for i in range(n_train))
    return DatasetInfo("/nowhere", "fake", "f" * 16, ids, ("test_0000",), "imagesTs",
                       dict.fromkeys(ids, depth), {"organ": 1, "tumour": 2})


def test_shipped_study_configs_expand_as_documented():
    studies = Path(__file__).resolve().parents[2] / "studies"
    quick = load_config(studies / "quickstart.yaml")
    runs = expand_grid(quick, _fake_info(quick.dataset.phantom.cases, quick.dataset.phantom.shape[0]))
    assert len(runs) == (2 * 2 * 2 + 1) * 3  # (rho x s x policy + dense baseline) x repeats
    budgets = {(s["density"], s["volume_fraction"]): s["n_volumes"] * round(s["density"] * 20) for _, s in runs}
    assert budgets[(0.1, 1.0)] == budgets[(0.2, 0.5)]  # the same budget spread two ways
    paper = load_config(studies / "paper-grid.yaml")
    runs = expand_grid(paper, _fake_info(paper.dataset.phantom.cases, paper.dataset.phantom.shape[0]))
    assert len(runs) == 5 * 4 * 3 * 2 * 3 * 3 + 3 * 3
    assert {s["model"]["dims"] for _, s in runs} == {2, 3}


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "studies").glob("*.yaml")))
def test_every_shipped_study_config_loads_and_expands(name):
    """A study YAML the README or a benchmark tells users to run must be valid and expand to runs."""
    config = load_config(Path(__file__).resolve().parents[2] / "studies" / name)
    phantom = config.dataset.phantom
    assert phantom is not None  # shipped studies generate their data; no download exists here
    assert expand_grid(config, _fake_info(phantom.cases, phantom.shape[0]))


def test_impossible_phantom_grid_is_refused_before_generating_data(tmp_path):
    from .conftest import base_config  # noqa: TID252

    path = tmp_path / "phantom.yaml"
    data = {**base_config(tmp_path), "dataset": {"phantom": {"cases": 4, "shape": [8, 32, 32]}},
            "volume_fractions": [0.2]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="0.2 of 4 training volumes"):
        run_study(path, tmp_path / "study", execute=FakeExecute(), write_report=None)
    assert not (tmp_path / "study" / "data").exists()


def test_every_spec_reads_as_a_typed_run_spec_and_back_unchanged(write_config, tiny_dataset):
    # The run id hashes the JSON; execute_run reads the typed RunSpec: the two must never drift apart.
    from slicebudget.study.run_spec import RunSpec

    models = [{"name": "unet", "encoder": "resnet18", "dims": 2},
              {"name": "unet3d", "dims": 3, "patch_size": [8, 16, 16], "inference": {"name": "nmsw", "k": 2}}]
    for _, spec in grid_of(write_config(models=models), tiny_dataset):
        typed = RunSpec.of(spec)
        assert typed.to_json() == spec
        assert typed.model.inference.name in ("sliding_window", "nmsw")
