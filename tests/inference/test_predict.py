"""Whole-case prediction returns class probabilities on the image grid, in 2D and 3D."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slicebudget.models.predict import predict_case
from slicebudget.models.sliding_window import sliding_window_inference


def pointwise_net(dims: int) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    torch.manual_seed(0)
    return conv(2, 3, 1)


def expected_probabilities(net, image):
    """Softmax of the pointwise net, computed directly over the (C, D, H, W) grid."""
    weight = net.weight.detach().reshape(3, 2).numpy()
    logits = np.einsum("kc,cdhw->kdhw", weight, image) + net.bias.detach().numpy()[:, None, None, None]
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


def test_2d_prediction_goes_slice_by_slice_and_crops_the_padding():
    image = np.random.default_rng(0).normal(size=(2, 5, 30, 45)).astype(np.float32)
    net = pointwise_net(2)
    seen_shapes = []
    net.register_forward_hook(lambda m, i, o: seen_shapes.append(tuple(i[0].shape)))
    probs = predict_case(net, image, dims=2, batch_size=2)
    assert probs.shape == (3, 5, 30, 45) and probs.dtype == np.float32
    assert seen_shapes == [(2, 2, 32, 64), (2, 2, 32, 64), (1, 2, 32, 64)]
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, expected_probabilities(net, image), atol=1e-5)
    assert net.training  # mode restored


def test_3d_prediction_by_sliding_window_whole_volume_or_given_inferer():
    image = np.random.default_rng(1).normal(size=(2, 10, 20, 24)).astype(np.float32)
    net = pointwise_net(3)
    expected = expected_probabilities(net, image)
    for kwargs in ({"patch_size": (8, 16, 16)}, {}):
        probs = predict_case(net, image, dims=3, **kwargs)
        assert probs.shape == (3, 10, 20, 24)
        np.testing.assert_allclose(probs, expected, atol=1e-5)
    calls = []

    def inferer(x, model):
        calls.append(tuple(x.shape))
        return sliding_window_inference(x, model, (4, 8, 8), overlap=0.25)

    probs = predict_case(net, image, dims=3, inferer=inferer)
    assert calls == [(1, 2, 10, 20, 24)]
    np.testing.assert_allclose(probs, expected, atol=1e-5)
