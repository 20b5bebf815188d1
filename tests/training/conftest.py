"""Tiny synthetic sparse data and tiny models for the training tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slicebudget.training import EvalCase, TrainingCase
from slicebudget.volume import SparseAnnotation


def blob_volume(seed: int, shape=(12, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid (label 1) in noise: (image (1, D, H, W) float32, labels (D, H, W))."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    centre = np.array([d / 2, h / 2, w / 2]) + rng.uniform(-3, 3, size=3)
    radii = np.array([d / 3, h / 4, w / 4]) * rng.uniform(0.8, 1.2, size=3)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    labels = (((grid - centre) / radii) ** 2).sum(axis=-1) <= 1
    image = labels.astype(np.float32) * 2.0 - 1.0 + rng.normal(0, 0.5, size=shape).astype(np.float32)
    return image[None], labels.astype(np.int64)


def sparse_case(seed: int, slices, shape=(12, 32, 32)) -> TrainingCase:
    image, labels = blob_volume(seed, shape)
    return TrainingCase(f"case_{seed}", image, SparseAnnotation.from_dense(labels, slices))


def eval_case(seed: int, shape=(12, 32, 32)) -> EvalCase:
    image, labels = blob_volume(seed, shape)
    return EvalCase(f"val_{seed}", image, labels, (2.0, 1.0, 1.0))


class TinyNet2d(nn.Module):
    def __init__(self, in_channels=1, n_classes=2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, n_classes, 3, padding=1)
        )

    def forward(self, x):
        return self.body(x)


class TinyNet3d(nn.Module):
    def __init__(self, in_channels=1, n_classes=2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, n_classes, 3, padding=1)
        )

    def forward(self, x):
        return self.body(x)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors run fastest on one thread, and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_net():
    def make(dims: int, seed: int = 0):
        torch.manual_seed(seed)
        return TinyNet2d() if dims == 2 else TinyNet3d()

    return make


@pytest.fixture
def make_sparse_case():
    return sparse_case


@pytest.fixture
def make_eval_case():
    return eval_case
