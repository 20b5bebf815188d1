"""Calibrated confidence: a slice with confidence c should on average have IoU c against the truth.

Distance to the nearest human slice alone does not say how good a slice is (a small faint lesion
two slices from a human slice is worse off than an organ four slices away), so each slice is described by
features that predict its quality (:func:`slice_features`): the method's raw *signal* (sli2vol: the
chains' trust; the interpolators: nearness to an annotated slice and how alike the two bounding masks
are; an empty slice: how far it lies from any foreground), where it sits in its gap (relative
position, distance in slices, whether the gap is open on one side), its foreground area relative to
the bounding human slices' (a carry that grew or shrank a lot has drifted), and the object's size.
A map per kind of slice turns them into an expected IoU: a linear score of the standardised features
(a logistic regression of slice IoU, which ranks the slices) followed by an isotonic regression of
slice IoU on that score (which makes the numbers mean IoU). The maps are fitted on phantom cases
the shipped model never saw and ship as a small JSON asset (``assets/propagation_calibration.json``)
that records how it was made; see :func:`slicebudget.propagation.calibrate.fit_on_phantoms`.

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

CALIBRATION_FORMAT, CALIBRATION_VERSION = "slicebudget-calibration", 2
CALIBRATION_FILE = "propagation_calibration.json"
MAX_MACHINE_CONFIDENCE = 0.99  # machine output is never as certain as a human slice
N_BINS = 10
SIZE_EDGES = (0.005, 0.05)  # share of the slice's pixels: small < 0.5 % <= medium < 5 % <= large
SIZE_NAMES = ("small", "medium", "large")
MIN_SLICES_PER_MAP = 200  # fewer fitting slices than this for a (kind, size): use the kind's pooled map
FEATURES = ("signal", "position", "log_distance", "outer", "area_ratio", "log_size", "log_reference",
            "signal_x_log_size")


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


def slice_features(annotated: np.ndarray, labels: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """(D, len(FEATURES)) what the calibration reads per slice (human slices' rows are not used).

    ``position``: distance to the nearer bounding human slice over the gap's width (0.5 half-way; 0 in
    a gap open on one side, which ``outer`` marks); ``log_distance``: log(1 + slices to the nearest
    human slice); ``area_ratio``: the slice's foreground area over the larger bounding human slice's
    (at most 3); ``log_size``: log10 of :func:`size_fraction`; ``log_reference``: log10 of the larger
    bounding human slice's area as a share of the slice.
    """
    annotated = np.asarray(annotated, bool)
    depth = len(annotated)
    area = (labels.reshape(depth, -1) != 0).sum(axis=1).astype(float)
    pixels = float(np.prod(labels.shape[1:]))
    human = np.flatnonzero(annotated)
    index = np.arange(depth)
    before = np.array([human[human < j].max() if (human < j).any() else -1 for j in index])
    after = np.array([human[human > j].min() if (human > j).any() else -1 for j in index])
    outer = (before < 0) | (after < 0)
    distance = np.minimum(np.where(before >= 0, index - before, depth), np.where(after >= 0, after - index, depth))
    position = np.where(outer, 0.0, distance / np.maximum(after - before, 1))
    reference = np.maximum(np.where(before >= 0, area[before], 0.0), np.where(after >= 0, area[after], 0.0))
    log_size = np.log10(np.maximum(size_fraction(labels), 1e-4))
    signal = np.asarray(signal, float)
    return np.column_stack([
        signal, position, np.log1p(distance), outer.astype(float),
        np.clip(area / np.maximum(reference, 1.0), 0.0, 3.0), log_size,
        np.log10(np.maximum(reference, 1.0) / pixels + 1e-4), signal * log_size,
    ])


@dataclass(frozen=True)
class SliceMap:
    """Standardise the features, score them linearly, read the expected IoU off the isotonic knots."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    knots_score: np.ndarray
    knots_iou: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        score = ((np.atleast_2d(features) - self.mean) / self.scale) @ self.weights + self.bias
        return np.interp(score, self.knots_score, self.knots_iou)

    def to_json(self) -> dict:
        def plain(values):  # full precision: a near-constant feature's scale is tiny, not zero
            return [float(v) for v in np.atleast_1d(values)]

        return {"mean": plain(self.mean), "scale": plain(self.scale), "weights": plain(self.weights),
                "bias": float(self.bias), "score": plain(self.knots_score), "iou": plain(self.knots_iou)}

    @classmethod
    def from_json(cls, payload: dict) -> SliceMap:
        arrays = {k: np.asarray(payload[k], float) for k in ("mean", "scale", "weights", "score", "iou")}
        if not (len(arrays["mean"]) == len(arrays["scale"]) == len(arrays["weights"]) == len(FEATURES)):
            raise TypeError("feature count")
        return cls(arrays["mean"], arrays["scale"], arrays["weights"], float(payload["bias"]), arrays["score"],
                   arrays["iou"])


