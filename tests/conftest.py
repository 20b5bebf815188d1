"""What tests across folders share: tiny synthetic volumes (one place for every blob) and torch's
thread count.

Blobs, each a plain function (the fixtures below hand out the first and third; a folder's conftest
imports the others):
- ``drifting_blob``: image + two-class labels, an ellipsoid drifting across slices (propagation);
- ``ellipsoid_volume``: one noisy ellipsoid, (1, D, H, W) image + labels (training);
- ``ellipse_case``: a 2D ellipse or 3D ellipsoid as torch tensors (model contract);
- ``cored_ball_labels``: a ball with a class-2 core, labels only (NMSW training).

``write_voxel`` hands out :func:`set_voxel`, which breaks one voxel of an image file on disk.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Tiny tensors run fastest on few threads, and the test machine's cores are shared: tests in a
# folder named here run with that many torch threads (others keep torch's default).
TORCH_THREADS_BY_FOLDER = {"models": 2, "training": 1, "inference": 1, "nmsw": 1}


@pytest.fixture(autouse=True)
def torch_threads(request):
    threads = TORCH_THREADS_BY_FOLDER.get(request.path.parent.name)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    yield
    torch.set_num_threads(previous)


def drifting_blob(depth: int = 20, size: int = 40, first: int = 4, last: int = 15, seed: int = 0, core: bool = True):
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


def ellipsoid_volume(seed: int, shape=(12, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid (label 1) in noise: (image (1, D, H, W) float32, labels (D, H, W))."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    centre = np.array([d / 2, h / 2, w / 2]) + rng.uniform(-3, 3, size=3)
    radii = np.array([d / 3, h / 4, w / 4]) * rng.uniform(0.8, 1.2, size=3)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    labels = (((grid - centre) / radii) ** 2).sum(axis=-1) <= 1
    image = labels.astype(np.float32) * 2.0 - 1.0 + rng.normal(0, 0.5, size=shape).astype(np.float32)
    return image[None], labels.astype(np.int64)


def ellipse_case(dims: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A phantom-like case: a bright noisy ellipse (2D) or ellipsoid (3D) on a darker background."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, size)] * dims, indexing="ij")
    radii = rng.uniform(0.35, 0.55, dims)
    centre = rng.uniform(-0.15, 0.15, dims)
    inside = sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii)) <= 1.0
    image = inside.astype(np.float32) * 1.5 - 0.5 + rng.normal(0, 0.3, inside.shape).astype(np.float32)
    return torch.from_numpy(image)[None, None], torch.from_numpy(inside.astype(np.int64))[None]


def cored_ball_labels(shape=(16, 24, 24)) -> np.ndarray:
    """A ball of class 1 with a class-2 core, off centre."""
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    r = np.sqrt(((zz - 6) / 4.0) ** 2 + ((yy - 9) / 6.0) ** 2 + ((xx - 14) / 6.0) ** 2)
    labels = np.where(r < 1, 1, 0)
    labels[r < 0.4] = 2
    return labels.astype(np.uint8)


@pytest.fixture(scope="session")
def make_blob():
    return drifting_blob


@pytest.fixture(scope="session")
def make_blob_case():
    return ellipse_case


def set_voxel(path, index: tuple[int, int, int], value) -> None:
    """Rewrite the image file at ``path`` with the voxel at ``index`` (numpy order: slice, row,
    column) set to ``value``; geometry and pixel type are kept. For tests that break a dataset."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[index] = value
    changed = sitk.GetImageFromArray(array)
    changed.CopyInformation(image)
    sitk.WriteImage(changed, str(path))


@pytest.fixture(scope="session")
def write_voxel():
    """:func:`set_voxel` (a fixture: test modules cannot import conftest)."""
    return set_voxel


# NMSW's one training recipe (slicebudget.training.nmsw.train_nmsw_recipe): the facts a study's and
# the inference benchmark's NMSW must both record.
RECIPE_KEYS = ("learning_rate", "global_warmup", "k", "train_local")


def recipe_facts(iterations: int) -> dict:
    from slicebudget.training.nmsw import RECIPE_K, RECIPE_LEARNING_RATE, RECIPE_WARMUP_PER_ITERATION

    return {"learning_rate": RECIPE_LEARNING_RATE, "global_warmup": RECIPE_WARMUP_PER_ITERATION * iterations,
            "k": RECIPE_K, "train_local": False}
