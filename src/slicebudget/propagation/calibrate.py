"""Fit the propagation calibration on phantom cases (see :mod:`slicebudget.propagation.calibration`).

For each phantom task, ``cases`` cases drawn with ``seed`` (the cases ``budget-study data phantom
--task T --cases N --seed S`` writes; the shipped model was trained on seed 100, so any other seed is
held out), each density and each slice policy: annotate the chosen slices from the truth, propagate
with each method, and record every non-human slice's kind, features and IoU against the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from slicebudget.propagation.calibration import (
    Calibration,
    calibration_kind,
    fit_maps,
    size_fraction,
    slice_features,
    slice_ious,
)

TASKS = ("organ", "lesion", "vessel")
DENSITIES = (0.05, 0.1, 0.2, 0.3)
POLICIES = ("fixed", "random")
METHODS = ("sli2vol", "sdf", "nearest", "mci")
FIT_SEED, FIT_CASES = 200, 10


def phantom_records(
    tasks: Sequence[str] = TASKS,
    cases: int = FIT_CASES,
    seed: int = FIT_SEED,
    densities: Sequence[float] = DENSITIES,
    policies: Sequence[str] = POLICIES,
    methods: Sequence[str] = METHODS,
    on_step: Callable[[int, int], None] | None = None,
) -> list[tuple[str, str, np.ndarray, float, float]]:
    """``(task, kind, features (see slice_features), slice IoU, size fraction)`` for every non-human slice of every propagation."""
    from slicebudget.data.phantoms._shapes import DEFAULT_SHAPE, DEFAULT_SPACING
    from slicebudget.data.phantoms.dataset import phantom_case
    from slicebudget.propagation import propagate
    from slicebudget.selection.base import n_slices_for_density
    from slicebudget.selection.registry import get_policy
    from slicebudget.volume import SparseAnnotation

    records = []
    total, done = len(tasks) * cases * len(densities) * len(policies) * len(methods), 0
    for task in tasks:
        for index in range(cases):
            volume, dense = phantom_case(task, DEFAULT_SHAPE, DEFAULT_SPACING, seed, index)
            image = volume.array.astype(np.float32)
            for rho in densities:
                for policy in policies:
                    slices = get_policy(policy).select(image, n_slices_for_density(image.shape[0], rho), seed + index)
                    annotation = SparseAnnotation.from_dense(dense, slices)
                    for method in methods:
                        result = propagate(image, annotation, method=method, device="cpu", calibrated=False)
                        ious, size = slice_ious(dense, result.labels), size_fraction(result.labels)
                        features = slice_features(annotation.annotated, result.labels, result.signal)
                        for j in np.flatnonzero(~annotation.annotated):
                            kind = calibration_kind(method, result.provenance[j])
                            records.append((task, kind, features[j], float(ious[j]), float(size[j])))
                        done += 1
                        if on_step is not None:
                            on_step(done, total)
    return records


def fit_on_phantoms(
    tasks: Sequence[str] = TASKS,
    cases: int = FIT_CASES,
    seed: int = FIT_SEED,
    on_step: Callable[[int, int], None] | None = None,
) -> Calibration:
    """Fit the maps on phantom cases and record how (tasks, cases, seed, densities, policies)."""
    records = phantom_records(tasks, cases, seed, on_step=on_step)
    made = {
        "how": "per kind of slice and object size class: logistic regression of slice IoU on the slice "
        "features, then isotonic regression of slice IoU on its score",
        "command": f"budget-study propagation calibrate --cases {cases} --seed {seed}",
        "tasks": list(tasks), "cases_per_task": cases, "seed": seed,
        "densities": list(DENSITIES), "policies": list(POLICIES), "methods": list(METHODS),
        "slices": len(records),
        "held_out_from": "the shipped sli2vol model's training phantoms (seed 100)",
    }
    return Calibration(fit_maps(r[1:] for r in records), made)
