"""`bench propagation --sequential`: a simulated annotator, and how many slices each order needs.

For each labelled case, three orders of painting slices are compared, each painted from the truth
and propagated after every slice:

- ``adaptive``: start from the middle slice (fixed interval's first pick), then always paint the suggested next best slice
  (:func:`slicebudget.propagation.next_slice.suggest_next_slice`);
- ``fixed``: for n slices, the fixed-interval choice of n slices (the usual practice);
- ``random``: the first n slices of one random order (seeded per case).

The curve is volume IoU (mean over classes, as in ``bench propagation``) against slices painted;
the headline is the mean number of slices each order needs to reach a target IoU (a case that never
reaches it within the budget counts as the budget plus one, and is reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ORDERS = ("adaptive", "fixed", "random")


@dataclass
class SequentialResult:
    method: str
    max_slices: int
    target: float
    # order -> case -> IoU after 1..max_slices slices
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def slices_to_target(self, order: str) -> dict[str, int]:
        """Per case, the fewest slices reaching the target (``max_slices + 1`` when never reached)."""
        out = {}
        for case, curve in self.curves[order].items():
            hits = [n + 1 for n, v in enumerate(curve) if v >= self.target]
            out[case] = hits[0] if hits else self.max_slices + 1
        return out

    def to_json(self) -> dict:
        return {
            "method": self.method, "max_slices": self.max_slices, "target": self.target, "curves": self.curves,
            "slices_to_target": {o: self.slices_to_target(o) for o in self.curves},
        }


def run_sequential(
    dataset_dir: str | Path,
    method: str = "sli2vol",
    max_slices: int = 12,
    target: float = 0.9,
    seed: int = 0,
    max_cases: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SequentialResult:
    from slicebudget.errors import UserError
    from slicebudget.io import open_dataset
    from slicebudget.propagation import propagate
    from slicebudget.metrics import class_ious
    from slicebudget.propagation.next_slice import suggest_next_slice
    from slicebudget.selection.registry import get_policy
    from slicebudget.volume import SparseAnnotation

    dataset = open_dataset(dataset_dir)
    cases = [c for c in (*dataset.cases, *dataset.test_cases) if c.label is not None]
    cases = cases[:max_cases] if max_cases else cases
    if not cases:
        raise UserError("dataset holds no case with labels to compare against", dataset_dir)
    result = SequentialResult(method, max_slices, target, {o: {} for o in ORDERS})
    total, done = len(cases) * len(ORDERS) * max_slices, 0

    def tick():
        nonlocal done
        done += 1
        if on_step is not None:
            on_step(done, total)

    for index, case in enumerate(cases):
        loaded = dataset.load_case(case)
        image, dense = loaded.images[0].array.astype(np.float32), loaded.label.array
        depth = image.shape[0]
        budget = min(max_slices, depth)
        fixed = get_policy("fixed")
        random_order = np.random.default_rng([seed, index]).permutation(depth)
        painted = [int(fixed.select(image, 1, seed)[0])]  # the middle slice, as fixed interval starts
        curves = {o: [] for o in ORDERS}
        for n in range(1, budget + 1):
            annotation = SparseAnnotation.from_dense(dense, sorted(painted))
            propagated = propagate(image, annotation, method=method)
            curves["adaptive"].append(_mean_iou(class_ious(propagated.labels, dense)))
            if n < budget:
                painted.append(suggest_next_slice(image, annotation, method, result=propagated).slice)
            tick()
            for order, slices in (("fixed", fixed.select(image, n, seed)), ("random", np.sort(random_order[:n]))):
                other = propagate(image, SparseAnnotation.from_dense(dense, slices), method=method)
                curves[order].append(_mean_iou(class_ious(other.labels, dense)))
                tick()
        for order in ORDERS:
            result.curves[order][case.case_id] = curves[order]
    return result


def _mean_iou(ious: dict[int, float]) -> float:
    return float(np.mean(list(ious.values()))) if ious else 1.0


def format_sequential(result: SequentialResult) -> str:
    lines = [
        f"Simulated annotator ({result.method}): volume IoU after n painted slices, mean over "
        f"{len(result.curves['adaptive'])} cases",
        f"{'n':>3}" + "".join(f"{o:>10}" for o in ORDERS),
    ]
    for n in range(result.max_slices):
        cells = []
        for o in ORDERS:
            values = [c[n] for c in result.curves[o].values() if len(c) > n]
            cells.append(f"{np.mean(values):>10.3f}" if values else f"{'-':>10}")
        lines.append(f"{n + 1:>3}" + "".join(cells))
    lines.append(f"slices to reach IoU {result.target:.2f} (mean over cases; never reached counts as "
                 f"{result.max_slices + 1}):")
    need = {o: result.slices_to_target(o) for o in ORDERS}
    for o in ORDERS:
        never = sum(v > result.max_slices for v in need[o].values())
        lines.append(f"  {o:<9}{np.mean(list(need[o].values())):>6.2f}" + (f"  ({never} never)" if never else ""))
    saved = 1.0 - np.mean(list(need["adaptive"].values())) / np.mean(list(need["fixed"].values()))
    lines.append(f"adaptive needs {100 * saved:.0f}% fewer slices than fixed interval")
    return "\n".join(lines)
