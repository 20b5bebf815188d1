"""Organ task: a large smooth organ holding a darker tumour, with clear contrast (LiTS- or DBC-like).

The organ spans only part of the slice axis, so slices above and below it hold background only:
that is what slice selection and mask propagation have to cope with.
"""

from __future__ import annotations

import numpy as np

from slicebudget.data.phantoms._shapes import (
    Grid,
    add_noise_and_bias,
    blob_box,
    blob_level,
    body_outline,
    intersect,
    point_in_ellipsoid,
    relative,
    soft_edge,
)

LABELS = {"background": 0, "organ": 1, "tumour": 2}

ORGAN_ROUGHNESS = 0.12  # a smooth organ: small deformation of the ellipsoid
TUMOUR_ROUGHNESS = 0.25
TUMOUR_MAX_OFFSET = 0.45  # tumour centre within 45 % of the organ radius: well inside the organ


def organ_phantom(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    extent = grid.extent
    image = body_outline(grid, rng, fat_hu=rng.uniform(-120, -80), tissue_hu=rng.uniform(30, 55))
    labels = np.zeros(grid.shape, dtype=np.uint8)

    # Organ: covers 35-70 % of the slice axis, placed so at least one empty slice lies above and below.
    radii = np.array([
        0.5 * extent[0] * rng.uniform(0.35, 0.70),
        extent[1] * rng.uniform(0.17, 0.27),
        extent[2] * rng.uniform(0.19, 0.29),
    ])
    reach_z = radii[0] * (1 + ORGAN_ROUGHNESS) + grid.spacing[0]
    center = np.array([
        rng.uniform(reach_z, max(reach_z, extent[0] - reach_z)),
        extent[1] * rng.uniform(0.44, 0.56),
        extent[2] * rng.uniform(0.42, 0.58),
    ])
    center = grid.snap(center)
    organ_box = blob_box(grid, center, radii, ORGAN_ROUGHNESS)
    organ_level = blob_level(grid, organ_box, center, radii, ORGAN_ROUGHNESS, rng, bumps=4)
    organ_mask = organ_level < 1.0
    organ_hu = rng.uniform(80, 130)
    weight = soft_edge(organ_level, float(radii[1]), grid.spacing[1])
    region = image[organ_box]
    region += weight * (np.float32(organ_hu) - region)
    labels[organ_box][organ_mask] = LABELS["organ"]

    # Tumour: a rougher, darker blob whose centre is a voxel well inside the organ, cut to the organ.
    t_radii = np.maximum(radii * rng.uniform(0.15, 0.35, size=3), 1.2 * np.asarray(grid.spacing))
    t_center = grid.snap(point_in_ellipsoid(rng, center, radii, TUMOUR_MAX_OFFSET))
    t_box = intersect(blob_box(grid, t_center, t_radii, TUMOUR_ROUGHNESS), organ_box)
    t_level = blob_level(grid, t_box, t_center, t_radii, TUMOUR_ROUGHNESS, rng, bumps=3)
    inside_organ = organ_mask[relative(t_box, organ_box)]
    t_mask = (t_level < 1.0) & inside_organ
    t_weight = soft_edge(t_level, float(t_radii[1]), grid.spacing[1]) * inside_organ
    tumour_hu = organ_hu - rng.uniform(40, 80)
    region = image[t_box]
    region += t_weight * (np.float32(tumour_hu) - region)
    labels[t_box][t_mask] = LABELS["tumour"]
    # The construction guarantees this (centre level <= roughness < 1, centre inside the organ);
    # keep it explicit so a tiny grid can never yield a tumour-free case.
    labels[grid.index_of(t_center)] = LABELS["tumour"]

    image = add_noise_and_bias(image, rng, noise_hu=rng.uniform(8, 18), bias_amplitude=rng.uniform(0.01, 0.04))
    return image, labels
