from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from slicebudget.models.nmsw.onednn import OneDNNConvolutions

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": 1},
        {"stride": 2, "padding": (1, 0, 1)},
        {"dilation": 2, "padding": 2},
        {"groups": 2, "padding": 1},
    ],
)
@pytest.mark.parametrize("with_bias", [True, False])
def test_rerouted_convolution_matches_pytorch(kwargs, with_bias):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 9, 8, generator=generator)
    weight = torch.randn(6, 4 // kwargs.get("groups", 1), 3, 3, 3, generator=generator)
    bias = torch.randn(6, generator=generator) if with_bias else None
    expected = F.conv3d(x, weight, bias, **kwargs)
    with torch.no_grad(), OneDNNConvolutions(), mock.patch.object(
        torch, "mkldnn_convolution", wraps=torch.mkldnn_convolution
    ) as spy:
        got = F.conv3d(x, weight, bias, **kwargs)
    assert spy.call_count == 1  # it really went to oneDNN
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_network_output_unchanged_and_positional_arguments_accepted():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(3, 2, 1))
    x = torch.randn(1, 1, 5, 12, 12)
    with torch.no_grad():
        expected = net(x)
        with OneDNNConvolutions():
            got = net(x)
            positional = torch.conv3d(x, net[0].weight, net[0].bias, 1, 1, 1, 1)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(positional, F.conv3d(x, net[0].weight, net[0].bias, padding=1), rtol=1e-4, atol=1e-5)


def test_ineligible_calls_and_gradients_are_left_to_pytorch():
    x64 = torch.randn(1, 2, 4, 5, 5, dtype=torch.float64)
    w64 = torch.randn(3, 2, 3, 3, 3, dtype=torch.float64)
    x = torch.randn(1, 2, 4, 5, 5)
    w = torch.randn(3, 2, 3, 3, 3, requires_grad=True)
    batch = torch.randn(2, 2, 4, 5, 5)
    with OneDNNConvolutions(), mock.patch.object(torch, "mkldnn_convolution") as spy:
        with torch.no_grad():
            double = F.conv3d(x64, w64, padding=1)
            same = F.conv3d(x, w, padding="same")
            batched = F.conv3d(batch, w, padding=1)  # PyTorch already uses oneDNN for these
        trained = F.conv3d(x, w, padding=1)  # grad enabled: the ordinary backward must stay
        trained.sum().backward()
    assert spy.call_count == 0
    assert torch.equal(double, F.conv3d(x64, w64, padding=1))
    assert same.shape == x.shape[:1] + (3,) + x.shape[2:]
    assert torch.equal(batched, F.conv3d(batch, w.detach(), padding=1))
    assert w.grad is not None and w.grad.shape == w.shape


def test_benchmark_counts_rerouted_convolutions():
    from slicebudget.bench.inference import count_macs

    net = torch.nn.Conv3d(2, 4, 3, padding=1)
    x = torch.randn(1, 2, 6, 8, 8)

    def rerouted():
        with OneDNNConvolutions():
            return net(x)

    assert count_macs(lambda: net(x)) == count_macs(rerouted) == 2 * 4 * 27 * 6 * 8 * 8
