"""Vessel task: a thin branching tree in fatty tissue (FGT-like: fibroglandular strands in a breast).

The tree is grown in millimetres as a set of capsules (segment + radius) that branch and taper,
then drawn capsule by capsule inside each one's bounding box. Gaps between thin branches on
thick slices are realistic and are exactly what makes this task hard for mask interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.data.phantoms._shapes import (
    Grid,
    add_noise_and_bias,
    body_outline,
    capsule_distance,
    random_unit_vector,
    relative,
)

LABELS = {"background": 0, "vessel": 1}

TAPER = 0.8  # child radius / parent radius
BRANCH_PROBABILITY = 0.8  # otherwise a branch just continues


@dataclass(frozen=True)
class Capsule:
    start: np.ndarray
    end: np.ndarray
    radius: float


def _rotate_away(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``direction`` turned by ``angle`` (radians) about a random axis perpendicular to it."""
    axis = np.cross(direction, random_unit_vector(rng))
    axis /= max(np.linalg.norm(axis), 1e-9)
    turned = np.cos(angle) * direction + np.sin(angle) * np.cross(axis, direction)
    return turned / np.linalg.norm(turned)


def _keep_inside(point: np.ndarray, center: np.ndarray, radii: np.ndarray, limit: float = 0.95) -> np.ndarray:
    """Pull a point back towards the region centre if it left the region ellipsoid."""
    r = float(np.sqrt((((point - center) / radii) ** 2).sum()))
    return point if r <= limit else center + (point - center) * (limit / r)


def grow_tree(rng: np.random.Generator, center: np.ndarray, radii: np.ndarray, root_radius: float,
              min_radius: float, depth: int) -> list[Capsule]:
    """Capsules of a tree rooted at the region's edge and branching towards its inside."""
    # The root enters obliquely from above or below, so the tree crosses many slices.
    angle = rng.uniform(0, 2 * np.pi)
    side = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.4), np.cos(angle), np.sin(angle)])
    side /= np.linalg.norm(side)
    root = _keep_inside(center + side * radii * 0.85, center, radii)
    heading = (center - root) / np.linalg.norm(center - root)
    step = 0.6 * float(np.mean(radii))
    capsules: list[Capsule] = []
    frontier = [(root, heading, root_radius, 0)]
    while frontier:
        start, heading, radius, generation = frontier.pop()
        # Each branch is two short pieces with a small kink, for some tortuosity.
        length = step * TAPER**generation * rng.uniform(0.7, 1.2)
        point = start
        for _ in range(2):
            heading = _rotate_away(heading, rng.uniform(0.0, 0.35), rng)
            end = _keep_inside(point + heading * length / 2, center, radii)
            capsules.append(Capsule(point, end, radius))
            point = end
        if generation + 1 >= depth:
            continue
        child_radius = max(radius * TAPER, min_radius)
        if rng.random() < BRANCH_PROBABILITY:
            for sign in (-1.0, 1.0):
                angle = sign * rng.uniform(0.35, 0.8)
                frontier.append((point, _rotate_away(heading, abs(angle), rng), child_radius, generation + 1))
        else:
            frontier.append((point, heading, child_radius, generation + 1))
    return capsules


def vessel_phantom(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    extent = grid.extent
    spacing = np.asarray(grid.spacing, dtype=float)
    image = body_outline(grid, rng, fat_hu=rng.uniform(-120, -90), tissue_hu=rng.uniform(-110, -80))
    labels = np.zeros(grid.shape, dtype=np.uint8)

    # Region the tree lives in: 40-70 % of the slice axis, with empty slices above and below.
    radii = np.array([0.5 * extent[0] * rng.uniform(0.40, 0.70), extent[1] * rng.uniform(0.22, 0.30),
                      extent[2] * rng.uniform(0.24, 0.32)])
    # Every point of a centreline lies within half a voxel diagonal of some voxel centre, so a
    # radius just above that keeps thin branches from vanishing between voxels.
    min_radius = 0.52 * float(np.linalg.norm(spacing))
    root_radius = max(1.8 * min_radius, 0.02 * grid.inplane_fov)
    reach_z = radii[0] + root_radius + spacing[0]
    center = np.array([rng.uniform(reach_z, max(reach_z, extent[0] - reach_z)), extent[1] * rng.uniform(0.45, 0.55),
                       extent[2] * rng.uniform(0.45, 0.55)])
    depth = int(rng.integers(5, 7))
    capsules = grow_tree(rng, center, radii, root_radius, min_radius, depth)

    # Draw into a weight array covering only the tree's bounding box.
    points = np.array([p for c in capsules for p in (c.start, c.end)])
    reach = root_radius + spacing
    tree_box = grid.box_around((points.min(0) + points.max(0)) / 2, (points.max(0) - points.min(0)) / 2 + reach)
    weight = np.zeros(tuple(s.stop - s.start for s in tree_box), dtype=np.float32)
    edge_mm = float(spacing[1])
    for capsule in capsules:
        lo, hi = np.minimum(capsule.start, capsule.end), np.maximum(capsule.start, capsule.end)
        box = grid.box_around((lo + hi) / 2, (hi - lo) / 2 + capsule.radius + spacing)
        distance = capsule_distance(grid, box, capsule.start, capsule.end)
        soft = np.clip((np.float32(capsule.radius) - distance) / np.float32(edge_mm) + np.float32(0.5), 0.0, 1.0)
        target = weight[relative(box, tree_box)]
        np.maximum(target, soft, out=target)
        labels[box][distance < capsule.radius] = LABELS["vessel"]

    vessel_hu = rng.uniform(20, 60)
    region = image[tree_box]
    region += weight * (np.float32(vessel_hu) - region)
    image = add_noise_and_bias(image, rng, noise_hu=rng.uniform(8, 15), bias_amplitude=rng.uniform(0.01, 0.03))
    if not labels.any():  # only on degenerate grids: keep the class present in every case
        labels[grid.index_of(capsules[0].start)] = LABELS["vessel"]
    return image, labels
