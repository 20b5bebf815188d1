"""Procedural phantoms mirroring the slice-selection study's task types, in CT-like Hounsfield units.

``organ``  a large smooth organ with a tumour inside, clear contrast (LiTS / DBC-like)
``lesion`` one to several small irregular low-contrast lesions in textured tissue (ATLAS-like)
``vessel`` a thin branching tree (FGT-like)

Arrays are in canonical order (axis 0 = slice axis). Each case draws from its own generator, so a
phantom is a pure function of (task, shape, spacing, generator state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from slicebudget.data.phantoms._shapes import DEFAULT_SHAPE, DEFAULT_SPACING, Grid
from slicebudget.data.phantoms.lesion import LABELS as LESION_LABELS
from slicebudget.data.phantoms.lesion import lesion_phantom
from slicebudget.data.phantoms.organ import LABELS as ORGAN_LABELS
from slicebudget.data.phantoms.organ import organ_phantom
from slicebudget.data.phantoms.vessel import LABELS as VESSEL_LABELS
from slicebudget.data.phantoms.vessel import vessel_phantom
from slicebudget.errors import UserError

PhantomFn = Callable[[Grid, np.random.Generator], tuple[np.ndarray, np.ndarray]]

PHANTOM_TASKS: dict[str, PhantomFn] = {"organ": organ_phantom, "lesion": lesion_phantom, "vessel": vessel_phantom}
TASK_LABELS: dict[str, dict[str, int]] = {"organ": ORGAN_LABELS, "lesion": LESION_LABELS, "vessel": VESSEL_LABELS}

MIN_SIZE = 8  # voxels per axis; below this the shapes cannot be told apart


def validate_task(task: str) -> str:
    if task not in PHANTOM_TASKS:
        raise UserError(f"unknown phantom task {task!r}; choose one of {', '.join(sorted(PHANTOM_TASKS))}")
    return task


def validate_grid(shape: Sequence[int], spacing: Sequence[float]) -> Grid:
    shape = tuple(int(s) for s in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or min(shape) < MIN_SIZE:
        raise UserError(f"phantom shape must be three sizes of at least {MIN_SIZE} voxels, got {shape}")
    if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise UserError(f"phantom spacing must be three positive millimetre values, got {spacing}")
    return Grid(shape, spacing)


def generate_phantom(task: str, shape: Sequence[int] = DEFAULT_SHAPE, spacing: Sequence[float] = DEFAULT_SPACING,
                     rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One phantom case: ``(image float32 HU (D, H, W), labels uint8 (D, H, W))``.

    Label ids follow ``TASK_LABELS[task]``; every foreground class is present in every case.
    """
    fn = PHANTOM_TASKS[validate_task(task)]
    grid = validate_grid(shape, spacing)
    image, labels = fn(grid, np.random.default_rng(rng))
    return image.astype(np.float32, copy=False), labels.astype(np.uint8, copy=False)


from slicebudget.data.phantoms.dataset import case_rng, phantom_geometry, write_phantom_dataset  # noqa: E402

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "PHANTOM_TASKS",
    "TASK_LABELS",
    "case_rng",
    "generate_phantom",
    "phantom_geometry",
    "write_phantom_dataset",
]
