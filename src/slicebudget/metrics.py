"""Segmentation metrics: IoU (the headline), Dice, HD95 and surface Dice, and MIST's results.csv.

Pure functions on numpy arrays. Distances are in millimetres, using the voxel spacing (one value per
array axis). Surfaces are the object voxels with at least one face-neighbour outside the object
(voxels on the array border count as surface); distances run between surface voxel centres.

Empty-mask conventions (as MIST's evaluation):
- both prediction and ground truth empty: IoU = Dice = surface Dice = 1, HD95 = 0 (a perfect "none");
- exactly one empty: IoU = Dice = surface Dice = 0, HD95 = the diagonal of the whole volume in mm
  (the worst distance possible on that grid, so a miss is never rewarded with a small number).

HD95 is the larger of the two directed 95th-percentile surface distances (prediction to ground
truth and back). Surface Dice at tolerance t is the share of both surfaces lying within t mm of the
other surface: (|S_p within t of S_g| + |S_g within t of S_p|) / (|S_p| + |S_g|).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

METRIC_NAMES = ("iou", "dice", "hd95", "surface_dice")
SUMMARY_ROWS = ("Mean", "Std", "25th Percentile", "Median", "75th Percentile")
_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


def _class_mask(labels: np.ndarray, class_ids: int | Sequence[int]) -> np.ndarray:
    """A class is one label id, or several merged (MIST's "whole tumour = labels 1, 2, 3")."""
    if isinstance(class_ids, int | np.integer):
        return labels == class_ids
    return np.isin(labels, np.asarray(list(class_ids)))


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def class_ious(pred: np.ndarray, gt: np.ndarray) -> dict[int, float]:
    """IoU over the whole array of each foreground class (label > 0) present in ``gt``."""
    return {int(c): float(iou(pred == c, gt == c)) for c in np.unique(gt) if c != 0}


def pooled_class_iou(pairs: Sequence[tuple[np.ndarray, np.ndarray]], class_ids: Sequence[int]) -> float:
    """IoU per class over the voxels of every (pred, gt) pair pooled; mean over the classes present
    in some pair (1 when none is)."""
    scores = []
    for c in class_ids:
        pred = np.concatenate([np.ravel(p == c) for p, _ in pairs])
        gt = np.concatenate([np.ravel(g == c) for _, g in pairs])
        if pred.any() or gt.any():
            scores.append(iou(pred, gt))
    return float(np.mean(scores)) if scores else 1.0


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1 when both are empty)."""
    total = np.count_nonzero(pred) + np.count_nonzero(gt)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(pred & gt) / total


def volume_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    return float(np.sqrt(np.sum((np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)) ** 2)))


def surface(mask: np.ndarray) -> np.ndarray:
    """Object voxels with a face-neighbour outside the object (or outside the array)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_FACE_NEIGHBOURS, border_value=0)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each prediction surface voxel to the ground-truth surface, and back.

    Both masks must be non-empty. Work happens in the bounding box of the two masks (plus one
    voxel), which holds every surface voxel, so the distance transforms stay exact and cheap.
    """
    both = pred | gt
    lo = np.maximum(np.min(np.nonzero(both), axis=1) - 1, 0)
    hi = np.minimum(np.max(np.nonzero(both), axis=1) + 2, both.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    pred_surface, gt_surface = surface(pred[box]), surface(gt[box])
    to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_gt[pred_surface], to_pred[gt_surface]


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm (conventions for empty masks in the module doc)."""
    pred_any, gt_any = bool(pred.any()), bool(gt.any())
    if not pred_any and not gt_any:
        return 0.0
    if not pred_any or not gt_any:
        return volume_diagonal_mm(pred.shape, spacing)
    pred_to_gt, gt_to_pred = surface_distances(pred, gt, spacing)
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))


def surface_dice(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 2.0) -> float:
    """Share of both surfaces within ``tolerance_mm`` of the other surface."""
    pred_any, gt_any = bool(pred.any()), bool(gt.any())
    if not pred_any and not gt_any:
        return 1.0
    if not pred_any or not gt_any:
        return 0.0
    pred_to_gt, gt_to_pred = surface_distances(pred, gt, spacing)
    within = np.count_nonzero(pred_to_gt <= tolerance_mm) + np.count_nonzero(gt_to_pred <= tolerance_mm)
    return within / (pred_to_gt.size + gt_to_pred.size)


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    classes: Mapping[str, int | Sequence[int]],
    tolerance_mm: float = 2.0,
) -> dict[str, float]:
    """``{class}_iou``, ``{class}_dice``, ``{class}_hd95``, ``{class}_surface_dice`` for one case.

    ``pred`` and ``gt`` are integer label arrays on the same grid; ``classes`` maps a name to a label
    id (or a list of ids evaluated as one region).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    if len(spacing) != gt.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {gt.ndim}D array")
    out: dict[str, float] = {}
    for name, class_ids in classes.items():
        p, g = _class_mask(pred, class_ids), _class_mask(gt, class_ids)
        out[f"{name}_iou"] = float(iou(p, g))
        out[f"{name}_dice"] = float(dice(p, g))
        out[f"{name}_hd95"] = hd95(p, g, spacing)
        out[f"{name}_surface_dice"] = float(surface_dice(p, g, spacing, tolerance_mm))
    return out


def _columns(per_case: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Metric columns in first-seen order across cases."""
    columns: dict[str, None] = {}
    for metrics in per_case.values():
        columns.update(dict.fromkeys(metrics))
    return list(columns)


def _column_values(per_case: Mapping[str, Mapping[str, float]], column: str) -> np.ndarray:
    return np.asarray([float(m.get(column, np.nan)) for m in per_case.values()], dtype=float)


def summarize(per_case: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of every metric over cases (NaNs, e.g. from failed cases, are skipped)."""
    out = {}
    for column in _columns(per_case):
        values = _column_values(per_case, column)
        out[column] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def summary_rows(per_case: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """MIST's closing rows: mean, standard deviation (population, ddof=0), quartiles and median."""
    stats = {
        "Mean": np.nanmean,
        "Std": np.nanstd,
        "25th Percentile": lambda v: np.nanpercentile(v, 25),
        "Median": np.nanmedian,
        "75th Percentile": lambda v: np.nanpercentile(v, 75),
    }
    rows: dict[str, dict[str, float]] = {name: {} for name in SUMMARY_ROWS}
    for column in _columns(per_case):
        values = _column_values(per_case, column)
        finite = values[~np.isnan(values)]
        for name in SUMMARY_ROWS:
            rows[name][column] = float(stats[name](finite)) if finite.size else float("nan")
    return rows


def write_results_csv(path: str | Path, per_case: Mapping[str, Mapping[str, float]]) -> Path:
    """Write MIST's ``results.csv``: an ``id`` column, one row per case, then the summary rows."""
    from slicebudget.io.atomic import atomic_write

    if not per_case:
        raise ValueError("no cases to write")
    columns = _columns(per_case)
    path = Path(path)
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", *columns])
            for case_id, metrics in per_case.items():
                writer.writerow([case_id, *(_format(metrics.get(c, float("nan"))) for c in columns)])
            for name, row in summary_rows(per_case).items():
                writer.writerow([name, *(_format(row[c]) for c in columns)])
    return path


def _format(value: float) -> str:
    # repr keeps full precision so a reread CSV reproduces the numbers exactly.
    return repr(float(value))
