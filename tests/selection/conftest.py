"""Small volumes and a tiny dense nnU-Net dataset shared by the selection tests."""

from __future__ import annotations

import numpy as np
import pytest


def block_volume(block_sizes=(10, 7, 9), side=16, seed=0, noise=0.05) -> np.ndarray:
    """Slices in consecutive blocks; every block has its own distinct pattern plus a little noise."""
    rng = np.random.default_rng(seed)
    patterns = [rng.normal(size=(side, side)) * 3 + 5 * i for i in range(len(block_sizes))]
    slices = [patterns[i] + noise * rng.normal(size=(side, side)) for i, n in enumerate(block_sizes) for _ in range(n)]
    return np.stack(slices).astype(np.float32)


@pytest.fixture
def make_blocks():
    """The :func:`block_volume` builder (a fixture: test modules cannot import conftest)."""
    return block_volume


@pytest.fixture
def noise_volume() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(24, 16, 16)).astype(np.float32)


@pytest.fixture(scope="session")
def dense_dataset(tmp_path_factory):
    """A 5-case phantom dataset (nnU-Net v2 raw, 1 test case), 12 slices of 16 x 16."""
    from slicebudget.data.phantoms import write_phantom_dataset

    root = tmp_path_factory.mktemp("dense") / "Dataset001_Organ"
    return write_phantom_dataset(root, "organ", cases=5, seed=3, shape=(12, 16, 16), spacing=(2.5, 0.8, 0.8), test_cases=1)
