from __future__ import annotations

import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.models import MODEL_REGISTRY, create_model, model_info, model_parameters


def test_registry_holds_the_issue_models():
    assert {"unet", "fpn", "deeplabv3plus", "segformer", "unet3d", "lightmedseg", "meddanet_v2"} <= set(MODEL_REGISTRY)
    assert model_info("unet") == (2,)
    assert model_info("lightmedseg") == (3,)
    assert model_info("meddanet_v2") == (2,)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UserError) as info:
        create_model("vnet", dims=3, in_channels=1, classes=2)
    message = str(info.value)
    assert "vnet" in message and all(name in message for name in MODEL_REGISTRY)
    with pytest.raises(UserError):
        model_info("vnet")


def test_wrong_dims_and_unknown_parameters_are_user_errors():
    with pytest.raises(UserError, match="dims"):
        create_model("lightmedseg", dims=2, in_channels=1, classes=2)
    with pytest.raises(UserError, match="base_channels"):
        create_model("unet", dims=2, in_channels=1, classes=2, base_channels=8)
    with pytest.raises(UserError, match="classes"):
        create_model("unet3d", dims=3, in_channels=1, classes=1)
    assert "encoder" in model_parameters("segformer")


def test_encoder_defaults_and_segformer_encoder_check():
    with pytest.raises(UserError, match="mit_b0"):
        create_model("segformer", dims=2, in_channels=1, classes=2, encoder="resnet18")
    assert "mit_b0" in create_model("segformer", dims=2, in_channels=1, classes=2).network.name
    assert "resnet18" in create_model("deeplabv3plus", dims=2, in_channels=1, classes=2).network.name


def test_unet3d_width_and_depth_are_configurable():
    small = create_model("unet3d", dims=3, in_channels=1, classes=2, base_channels=4, depth=3)
    default = create_model("unet3d", dims=3, in_channels=1, classes=2)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in default.parameters()) / 10
    assert small(torch.randn(1, 1, 12, 12, 12)).shape == (1, 2, 12, 12, 12)


def test_weights_path_round_trip(tmp_path):
    trained = create_model("unet3d", dims=3, in_channels=1, classes=2, seed=1, base_channels=4, depth=3).eval()
    path = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), path)
    loaded = create_model("unet3d", dims=3, in_channels=1, classes=2, seed=2, base_channels=4, depth=3,
                          weights_path=path).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(trained(x), loaded(x))


def test_plain_smp_state_dict_loads_into_the_wrapper(tmp_path):
    source = create_model("fpn", dims=2, in_channels=1, classes=2, seed=1).eval()
    path = tmp_path / "smp.pt"
    torch.save({"state_dict": source.network.state_dict()}, path)
    target = create_model("fpn", dims=2, in_channels=1, classes=2, seed=5, weights_path=path).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_bad_weights_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        create_model("unet", dims=2, in_channels=1, classes=2, weights_path=tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        create_model("unet", dims=2, in_channels=1, classes=2, weights_path=corrupt)
    other = tmp_path / "other.pt"
    torch.save(create_model("unet3d", dims=3, in_channels=1, classes=2, base_channels=4, depth=3).state_dict(), other)
    with pytest.raises(UserError, match="do not fit"):
        create_model("unet3d", dims=3, in_channels=1, classes=2, weights_path=other)


def test_shallow_unet_builds_with_a_smaller_stride_and_keeps_any_input_size():
    import torch

    shallow = create_model("unet", dims=2, in_channels=1, classes=3, encoder_depth=3)
    default = create_model("unet", dims=2, in_channels=1, classes=3)
    assert shallow.stride == 8 and default.stride == 32
    x = torch.randn(2, 1, 20, 36)
    assert shallow(x).shape == (2, 3, 20, 36)
    # the shallow network is really smaller: the decoder is narrower
    decoder = lambda m: sum(p.numel() for p in m.network.decoder.parameters())  # noqa: E731
    assert decoder(shallow) < decoder(default) / 4


def test_building_a_2d_model_prints_no_third_party_import_warning():
    """timm (under smp) warns about torch.jit.interface on import; a study must not print that to users."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('always'); "
            "from slicebudget.models.smp_zoo import build_smp_model; build_smp_model('unet', 1, 2)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch.jit.interface" not in result.stderr
