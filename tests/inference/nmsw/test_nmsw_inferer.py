from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.inference import build_inferer
from slicebudget.inference.nmsw import NMSWInferer, RandomForegroundInferer
from slicebudget.models.nmsw.aggregate import blend_predictions
from slicebudget.models.nmsw.patches import patch_grid
from slicebudget.inference.nmsw.random_foreground import draw_foreground, foreground_patches
from slicebudget.inference.sliding_window import SlidingWindowInferer
from slicebudget.models.sliding_window import sliding_window_inference

from .conftest import PATCH, VOLUME, TinyNet, make_model


def test_two_evaluation_calls_are_identical(model, volume):
    inferer = NMSWInferer(model, k=4)
    first, second = inferer(volume), inferer(volume)
    assert first.shape == (1, 3, *VOLUME)
    assert torch.equal(first, second)


def test_k_equal_n_reproduces_the_sliding_window_with_the_same_local_model(model, volume):
    n = patch_grid(VOLUME, PATCH).n_patches
    with torch.no_grad():  # a non-trivial class weight must not matter once every window is taken
        model.class_logit.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    sw = sliding_window_inference(volume, model.local_net, PATCH, overlap=0.5, batch_size=5)
    nmsw = NMSWInferer(model, k=n, batch_size=5)(volume)
    assert torch.allclose(nmsw, sw, rtol=1e-4, atol=1e-5)
    # K is clamped to N, and a network handed in at call time is used as the local model
    other = TinyNet(1, 3)
    assert torch.allclose(NMSWInferer(model, k=10 * n)(volume, other), SlidingWindowInferer(PATCH)(volume, other),
                          rtol=1e-4, atol=1e-5)


def test_small_k_keeps_the_global_prediction_outside_the_chosen_patches(model, volume):
    grid = patch_grid(VOLUME, PATCH)
    with torch.no_grad():
        coarse, patch_logits = model.global_forward(volume, grid)
        up = model.upsample(coarse, VOLUME)[0]
        out = NMSWInferer(model, k=1)(volume)[0]
    start = grid.starts()[patch_logits[0].argmax()].tolist()
    inside = torch.zeros(VOLUME, dtype=torch.bool)
    inside[grid.region(start)] = True
    assert torch.equal(out[:, ~inside], up[:, ~inside])
    assert not torch.allclose(out[:, inside], up[:, inside])


def test_isolated_patch_follows_eq6_weighting():
    """One patch covering a voxel no other window reaches: sigma(c) local + (1 - sigma(c)) global."""
    grid = patch_grid((8, 12, 12), (8, 12, 12))  # N = 1
    up = torch.randn(2, 8, 12, 12)
    local = torch.randn(1, 2, 8, 12, 12)
    class_logit = torch.tensor([0.3, -1.2])
    out = blend_predictions(up, local, grid.starts(), grid, class_logit)
    assert torch.allclose(out, local[0])  # nothing skipped: the patch is the whole answer
    grid = patch_grid((8, 12, 24), (8, 12, 12))  # windows at x = 0, 6, 12
    up = torch.randn(2, 8, 12, 24)
    starts = grid.starts()[:1]
    out = blend_predictions(up, local, starts, grid, class_logit)
    share = torch.sigmoid(class_logit)[:, None, None]
    # x < 6 is covered by window 0 only, so the skipped mass there is zero: local wins outright;
    # in 6 <= x < 12 window 0 competes with the skipped window 1, stood in for by the global prediction
    assert torch.allclose(out[..., :6], local[0][..., :6], atol=1e-6)
    x = 8
    w_own = math.exp(-0.5 * ((x - 5.5) / 1.5) ** 2)  # sigma = 12 / 8; the D and H factors cancel
    w_skip = math.exp(-0.5 * ((x - 6 - 5.5) / 1.5) ** 2)
    expected = (share * w_own * local[0][..., x] + (1 - share) * w_skip * up[..., x]) / (
        share * w_own + (1 - share) * w_skip
    )
    assert torch.allclose(out[..., x], expected, atol=1e-5)
    assert torch.equal(out[..., 12:], up[..., 12:])


def test_random_foreground_draws_only_among_foreground_patches(model):
    grid = patch_grid(VOLUME, PATCH)
    coarse = torch.zeros(3, 8, 12, 12)
    coarse[0] = 1.0  # background everywhere ...
    coarse[1, 0:2, 0:3, 0:3] = 5.0  # ... except one corner
    mask = foreground_patches(coarse, grid)
    assert 0 < mask.sum() < grid.n_patches
    for start, is_fg in zip(grid.starts().tolist(), mask.tolist()):
        assert is_fg == all(s < limit for s, limit in zip(start, (4, 6, 6)))
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = draw_foreground(coarse, grid, 2, rng)
        assert len(set(drawn.tolist())) == drawn.numel() == min(2, int(mask.sum()))
        assert mask[drawn].all()
    assert draw_foreground(coarse, grid, 50, rng).numel() == int(mask.sum())


def test_random_foreground_inferer_is_seeded(model, volume):
    a = RandomForegroundInferer(model, k=3, seed=4)(volume)
    b = RandomForegroundInferer(model, k=3, seed=4)(volume)
    assert torch.equal(a, b)


def test_bad_k_is_a_user_error(model):
    for k in (0, -3, 2.5, "ten"):
        with pytest.raises(UserError, match="k must be"):
            NMSWInferer(model, k=k)
    with pytest.raises(UserError, match="k must be"):
        build_inferer("nmsw", model, PATCH, k=0)


def test_volume_smaller_than_a_patch_is_padded_with_a_warning(model):
    small = torch.randn(1, 1, 6, 10, 24)
    with pytest.warns(UserWarning, match="smaller than the patch"):
        out = NMSWInferer(model, k=2)(small)
    assert out.shape == (1, 3, 6, 10, 24)
    assert torch.isfinite(out).all()


def test_build_inferer_for_each_name(model, volume):
    assert isinstance(build_inferer("nmsw", model, PATCH, k=3), NMSWInferer)
    assert isinstance(build_inferer("random_foreground", model, PATCH, k=3), RandomForegroundInferer)
    sw = build_inferer("sliding_window", model.local_net, PATCH)
    assert torch.allclose(sw(volume, model.local_net), SlidingWindowInferer(PATCH)(volume, model.local_net))
    with pytest.raises(UserError, match="valid: sliding_window, nmsw, random_foreground"):
        build_inferer("zoom", model, PATCH)
    with pytest.raises(UserError, match="needs an NMSW model"):
        build_inferer("nmsw", model.local_net, PATCH, k=3)
    with pytest.raises(UserError, match="patch size"):
        build_inferer("nmsw", model, (16, 16, 16), k=3)
    with pytest.raises(UserError, match="does not take"):
        build_inferer("nmsw", model, PATCH, k=3, overlap=0.25)


def test_inferer_restores_training_mode(volume):
    model = make_model()
    model.train()
    NMSWInferer(model, k=2)(volume)
    assert model.training and model.global_net.training
