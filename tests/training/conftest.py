"""Tiny synthetic sparse data and tiny models for the training tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slicebudget.training import EvalCase, TrainingCase
from slicebudget.volume import SparseAnnotation

from ..conftest import ellipsoid_volume  # noqa: TID252




def sparse_case(seed: int, slices, shape=(12, 32, 32)) -> TrainingCase:
    image, labels = ellipsoid_volume(seed, shape)
    return TrainingCase(f"case_{seed}", image, SparseAnnotation.from_dense(labels, slices))


def eval_case(seed: int, shape=(12, 32, 32)) -> EvalCase:
    image, labels = ellipsoid_volume(seed, shape)
    return EvalCase(f"val_{seed}", image, labels, (2.0, 1.0, 1.0))


class TinyNet(nn.Module):
    """Two convolutions, 2D or 3D (8 or 4 channels wide)."""

    def __init__(self, dims: int, in_channels=1, n_classes=2):
        super().__init__()
        conv, width = (nn.Conv2d, 8) if dims == 2 else (nn.Conv3d, 4)
        self.body = nn.Sequential(
            conv(in_channels, width, 3, padding=1), nn.ReLU(), conv(width, n_classes, 3, padding=1)
        )

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def make_net():
    def make(dims: int, seed: int = 0):
        torch.manual_seed(seed)
        return TinyNet(dims)

    return make


@pytest.fixture
def make_sparse_case():
    return sparse_case


@pytest.fixture
def make_eval_case():
    return eval_case
