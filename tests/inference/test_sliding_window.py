"""Sliding window: reproduces an identity, pads small volumes, matches a whole-volume pass."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from slicebudget.inference import SlidingWindowInferer
from slicebudget.models.sliding_window import gaussian_importance_map, sliding_window_inference, window_starts


def identity_net(channels: int) -> nn.Module:
    net = nn.Conv3d(channels, channels, 1)
    with torch.no_grad():
        net.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1, 1))
        net.bias.zero_()
    return net


class TupleOutput(nn.Module):
    """Deep-supervision style output: the full-resolution prediction first."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x[:, :, ::2, ::2, ::2]


@pytest.mark.parametrize("shape", [(2, 3, 20, 27, 33), (1, 1, 5, 6, 7)])
def test_identity_model_is_reproduced_including_volumes_smaller_than_a_patch(shape):
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    out = sliding_window_inference(image, identity_net(shape[1]), (8, 16, 16), overlap=0.5, batch_size=3)
    assert out.shape == image.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, image, rtol=1e-5, atol=1e-5)


def test_tuple_outputs_and_inferer_object_share_the_call():
    image = torch.randn(1, 2, 10, 12, 12)
    inferer = SlidingWindowInferer(patch_size=(6, 8, 8), overlap=0.25, batch_size=2)
    out = inferer(image, TupleOutput(identity_net(2)))
    torch.testing.assert_close(out, image, rtol=1e-5, atol=1e-5)


def clean_axis(size: int, starts: list[int], patch: int, radius: int) -> torch.Tensor:
    """Voxels every covering window sees with their whole receptive field (or the volume edge)."""
    ok = torch.ones(size, dtype=torch.bool)
    for p in range(size):
        for s in starts:
            if s <= p < s + patch:
                near_start = p - s < radius and s > 0
                near_end = s + patch - 1 - p < radius and s + patch < size
                ok[p] &= not (near_start or near_end)
    return ok


def test_matches_whole_volume_pass_for_a_translation_equivariant_net_away_from_window_borders():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 3, padding=1)).eval()
    image = torch.randn(1, 1, 32, 32, 32)
    patch = (16, 16, 16)
    out = sliding_window_inference(image, net, patch, overlap=0.5, batch_size=4)
    with torch.no_grad():
        whole = net(image)
    starts = window_starts(32, 16, 0.5)
    assert starts == [0, 8, 16]
    axis = clean_axis(32, starts, 16, radius=2)  # two 3x3x3 convs: receptive radius 2
    clean = axis[:, None, None] & axis[None, :, None] & axis[None, None, :]
    assert clean.sum() > 1000  # a real share of the volume is compared
    torch.testing.assert_close(out[0][:, clean], whole[0][:, clean], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[0][:, ~clean], whole[0][:, ~clean], atol=1e-3)  # the check can fail


def test_gaussian_map_peaks_in_the_centre_and_never_vanishes():
    weights = gaussian_importance_map((5, 9, 9), sigma_scale=0.125)
    assert weights.shape == (5, 9, 9)
    assert weights[2, 4, 4] == 1.0 == weights.max()
    assert weights.min() > 0
    torch.testing.assert_close(weights, weights.flip(0).flip(1).flip(2))


@pytest.mark.parametrize("size,patch,overlap", [(100, 32, 0.5), (33, 32, 0.5), (64, 16, 0.0), (16, 16, 0.5)])
def test_window_starts_cover_the_axis_with_the_requested_overlap(size, patch, overlap):
    starts = window_starts(size, patch, overlap)
    assert starts[0] == 0 and starts[-1] + patch == size
    covered = torch.zeros(size, dtype=torch.bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all()
    for a, b in itertools.pairwise(starts):
        assert patch - (b - a) >= int(patch * overlap)
