"""Table 3 of the slice-selection study: how well propagated masks match the human masks.

For every labelled case, density rho and method: choose ``n = round(rho * D)`` slices with the slice
policy (over all slices of the volume, as the paper does), cut a sparse annotation from the dense
labels, propagate, and score. The score is the IoU of each foreground class over the WHOLE volume
(annotated slices included, as the paper computes it), averaged over the classes present in the
case, then over cases. Time is wall-clock seconds per volume per method.

A method may carry parameters, ``sli2vol:fallback=none`` (compare the learned propagator with and
without its fallback). For each method the bench also reports the share of the propagated
foreground that came from the learned carry, and whether its confidence is calibrated: a
reliability table (slices binned by confidence: mean confidence against mean slice IoU) and the
expected calibration error (ECE), over the slices the method filled and over every non-human slice.
Run it on cases the calibration never saw (it was fitted on phantom seed 200).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation.calibration import Reliability, reliability


@dataclass
class BenchResult:
    densities: list[float]
    methods: list[str]
    iou: dict[str, dict[str, float]] = field(default_factory=dict)
    # method -> density -> class id -> IoU averaged over the cases holding that class
    iou_per_class: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds_per_volume: dict[str, float] = field(default_factory=dict)
    n_cases: int = 0
    policy: str = "fixed"
    class_names: dict[str, str] = field(default_factory=dict)  # class id -> name from dataset.json
    # method -> density -> share of the propagated foreground (unannotated slices) carried by the learned chains
    learned_share: dict[str, dict[str, float]] = field(default_factory=dict)
    # method -> "filled" | "all" -> reliability of the per-slice confidence
    calibration: dict[str, dict[str, Reliability]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "learned_share": self.learned_share,
            "calibration": {
                m: {k: {"ece": r.ece, "slices": int(r.counts.sum()), "counts": r.counts.tolist(),
                        "confidence": _nan_none(r.confidence), "iou": _nan_none(r.iou)} for k, r in by.items()}
                for m, by in self.calibration.items()
            },
            "densities": self.densities,
            "iou": self.iou,
            "iou_per_class": self.iou_per_class,
            "seconds_per_volume": self.seconds_per_volume,
            "class_names": self.class_names,
            "cases": self.n_cases,
            "policy": self.policy,
            "score": "per-class foreground IoU over the whole volume, mean over classes then cases",
        }


def parse_list(text: str, option: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UserError(f"{option} needs at least one comma-separated value")
    return items


def _density_key(rho: float) -> str:
    return f"{rho:g}"


def _nan_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 4) for v in values]


def run_bench(
    dataset_dir: str | Path,
    densities: Sequence[float],
    methods: Sequence[str],
    policy: str = "fixed",
    seed: int = 0,
    max_cases: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> BenchResult:
    from slicebudget.io import open_dataset
    from slicebudget.metrics import class_ious
    from slicebudget.propagation import propagate
    from slicebudget.propagation.calibration import slice_ious
    from slicebudget.propagation.registry import get_propagator, parse_method_spec
    from slicebudget.selection.base import check_density, n_slices_for_density
    from slicebudget.selection.registry import get_policy
    from slicebudget.volume import SparseAnnotation

    densities = [check_density(r, "--densities") for r in densities]
    specs = {m: parse_method_spec(m) for m in methods}
    for name, params in specs.values():
        get_propagator(name, **params)
    selector = get_policy(policy)
    dataset = open_dataset(dataset_dir)
    cases = [c for c in (*dataset.cases, *dataset.test_cases) if c.label is not None]
    cases = cases[:max_cases] if max_cases else cases
    if not cases:
        raise UserError("dataset holds no case with labels to compare against", dataset_dir)
    declared = set(dataset.labels.values())
    scores = {m: {_density_key(r): [] for r in densities} for m in methods}
    per_class = {m: {_density_key(r): {} for r in densities} for m in methods}
    seconds = {m: 0.0 for m in methods}
    shares = {m: {_density_key(r): [] for r in densities} for m in methods}
    slices_seen = {m: [] for m in methods}  # (confidence, slice IoU, filled) of every non-human slice
    total, done = len(cases) * len(densities) * len(methods), 0
    for case in cases:
        loaded = dataset.load_case(case)
        image, dense = loaded.images[0].array.astype(np.float32), loaded.label.array
        undeclared = sorted(set(np.unique(dense).tolist()) - declared)
        if undeclared:
            raise UserError(f"label value {undeclared[0]} is not declared in dataset.json", case.label)
        for rho in densities:
            n = n_slices_for_density(image.shape[0], rho)
            slices = selector.select(image, n, seed)
            annotation = SparseAnnotation.from_dense(dense, slices)
            for m in methods:
                start = time.perf_counter()
                name, params = specs[m]
                result = propagate(image, annotation, method=name, **params)
                seconds[m] += time.perf_counter() - start
                free = ~annotation.annotated
                area = (result.labels.reshape(len(free), -1) != 0).sum(axis=1)
                if area[free].sum():
                    shares[m][_density_key(rho)].append(
                        float(area[free & (result.provenance == "learned")].sum() / area[free].sum()))
                truth_iou = slice_ious(dense, result.labels)
                slices_seen[m] += [(result.confidence[j], truth_iou[j], result.filled()[j]) for j in np.flatnonzero(free)]
                ious = class_ious(result.labels, dense)
                scores[m][_density_key(rho)].append(float(np.mean(list(ious.values()))) if ious else 1.0)
                for c, value in ious.items():
                    per_class[m][_density_key(rho)].setdefault(str(c), []).append(value)
                done += 1
                if on_step is not None:
                    on_step(done, total)
    runs = len(cases) * len(densities)
    return BenchResult(
        densities=list(densities),
        methods=list(methods),
        iou={m: {k: float(np.mean(v)) for k, v in per.items()} for m, per in scores.items()},
        iou_per_class={
            m: {k: {c: float(np.mean(v)) for c, v in sorted(by_class.items())} for k, by_class in per.items()}
            for m, per in per_class.items()
        },
        seconds_per_volume={m: seconds[m] / runs for m in methods},
        n_cases=len(cases),
        policy=policy,
        class_names={str(v): k for k, v in dataset.labels.items() if v != 0},
        learned_share={m: {k: float(np.mean(v)) if v else float("nan") for k, v in per.items()} for m, per in shares.items()},
        calibration={m: _reliabilities(seen) for m, seen in slices_seen.items()},
    )


def _reliabilities(seen: list[tuple[float, float, bool]]) -> dict[str, Reliability]:
    if not seen:
        return {}
    conf, iou, filled = (np.array(x) for x in zip(*seen))
    out = {"all": reliability(conf, iou)}
    if filled.any():
        out["filled"] = reliability(conf[filled.astype(bool)], iou[filled.astype(bool)])
    return out


def format_table(result: BenchResult) -> str:
    keys = [_density_key(r) for r in result.densities]
    header = f"{'method':<10}" + "".join(f"{'rho=' + k:>10}" for k in keys) + f"{'s/volume':>11}"
    lines = [
        "Propagated vs human masks: mean class IoU over whole volumes "
        f"({result.n_cases} cases, policy {result.policy})",
        header,
        "-" * len(header),
    ]
    several_classes = len(result.class_names) > 1
    for m in result.methods:
        row = f"{m:<10}" + "".join(f"{result.iou[m][k]:>10.4f}" for k in keys)
        lines.append(row + f"{result.seconds_per_volume[m]:>11.2f}")
        if several_classes:
            # Each class on its own (averaged over the cases holding it): a small class that no chosen
            # slice shows cannot be propagated and would hide how well the large one does.
            for c, name in result.class_names.items():
                cells = "".join(
                    f"{result.iou_per_class[m][k][c]:>10.4f}" if c in result.iou_per_class[m][k] else f"{'-':>10}"
                    for k in keys
                )
                lines.append(f"{'  ' + name:<10}"[:10] + cells)
    lines += _format_extras(result)
    return "\n".join(lines)


def _format_extras(result: BenchResult) -> list[str]:
    keys = [_density_key(r) for r in result.densities]
    lines = ["", "Share of the propagated foreground carried by the learned chains (the rest: fallback interpolation)"]
    for m in result.methods:
        if any(np.isfinite(v) and v > 0 for v in result.learned_share[m].values()):
            lines.append(f"{m:<10}"[:max(10, len(m))] + "".join(f"{result.learned_share[m][k]:>10.3f}" for k in keys))
    lines += ["", "Calibration: does confidence c mean slice IoU c? (ECE: expected calibration error; "
              "filled = slices the method wrote, all = every non-human slice)",
              f"{'method':<24}{'slices':>8}{'ECE filled':>12}{'slices':>8}{'ECE all':>10}"]
    for m in result.methods:
        by = result.calibration.get(m, {})
        if "all" not in by:
            continue
        filled = by.get("filled")
        fill_cells = f"{int(filled.counts.sum()):>8}{filled.ece:>12.3f}" if filled else f"{0:>8}{'-':>12}"
        lines.append(f"{m:<24}{fill_cells}{int(by['all'].counts.sum()):>8}{by['all'].ece:>10.3f}")
    for m in result.methods:
        by = result.calibration.get(m, {})
        if "filled" not in by:
            continue
        r = by["filled"]
        lines += ["", f"Reliability of {m} (filled slices): confidence bin, slices, mean confidence, mean IoU"]
        for b in range(len(r.counts)):
            if r.counts[b]:
                lines.append(f"  {r.edges[b]:.1f}-{r.edges[b + 1]:.1f}{r.counts[b]:>8}{r.confidence[b]:>8.3f}{r.iou[b]:>8.3f}")
    return lines


def write_json(result: BenchResult, path: str | Path) -> Path:
    from slicebudget.io.atomic import atomic_write

    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2))
    return path


def measure_sli2vol_speed(
    size: int = 512, depth: int = 24, seed: int = 0, device: str | None = None
) -> dict[str, float]:
    """Seconds per slice pair and per slice of ``sli2vol`` on a synthetic ``depth x size x size``
    volume with one annotated slice in the middle (a disc that drifts and grows, as organs do)."""
    from slicebudget.propagation import propagate
    from slicebudget.volume import SparseAnnotation

    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:depth, :size, :size]
    radius = size * (0.15 + 0.1 * np.sin(np.pi * z / depth))
    dense = ((y - size / 2 - z) ** 2 + (x - size / 2) ** 2 < radius**2).astype(np.uint8)
    image = (40.0 + 80.0 * dense + rng.normal(0.0, 8.0, dense.shape)).astype(np.float32)
    annotation = SparseAnnotation.from_dense(dense, [depth // 2])
    start = time.perf_counter()
    result = propagate(image, annotation, method="sli2vol", device=device)
    seconds = time.perf_counter() - start
    pairs = int(result.filled().sum())  # each slice the chains wrote took one slice pair
    return {"seconds": seconds, "pairs": pairs, "seconds_per_pair": seconds / max(pairs, 1)}
