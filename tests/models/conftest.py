from __future__ import annotations

import numpy as np
import pytest
import torch


def blob_case(dims: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A phantom-like case: a bright noisy ellipse (2D) or ellipsoid (3D) on a darker background."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, size)] * dims, indexing="ij")
    radii = rng.uniform(0.35, 0.55, dims)
    centre = rng.uniform(-0.15, 0.15, dims)
    inside = sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii)) <= 1.0
    image = inside.astype(np.float32) * 1.5 - 0.5 + rng.normal(0, 0.3, inside.shape).astype(np.float32)
    return torch.from_numpy(image)[None, None], torch.from_numpy(inside.astype(np.int64))[None]


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_blob():
    return blob_case
