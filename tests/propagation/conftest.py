"""Tiny synthetic volumes for propagation tests: a bright drifting blob with a dark core."""

from __future__ import annotations

import numpy as np


def blob_volume(depth: int = 20, size: int = 40, first: int = 4, last: int = 15, seed: int = 0, core: bool = True):
    """Image (D, H, W) float32 and dense labels (uint8): class 1 = a bright ellipsoid on slices
    ``first..last`` whose centre drifts across slices, class 2 = a darker core inside it."""
    rng = np.random.default_rng(seed)
    z = np.arange(depth)[:, None, None]
    y = np.arange(size)[None, :, None]
    x = np.arange(size)[None, None, :]
    mid = 0.5 * (first + last)
    half = 0.5 * (last - first) + 0.5
    t = np.clip(1.0 - ((z - mid) / half) ** 2, 0.0, None)
    radius = 0.3 * size * np.sqrt(t)
    cy = 0.5 * size + 0.06 * size * (z - mid) / max(half, 1.0)
    cx = 0.5 * size - 0.04 * size * (z - mid) / max(half, 1.0)
    dist = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
    organ = (dist < radius) & (z >= first) & (z <= last)
    labels = organ.astype(np.uint8)
    if core:
        inner = organ & (dist < 0.4 * radius)
        labels[inner] = 2
    image = np.full(labels.shape, 20.0, dtype=np.float32)
    image[labels == 1] = 120.0
    image[labels == 2] = 70.0
    image += rng.normal(0.0, 5.0, size=image.shape).astype(np.float32)
    return image, labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def make_blob():
    return blob_volume


@pytest.fixture(scope="session")
def measure_iou():
    return iou
