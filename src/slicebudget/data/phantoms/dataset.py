"""Write phantom cases as an nnU-Net v2 raw dataset (atomically: all of it or nothing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from slicebudget.data.phantoms._shapes import DEFAULT_SHAPE, DEFAULT_SPACING
from slicebudget.errors import UserError
from slicebudget.volume import SourceGeometry, Volume

# NIfTI files usually carry an RAS-style header; ITK reads it as this direction (x and y flipped
# against LPS). Writing phantoms that way exercises the same reorientation path as real data.
PHANTOM_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
TRAIN, TEST = 0, 1


def case_rng(seed: int, index: int, split: int = TRAIN) -> np.random.Generator:
    """Generator of one case, derived from (seed, split, index) only.

    Adding cases, or test cases, never changes the cases already there.
    """
    return np.random.default_rng([int(seed), int(split), int(index)])


def phantom_geometry(shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator) -> SourceGeometry:
    """A scanner-like header: the given spacing, an RAS-style direction and a non-zero origin."""
    extent = np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)
    # Table position varies between scans; keep every origin component clearly away from zero.
    origin_xyz = (
        0.5 * extent[2] + rng.uniform(5.0, 40.0),
        0.5 * extent[1] + rng.uniform(5.0, 40.0),
        -rng.uniform(50.0, 400.0),
    )
    spacing_xyz = tuple(float(s) for s in reversed(tuple(spacing)))
    return SourceGeometry.from_header(spacing_xyz, origin_xyz, PHANTOM_DIRECTION)


def phantom_case(task: str, shape, spacing, seed: int, index: int, split: int = TRAIN,
                 name: str = "") -> tuple[Volume, np.ndarray]:
    """Image volume (with header) and dense labels of one dataset case."""
    from slicebudget.data.phantoms import generate_phantom

    rng = case_rng(seed, index, split)
    geometry = phantom_geometry(shape, spacing, rng)
    image, labels = generate_phantom(task, shape, spacing, rng)
    return Volume(image, geometry, name=name), labels


def write_phantom_dataset(out: str | Path, task: str, cases: int = 8, seed: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                          spacing: Sequence[float] = DEFAULT_SPACING, test_cases: int = 2, overwrite: bool = False,
                          on_case: Callable[[str], None] | None = None) -> Path:
    """Write ``cases`` training and ``test_cases`` held-out phantom cases as an nnU-Net v2 raw dataset.

    Training cases are ``case_0000 ...``; test cases continue the numbering in imagesTs/labelsTs
    (dense labels) but draw from their own generators. ``on_case`` is called after each case.
    """
    from slicebudget.data.phantoms import TASK_LABELS, validate_grid, validate_task
    from slicebudget.io import NnUNetWriter, atomic_dir

    validate_task(task)
    validate_grid(shape, spacing)
    if cases < 1 or test_cases < 0:
        raise UserError(f"need at least one training case and no negative test cases, got {cases} and {test_cases}")
    if seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out)
    jobs = [(TRAIN, i, i, "Tr") for i in range(cases)] + [(TEST, j, cases + j, "Ts") for j in range(test_cases)]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = NnUNetWriter(tmp, {"0": "CT"}, TASK_LABELS[task], ".nii.gz")
        for split, index, number, folder in jobs:
            case_id = f"case_{number:04d}"
            image, labels = phantom_case(task, shape, spacing, seed, index, split, name=case_id)
            writer.write_case(case_id, [image], labels, like=image, split=folder)
            if on_case is not None:
                on_case(case_id)
        writer.finish(
            num_training=cases,
            name=f"phantom_{task}",
            description=f"slicebudget procedural {task} phantom",
            phantom={"task": task, "seed": int(seed), "shape": [int(s) for s in shape],
                     "spacing": [float(s) for s in spacing], "test_cases": int(test_cases)},
        )
    return out
