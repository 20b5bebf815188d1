"""Study config validation: every problem is one line that names the file and the field."""

from __future__ import annotations

import pytest
import yaml

from slicebudget.errors import UserError
from slicebudget.study.config import load_config, parse_config

from .conftest import base_config  # noqa: TID252


def error_of(tmp_path, data) -> str:
    path = tmp_path / "STUDY.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    with pytest.raises(UserError) as info:
        load_config(path)
    return str(info.value)


def test_valid_config_fills_defaults(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({**base_config(tmp_path), "interpolation": ["off"]}))
    config = load_config(path)
    assert config.repeats == 1 and config.dense_baseline is True
    assert config.models[0].display_name == "unet-resnet18"
    assert config.models[0].inference.name == "sliding_window"
    assert config.training.val_fraction == 0.2


def test_bad_list_item_is_named_with_its_index(tmp_path):
    message = error_of(tmp_path, {**base_config(tmp_path), "densities": [0.1, 0.2, 1.5]})
    assert message.startswith(f"{tmp_path / 'STUDY.yaml'}: densities.2: Input should be less than or equal to 1")


@pytest.mark.parametrize("value", [0.0, -0.1, 1.01])
def test_density_must_lie_in_zero_one(tmp_path, value):
    message = error_of(tmp_path, {**base_config(tmp_path), "densities": [value]})
    assert "densities.0:" in message


def test_unknown_policy_lists_valid_ones(tmp_path):
    message = error_of(tmp_path, {**base_config(tmp_path), "policies": ["fixed", "smartest"]})
    assert "policies.1: unknown policy 'smartest'" in message
    assert "coreset" in message and "random" in message


def test_unknown_interpolation_and_model_are_refused(tmp_path):
    assert "interpolation.0: unknown interpolation 'magic'" in error_of(
        tmp_path, {**base_config(tmp_path), "interpolation": ["magic"]})
    message = error_of(tmp_path, {**base_config(tmp_path), "models": [{"name": "resnet9000"}]})
    assert "models.0: unknown model 'resnet9000'" in message


def test_yaml_off_means_the_word_off(tmp_path):
    # YAML 1.1 parses a bare `off` as False; the config must still read it as "no interpolation".
    text = yaml.safe_dump(base_config(tmp_path)).replace("- 'off'", "- off")
    path = tmp_path / "off.yaml"
    path.write_text(text)
    assert load_config(path).interpolation == ["off"]


def test_version_is_required_and_checked(tmp_path):
    data = base_config(tmp_path)
    del data["version"]
    assert "version: missing" in error_of(tmp_path, data)
    assert "version:" in error_of(tmp_path, {**base_config(tmp_path), "version": 2})


def test_unknown_key_and_missing_training_field(tmp_path):
    assert "densitys: Extra inputs are not permitted" in error_of(tmp_path, {**base_config(tmp_path), "densitys": [0.1]})
    message = error_of(tmp_path, {**base_config(tmp_path), "training": {"batch_size": 2}})
    assert "training.iterations: Field required" in message


def test_phantom_dataset_errors_point_inside_the_phantom(tmp_path):
    message = error_of(tmp_path, {**base_config(tmp_path), "dataset": {"phantom": {"task": "blob"}}})
    assert "dataset.phantom.task: unknown phantom task 'blob'" in message


def test_three_d_model_needs_patch_size_and_nmsw_needs_3d(tmp_path):
    assert "patch_size" in error_of(tmp_path, {**base_config(tmp_path), "models": [{"name": "unet3d", "dims": 3}]})
    message = error_of(tmp_path, {**base_config(tmp_path),
                                  "models": [{"name": "unet", "dims": 2, "inference": {"name": "nmsw"}}]})
    assert "nmsw is for 3D models" in message


def test_invalid_yaml_and_missing_file(tmp_path):
    assert "invalid YAML" in error_of(tmp_path, "densities: [0.1,\n  - x: ]")
    with pytest.raises(UserError, match="study config not found"):
        load_config(tmp_path / "nope.yaml")


def test_parse_config_refuses_non_mapping():
    with pytest.raises(UserError, match="must be a YAML mapping"):
        parse_config([1, 2], "S.yaml")


def test_interpolation_with_an_adapted_or_given_model(tmp_path):
    config = {**base_config(tmp_path), "interpolation": ["off", {"name": "sli2vol", "model": "adapt"}]}
    path = tmp_path / "adapt.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load_config(path).interpolation == ["off", "sli2vol:model=adapt"]
    assert "model file 'nowhere.pt' not found" in error_of(
        tmp_path, {**base_config(tmp_path), "interpolation": [{"name": "sli2vol", "model": "nowhere.pt"}]})
    assert "takes no parameter model" in error_of(
        tmp_path, {**base_config(tmp_path), "interpolation": [{"name": "sdf", "model": "adapt"}]})
    assert "needs a `name`" in error_of(tmp_path, {**base_config(tmp_path), "interpolation": [{"model": "adapt"}]})
