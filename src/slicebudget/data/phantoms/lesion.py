"""Lesion task: one to several small, irregular, low-contrast lesions in textured tissue (ATLAS-like).

A head-like ellipsoid (bone shell around textured tissue) sits in air; lesions are only slightly
darker than the tissue around them, so the contrast-to-noise ratio is about one.
"""

from __future__ import annotations

import numpy as np

from slicebudget.data.phantoms._shapes import (
    Grid,
    add_noise_and_bias,
    blob_box,
    blob_level,
    intersect,
    point_in_ellipsoid,
    relative,
    smooth_field,
    soft_edge,
)

LABELS = {"background": 0, "lesion": 1}

HEAD_ROUGHNESS = 0.05
SKULL_THICKNESS = 0.08  # share of the head radius taken by the bone shell
LESION_ROUGHNESS = (0.25, 0.45)
MAX_LESIONS = 5


def lesion_phantom(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    extent = grid.extent
    image = np.full(grid.shape, -1000.0, dtype=np.float32)
    labels = np.zeros(grid.shape, dtype=np.uint8)

    # Head: spans 60-90 % of the slice axis, so the top and bottom slices hold air only.
    radii = np.array([0.5 * extent[0] * rng.uniform(0.60, 0.90), extent[1] * rng.uniform(0.36, 0.44),
                      extent[2] * rng.uniform(0.32, 0.40)])
    center = grid.snap(extent * np.array([rng.uniform(0.47, 0.53), 0.5, 0.5]))
    box = blob_box(grid, center, radii, HEAD_ROUGHNESS)
    level = blob_level(grid, box, center, radii, HEAD_ROUGHNESS, rng, bumps=3)
    brain = level < 1.0 - SKULL_THICKNESS

    # Tissue texture: two tissue classes from a thresholded smooth field (grey/white-matter-like),
    # plus a finer texture that the lesions have to be told apart from.
    shape = brain.shape
    # Feature sizes in mm (about 12 mm and 5 mm), capped so a 512-voxel axis stays cheap.
    coarse_bumps = tuple(int(np.clip(s * sp / 12.0, 3, 48)) for s, sp in zip(shape, grid.spacing))
    fine_bumps = tuple(int(np.clip(s * sp / 5.0, 4, 64)) for s, sp in zip(shape, grid.spacing))
    tissue = np.where(smooth_field(rng, shape, coarse_bumps) > 0, np.float32(rng.uniform(36, 42)),
                      np.float32(rng.uniform(26, 32)))
    tissue += smooth_field(rng, shape, fine_bumps) * np.float32(rng.uniform(4, 8))
    head = np.where(level < 1.0, np.float32(rng.uniform(500, 800)), np.float32(-1000.0))
    image[box] = np.where(brain, tissue, head)
    del tissue, head

    for _ in range(int(rng.integers(1, MAX_LESIONS + 1))):
        l_radii = np.maximum(grid.inplane_fov * rng.uniform(0.02, 0.07, size=3), 1.2 * np.asarray(grid.spacing))
        l_center = grid.snap(point_in_ellipsoid(rng, center, radii, 0.65))
        roughness = rng.uniform(*LESION_ROUGHNESS)
        l_box = intersect(blob_box(grid, l_center, l_radii, roughness), box)
        l_level = blob_level(grid, l_box, l_center, l_radii, roughness, rng, bumps=3)
        in_brain = brain[relative(l_box, box)]
        labels[l_box][(l_level < 1.0) & in_brain] = LABELS["lesion"]
        weight = soft_edge(l_level, float(l_radii[1]), grid.spacing[1]) * in_brain
        image[l_box] -= weight * np.float32(rng.uniform(6, 14))
        # The centre voxel is a lesion whenever it lies in the brain (its level is <= roughness < 1).
        centre = tuple(i - b.start for i, b in zip(grid.index_of(l_center), box))
        if all(0 <= c < n for c, n in zip(centre, brain.shape)) and brain[centre]:
            labels[grid.index_of(l_center)] = LABELS["lesion"]

    image = add_noise_and_bias(image, rng, noise_hu=rng.uniform(6, 10), bias_amplitude=rng.uniform(0.005, 0.02))
    if not labels.any():  # only on degenerate grids: keep the class present in every case
        labels[grid.index_of(center)] = LABELS["lesion"]
    return image, labels
