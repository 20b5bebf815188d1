"""Calibrated confidence: a slice with confidence c should on average have IoU c against the truth.

Each method gives every slice a raw *signal* (sli2vol: the chains' trust; the interpolators: how near
the slice lies to an annotated one; an empty slice: how far it lies from any foreground). A monotone
map per kind of slice (isotonic regression of slice IoU on the signal) turns it into an expected
IoU. The maps are fitted on phantom cases the shipped model never saw and ship as a small JSON asset
(``assets/propagation_calibration.json``) that records how it was made; see
:func:`slicebudget.propagation.calibrate.fit_on_phantoms`.

Kinds (the map a slice uses): ``learned`` (sli2vol's carry), ``sdf`` (signed-distance interpolation,
including sli2vol's fallback, which *is* that interpolation), ``mci``, ``nearest``, and for slices
left empty ``stopped`` and ``none`` (the chance the slice is truly empty). Each kind has one map per
object size (the slice's believed foreground area as a share of the slice: small, medium, large),
because the same signal means less on a thin vessel than on a large organ; a size with too few
fitting slices uses the kind's pooled map.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation.common import HUMAN, INTERPOLATION, LEARNED, NEAREST, NONE, STOPPED

CALIBRATION_FORMAT, CALIBRATION_VERSION = "slicebudget-calibration", 1
CALIBRATION_FILE = "propagation_calibration.json"
MAX_MACHINE_CONFIDENCE = 0.99  # machine output is never as certain as a human slice
N_BINS = 10
SIZE_EDGES = (0.005, 0.05)  # share of the slice's pixels: small < 0.5 % <= medium < 5 % <= large
SIZE_NAMES = ("small", "medium", "large")
MIN_SLICES_PER_MAP = 200  # fewer fitting slices than this for a (kind, size): use the kind's pooled map


def size_class(fraction: float) -> str:
    return SIZE_NAMES[int(np.searchsorted(SIZE_EDGES, fraction, side="right"))]


def believed_size(labels: np.ndarray) -> np.ndarray:
    """(D,) foreground pixels per slice; an empty slice takes the area of the nearest non-empty one
    (what it would hold if the object went on there)."""
    areas = (labels.reshape(labels.shape[0], -1) != 0).sum(axis=1).astype(float)
    has = np.flatnonzero(areas > 0)
    if has.size == 0:
        return areas
    nearest = has[np.abs(np.arange(len(areas))[:, None] - has[None, :]).argmin(axis=1)]
    return np.where(areas > 0, areas, areas[nearest])


def size_fraction(labels: np.ndarray) -> np.ndarray:
    """(D,) :func:`believed_size` as a share of the slice's pixels."""
    return believed_size(labels) / float(np.prod(labels.shape[1:]))


def calibration_kind(method: str, provenance: str) -> str | None:
    """Which map a slice of ``method`` with ``provenance`` uses (None for human slices)."""
    if provenance == HUMAN:
        return None
    if provenance == INTERPOLATION:
        return "mci" if method == "mci" else "sdf"
    return {LEARNED: "learned", NEAREST: "nearest", STOPPED: "stopped", NONE: "none"}[str(provenance)]


