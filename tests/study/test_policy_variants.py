"""Policy variants and 3D sampling in the study YAML: checked against the registry, run, labelled apart."""

from __future__ import annotations

import json

import pytest
import yaml

from slicebudget.errors import UserError
from slicebudget.study.choices import policy_label, policy_parts
from slicebudget.study.config import load_config
from slicebudget.study.runner import run_study
from slicebudget.study.store import StudyStore

from .conftest import base_config  # noqa: TID252

VARIANT = {"name": "coreset", "features": "intensity", "n_features": 4, "scope": "dataset", "quota": True}


def load(tmp_path, **overrides):
    path = tmp_path / "STUDY.yaml"
    path.write_text(yaml.safe_dump({**base_config(tmp_path), **overrides}))
    return load_config(path)


def error_of(tmp_path, **overrides) -> str:
    with pytest.raises(UserError) as info:
        load(tmp_path, **overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_policy_mapping_is_canonical_and_labelled_by_its_parameters(tmp_path):
    config = load(tmp_path, policies=["coreset", {"name": "coreset", "start": "mean"}, VARIANT][1:])
    # a mapping of defaults only is the plain name; defaults are dropped from a variant
    assert config.policies[0] == "coreset"
    variant = config.policies[1]
    assert variant == {"name": "coreset", "n_features": 4, "scope": "dataset", "quota": True}
    assert policy_label(variant) == "coreset(n_features=4, scope=dataset, quota=true)"
    assert policy_parts(variant) == ("coreset", {"n_features": 4}, "dataset-quota")
    assert policy_parts({"name": "random", "scope": "dataset"}) == ("random", {}, "dataset")


def test_policy_parameter_it_does_not_take_lists_the_valid_ones(tmp_path):
    message = error_of(tmp_path, policies=[{"name": "random", "features": "encoder"}])
    assert "policies.0: policy 'random' takes no parameter 'features'; valid: scope, quota" in message
    message = error_of(tmp_path, policies=[{"name": "coreset", "bogus": 1}])
    assert "valid: features, n_features, thumbnail_size, start, scope, quota" in message


@pytest.mark.parametrize("policy, words", [
    ({"name": "coreset", "features": "pixels"}, "unknown feature extractor 'pixels'"),
    ({"name": "coreset", "scope": "hospital"}, "unknown scope 'hospital'"),
    ({"name": "coreset", "quota": True}, "quota applies to scope: dataset"),
    ({"name": "coreset", "scope": "dataset", "quota": "yes"}, "quota must be true or false"),
    ({"features": "encoder"}, "a policy is a name or a mapping with `name`"),
])
def test_bad_policy_values_are_one_line(tmp_path, policy, words):
    assert words in error_of(tmp_path, policies=[policy])


def test_the_same_variant_twice_is_refused(tmp_path):
    assert "policies must not repeat" in error_of(tmp_path, policies=["coreset", {"name": "coreset"}])


def test_sampling_must_sum_to_one_and_name_known_groups(tmp_path):
    training = base_config(tmp_path)["training"]
    ok = load(tmp_path, training={**training, "sampling": {"foreground": 0.5, "background": 0.3, "unannotated": 0.2}})
    assert ok.training.sampling["foreground"] == 0.5
    assert "must sum to 1, got 0.9" in error_of(
        tmp_path, training={**training, "sampling": {"foreground": 0.5, "background": 0.2, "unannotated": 0.2}})
    assert "unknown sampling group 'lesion'" in error_of(
        tmp_path, training={**training, "sampling": {"lesion": 1.0}})
    assert "must be a finite number >= 0" in error_of(
        tmp_path, training={**training, "sampling": {"foreground": 1.5, "background": -0.5}})


def test_a_study_runs_variants_as_separate_policies(tmp_path, tiny_dataset):
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump({**base_config(tiny_dataset), "densities": [0.25], "volume_fractions": [1.0],
                                    "policies": ["coreset", VARIANT], "dense_baseline": False,
                                    "training": {**base_config(tiny_dataset)["training"], "iterations": 2}}))
    outcome = run_study(path, tmp_path / "study", threads=1, write_report=None)
    assert outcome.counts["done"] == 2, outcome
    with StudyStore(tmp_path / "study") as store:
        runs = {r["policy"]: r for r in store.runs()}
    assert set(runs) == {"coreset", "coreset(n_features=4, scope=dataset, quota=true)"}
    manifest = json.loads((tmp_path / "study" / "runs" / runs["coreset(n_features=4, scope=dataset, quota=true)"]["run_id"]
                           / "selection.json").read_text())
    assert manifest["scope"] == "dataset-quota" and manifest["policy_params"]["n_features"] == 4
