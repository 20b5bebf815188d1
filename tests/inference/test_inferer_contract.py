"""What every registered inferer promises (the list comes from the registry, not from this file)."""

from __future__ import annotations

import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.inference import INFERERS, build_inferer, inferer_parameters
from slicebudget.models.nmsw.patches import patch_grid

from .nmsw.conftest import CLASSES, PATCH, VOLUME, make_model

# Values for parameters an inferer requires (no default); a new required parameter needs one here.
REQUIRED_EXAMPLES = {"k": 4}


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def volume() -> torch.Tensor:
    return torch.randn(1, 1, *VOLUME, generator=torch.Generator().manual_seed(3))


def _build(name: str, model, **params):
    network = model if INFERERS[name].needs_nmsw_model else model.local_net
    required = {p: v for p, v in REQUIRED_EXAMPLES.items() if p in inferer_parameters(name)}
    return build_inferer(name, network, PATCH, **{**required, **params}), model.local_net


@pytest.mark.parametrize("name", sorted(INFERERS))
def test_same_shape_and_deterministic_in_eval(name, model, volume):
    model.eval()
    inferer, local_net = _build(name, model)
    first, second = inferer(volume, local_net), inferer(volume, local_net)
    assert first.shape == (1, CLASSES, *VOLUME)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(INFERERS))
def test_unknown_parameter_is_refused_with_the_valid_ones(name, model):
    with pytest.raises(UserError, match="valid keys: " + ", ".join(sorted(inferer_parameters(name)))):
        _build(name, model, zoom=2)


def test_nmsw_with_k_equal_n_is_the_sliding_window(model, volume):
    with torch.no_grad():  # a non-trivial class weight must not matter once every window is taken
        model.class_logit.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    n = patch_grid(VOLUME, PATCH).n_patches
    nmsw = build_inferer("nmsw", model, PATCH, k=n)(volume, model.local_net)
    sw = build_inferer("sliding_window", model.local_net, PATCH)(volume, model.local_net)
    assert torch.allclose(nmsw, sw, rtol=1e-4, atol=1e-5)