def empty_signal(labels: np.ndarray) -> np.ndarray:
    """(D,) raw signal for slices left empty: ``1 / (1 + distance in slices to the nearest slice with
    foreground)`` (1 next to foreground, falling away from it; 0 when the volume holds none)."""
    has = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    if has.size == 0:
        return np.zeros(labels.shape[0])
    distance = np.abs(np.arange(labels.shape[0])[:, None] - has[None, :]).min(axis=1)
    return 1.0 / (1.0 + distance)


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear monotone maps ``kind -> (signal knots, IoU knots)`` and how they were made."""

    maps: dict[str, tuple[np.ndarray, np.ndarray]]
    made: dict

    def apply(self, method: str, provenance: np.ndarray, signal: np.ndarray, size: np.ndarray) -> np.ndarray:
        """(D,) calibrated confidence: 1.0 on human slices, the (kind, size) map elsewhere (at most
        0.99); ``size`` is :func:`size_fraction` of the labels."""
        out = np.ones(len(provenance))
        for i, (p, x) in enumerate(zip(provenance, signal)):
            kind = calibration_kind(method, p)
            if kind is None:
                continue
            key = f"{kind}/{size_class(size[i])}"
            key = key if key in self.maps else kind
            if key not in self.maps:
                raise UserError(f"the propagation calibration has no map for {kind!r} slices")
            knots_x, knots_y = self.maps[key]
            out[i] = float(np.interp(x, knots_x, knots_y))
        return np.clip(np.where(provenance == HUMAN, 1.0, np.minimum(out, MAX_MACHINE_CONFIDENCE)), 0.0, 1.0)

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "made": self.made,
            "maps": {k: {"signal": [round(float(v), 5) for v in x], "iou": [round(float(v), 5) for v in y]}
                     for k, (x, y) in sorted(self.maps.items())},
        }


def default_calibration_path() -> Path:
    return Path(str(importlib.resources.files("slicebudget").joinpath("assets", CALIBRATION_FILE)))


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Read a calibration file (default: the shipped one); a wrong file raises a one-line UserError."""
    path = default_calibration_path() if path is None else Path(path)
    if not path.is_file():
        raise UserError("propagation calibration file not found", path)
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != CALIBRATION_FORMAT:
            raise UserError("not a slicebudget propagation calibration file", path)
        if payload.get("version") != CALIBRATION_VERSION:
            raise UserError(f"calibration format version {payload.get('version')} is not supported", path)
        maps = {k: (np.asarray(v["signal"], float), np.asarray(v["iou"], float)) for k, v in payload["maps"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read the propagation calibration ({type(exc).__name__})", path) from exc
    return Calibration(maps, payload.get("made", {}))


def fit_maps(records: Iterable[tuple[str, float, float, float]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Isotonic (non-decreasing) maps of slice IoU on signal, from ``(kind, signal, iou, size
    fraction)``: one per kind (pooled) and one per (kind, size class) with enough slices."""
    from sklearn.isotonic import IsotonicRegression

    by_kind: dict[str, list[tuple[float, float]]] = {}
    for kind, signal, iou, size in records:
        by_kind.setdefault(kind, []).append((float(signal), float(iou)))
        by_kind.setdefault(f"{kind}/{size_class(size)}", []).append((float(signal), float(iou)))
    maps = {}
    for kind, pairs in by_kind.items():
        if "/" in kind and len(pairs) < MIN_SLICES_PER_MAP:
            continue
        x, y = np.array(pairs).T
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
        maps[kind] = (np.asarray(model.X_thresholds_, float), np.asarray(model.y_thresholds_, float))
    return maps


def slice_ious(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(D,) per-slice IoU, the mean over classes present in truth or prediction on that slice
    (1.0 where both are empty: an empty slice left empty is right)."""
    out = np.ones(truth.shape[0])
    for j in range(truth.shape[0]):
        classes = np.union1d(np.unique(truth[j]), np.unique(pred[j]))
        classes = classes[classes != 0]
        if classes.size:
            out[j] = np.mean([((truth[j] == c) & (pred[j] == c)).sum() / ((truth[j] == c) | (pred[j] == c)).sum()
                              for c in classes])
    return out


@dataclass(frozen=True)
class Reliability:
    """Reliability table: per confidence bin, slices, mean confidence and mean IoU; and the ECE."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    iou: np.ndarray
    ece: float


def reliability(confidence: np.ndarray, iou: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Equal-width bins over [0, 1]; ECE = sum over bins of (share of slices) x |mean conf - mean IoU|."""
    confidence, iou = np.asarray(confidence, float), np.asarray(iou, float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    conf = np.array([confidence[index == b].mean() if counts[b] else np.nan for b in range(n_bins)])
    mean_iou = np.array([iou[index == b].mean() if counts[b] else np.nan for b in range(n_bins)])
    total = max(int(counts.sum()), 1)
    ece = float(sum(counts[b] / total * abs(conf[b] - mean_iou[b]) for b in range(n_bins) if counts[b]))
    return Reliability(edges, counts, conf, mean_iou, ece)
