from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slicebudget.models.nmsw import NMSWModel

CLASSES = 3
PATCH = (8, 12, 12)
VOLUME = (16, 24, 24)  # grid 3 x 3 x 3 = 27 patches


class TinyNet(nn.Module):
    """Two convolutions: enough to be non-linear and to pass gradients to its input."""

    def __init__(self, in_channels: int, classes: int, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, padding=1), nn.Tanh(), nn.Conv3d(width, classes, 1)
        )

    def forward(self, x):
        return self.body(x)


def make_model(seed: int = 0, classes: int = CLASSES, patch=PATCH) -> NMSWModel:
    torch.manual_seed(seed)
    return NMSWModel(TinyNet(1, classes + 1), TinyNet(1, classes), 1, classes, patch, 0.5, (0.5, 0.5, 0.5))


@pytest.fixture
def model() -> NMSWModel:
    return make_model()


@pytest.fixture
def volume() -> torch.Tensor:
    rng = np.random.default_rng(3)
    return torch.from_numpy(rng.normal(size=(1, 1, *VOLUME)).astype(np.float32))