@dataclass(frozen=True)
class Calibration:
    """One :class:`SliceMap` per kind (and per kind/size class) and how they were made."""

    maps: dict[str, SliceMap]
    made: dict

    def apply(self, method: str, provenance: np.ndarray, features: np.ndarray, size: np.ndarray) -> np.ndarray:
        """(D,) calibrated confidence: 1.0 on human slices, the (kind, size) map elsewhere (at most
        0.99); ``features`` is :func:`slice_features`, ``size`` :func:`size_fraction` of the labels."""
        out = np.ones(len(provenance))
        for i, p in enumerate(provenance):
            kind = calibration_kind(method, p)
            if kind is None:
                continue
            key = f"{kind}/{size_class(size[i])}"
            key = key if key in self.maps else kind
            if key not in self.maps:
                raise UserError(f"the propagation calibration has no map for {kind!r} slices")
            out[i] = float(self.maps[key].predict(features[i])[0])
        return np.clip(np.where(provenance == HUMAN, 1.0, np.minimum(out, MAX_MACHINE_CONFIDENCE)), 0.0, 1.0)

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "features": list(FEATURES),
            "made": self.made,
            "maps": {k: m.to_json() for k, m in sorted(self.maps.items())},
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
        maps = {k: SliceMap.from_json(v) for k, v in payload["maps"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UserError(f"cannot read the propagation calibration ({type(exc).__name__})", path) from exc
    return Calibration(maps, payload.get("made", {}))


def fit_maps(records: Iterable[tuple[str, np.ndarray, float, float]]) -> dict[str, SliceMap]:
    """Maps of slice IoU on the features, from ``(kind, features, iou, size fraction)``: one per kind
    (pooled) and one per (kind, size class) with enough slices. The logistic regression reads IoU as
    a soft label (each slice counts as IoU of a hit and 1 - IoU of a miss)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    by_kind: dict[str, list[tuple[np.ndarray, float]]] = {}
    for kind, features, iou, size in records:
        by_kind.setdefault(kind, []).append((np.asarray(features, float), float(iou)))
        by_kind.setdefault(f"{kind}/{size_class(size)}", []).append((np.asarray(features, float), float(iou)))
    maps = {}
    for kind, pairs in by_kind.items():
        if "/" in kind and len(pairs) < MIN_SLICES_PER_MAP:
            continue
        x = np.stack([f for f, _ in pairs])
        y = np.array([v for _, v in pairs])
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - mean) / scale
        hits = np.r_[np.ones(len(y)), np.zeros(len(y))]
        if 0.0 < y.mean() < 1.0:
            model = LogisticRegression(C=1.0, max_iter=500).fit(np.vstack([z, z]), hits,
                                                                 sample_weight=np.r_[y, 1.0 - y] + 1e-6)
            weights, bias = model.coef_[0], float(model.intercept_[0])
        else:  # every slice right (or every slice wrong): nothing to rank
            weights, bias = np.zeros(len(mean)), 0.0
        score = z @ weights + bias
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)
        maps[kind] = SliceMap(mean, scale, weights, bias, np.asarray(isotonic.X_thresholds_, float),
                              np.asarray(isotonic.y_thresholds_, float))
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
