"""Adaptation: fine-tune the shipped model on a group's own unlabelled volumes; refusals; the study's
cached adapted model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.propagation.sli2vol import load_model, save_model
from slicebudget.propagation.sli2vol.model_io import check_model_channels
from slicebudget.propagation.sli2vol.train import TrainingSettings, adapt_and_save, check_adaptation_input

QUICK = TrainingSettings(iterations=3, batch=2, crop=16, learning_rate=5e-4, seed=1)


def test_adaptation_starts_from_the_shipped_model_and_records_it(tmp_path, make_blob):
    volumes = [make_blob(depth=8, size=24, seed=s)[0] for s in (0, 1)]
    out = adapt_and_save(volumes, tmp_path / "adapted.pt", QUICK, ["two blobs"], init="default")
    assert np.isfinite(out)
    adapted, config = load_model(tmp_path / "adapted.pt")
    shipped, shipped_config = load_model()
    assert config == shipped_config
    record = torch.load(tmp_path / "adapted.pt", weights_only=True)["training"]
    assert record["init"] == "default" and record["iterations"] == 3 and record["image_channels"] == 1
    # fine-tuned: close to the shipped weights after 3 small steps, but not equal to them
    diffs = [float((a - b).abs().max()) for a, b in zip(adapted.state_dict().values(), shipped.state_dict().values())]
    assert 0.0 < max(diffs) < 0.05


def test_bad_adaptation_input_is_refused(make_blob):
    image = make_blob(depth=8, size=24)[0]
    with pytest.raises(UserError, match="at least 2 volumes, got 1"):
        check_adaptation_input([image])
    with pytest.raises(UserError, match="volume 2 of 2 has fewer than 3 slices"):
        check_adaptation_input([image, image[:2]])


def test_model_for_another_channel_count_or_version_is_refused(tmp_path):
    net, config = load_model()
    path = save_model(net, config, tmp_path / "two.pt", {"image_channels": 2})
    with pytest.raises(UserError, match="adapted on 2-channel images; these images have 1"):
        check_model_channels(path, 1)
    check_model_channels(path, 2)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["stem.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(payload, tmp_path / "stem.pt")
    with pytest.raises(UserError, match="takes 3 input channels"):
        load_model(tmp_path / "stem.pt")


def test_cli_adapts_with_init_default_and_refuses_one_volume(tmp_path, capsys):
    from slicebudget.cli.main import main
    from slicebudget.data.phantoms import write_phantom_dataset

    two = write_phantom_dataset(tmp_path / "two", "vessel", cases=2, seed=5, shape=(8, 24, 24), test_cases=0)
    out = tmp_path / "adapted.pt"
    assert main(["propagation", "train", str(two), "--out", str(out), "--init", "default", "--iterations", "2",
                 "--crop", "16", "--device", "cpu"]) == 0
    assert load_model(out)[1] == load_model()[1]
    one = write_phantom_dataset(tmp_path / "one", "vessel", cases=1, seed=5, shape=(8, 24, 24), test_cases=0)
    bad = tmp_path / "bad.pt"
    assert main(["propagation", "train", str(one), "--out", str(bad), "--init", "default", "--iterations", "2",
                 "--device", "cpu"]) == 2
    assert "at least 2 volumes" in capsys.readouterr().err and not bad.exists()


def test_study_adapts_once_and_reuses_the_model(tmp_path, make_blob, monkeypatch):
    from slicebudget.study import adapt

    monkeypatch.setattr(adapt, "ADAPT_SETTINGS", QUICK)
    volumes = {c: make_blob(depth=8, size=24, seed=i)[0] for i, c in enumerate(("a", "b"))}
    calls = []

    def volumes_of(case_id):
        calls.append(case_id)
        return volumes[case_id]

    first = adapt.adapted_model(tmp_path, volumes_of, ["a", "b"], "f" * 40, 1)
    second = adapt.adapted_model(tmp_path, volumes_of, ["a", "b"], "f" * 40, 1)
    assert first == second and first.parent == tmp_path / "adapted" and calls == ["a", "b"]
    load_model(first)


def test_a_run_with_model_adapt_gets_the_studys_adapted_model_shipped_with_its_task(tmp_path, make_blob):
    """The driver adapts once; the worker's spec names the model as a shipped input, which lands in
    the run's scratch folder, so the worker never reads the study folder."""
    from types import SimpleNamespace

    from slicebudget.study.execute_run import propagation_settings
    from slicebudget.study.product import materialize_inputs
    from slicebudget.study.tasks import worker_task

    adapted = tmp_path / "study" / "adapted" / "sli2vol-ab.pt"
    adapt_and_save([make_blob(depth=8, size=24, seed=s)[0] for s in (0, 1)], adapted, QUICK, ["blobs"],
                   image_channels=1, init="default")
    record = {"run_id": "r1", "spec": {"model": {"name": "unet"}, "interpolation": "sli2vol:fallback=none:model=adapt"}}
    task = worker_task(record, tmp_path / "study.yaml", tmp_path / "data", adapted)
    assert task.spec["interpolation"] == "sli2vol:fallback=none:model=@input/propagation.pt"
    scratch = tmp_path / "worker-scratch"
    scratch.mkdir()
    spec = materialize_inputs(task.spec, task.inputs, scratch)
    prepared = SimpleNamespace(normalizations=[None])
    method, params = propagation_settings(SimpleNamespace(interpolation=spec["interpolation"]), prepared)
    assert method == "sli2vol" and params["fallback"] == "none"
    assert Path(params["model"]).read_bytes() == adapted.read_bytes() and Path(params["model"]).parent == scratch
    load_model(params["model"])
    with pytest.raises(UserError, match="adapted on 1-channel images; these images have 2"):
        propagation_settings(SimpleNamespace(interpolation=spec["interpolation"]),
                             SimpleNamespace(normalizations=[None, None]))
    with pytest.raises(ValueError, match="resolved by the study runner"):
        propagation_settings(SimpleNamespace(interpolation="sli2vol:model=adapt"), prepared)
