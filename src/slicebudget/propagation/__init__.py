"""Mask propagation: turn a sparse slice annotation into dense labels plus a per-slice confidence.

    from slicebudget.propagation import propagate
    result = propagate(image, annotation, method="sli2vol")   # or "sdf", "nearest", "mci"
    result.labels      # (D, H, W) ints; human-annotated slices exactly as given
    result.confidence  # (D,) in [0, 1]; 1 on human slices only
    result.provenance  # (D,) where each slice came from: human, learned, interpolation, nearest,
                       # stopped (sli2vol's stop rule left it empty) or none (the method fills nothing there)

``sli2vol`` is learned (self-supervised, shipped model) and follows the image beyond the outermost
annotated slices until its stop rule ends it; ``sdf``, ``nearest`` and ``mci`` interpolate between
annotated slices only. See each method's class docstring for exactly what it does.
"""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.calibration import empty_signal, load_calibration, size_fraction, slice_features
from slicebudget.propagation.common import (
    HUMAN,
    NONE,
    PROVENANCES,
    STOPPED,
    ProgressCallback,
    PropagationResult,
    Propagator,
    check_inputs,
)
from slicebudget.propagation.registry import PROPAGATORS, get_propagator, propagator_parameters
from slicebudget.volume import SparseAnnotation


def propagate(
    image: np.ndarray,
    annotation: SparseAnnotation,
    method: str = "sli2vol",
    progress: ProgressCallback | None = None,
    device: str | None = None,
    calibrated: bool = True,
    **params,
) -> PropagationResult:
    """Propagate ``annotation`` through ``image`` (D, H, W) with the named method.

    ``progress(done, total)`` is called as slices are processed (the napari plugin's progress bar);
    ``device`` ("cpu", "cuda", None = GPU when present) goes to methods that take one (the learned
    ones); other keyword parameters go to the method's constructor. ``calibrated=False`` returns the
    method's raw per-slice signal as the confidence (what the calibration is fitted on).
    """
    check_inputs(image, annotation)
    if "device" in propagator_parameters(method):
        params = {"device": device, **params}
    propagator = get_propagator(method, **params)
    result = propagator.propagate(np.asarray(image), annotation, progress=progress)
    # Human slices are returned exactly as given, whatever the method did around them.
    labels = result.labels.astype(annotation.labels.dtype, copy=False)
    labels[annotation.annotated] = annotation.labels[annotation.annotated]
    provenance = np.where(annotation.annotated, HUMAN, result.provenance).astype(object)
    signal = result.confidence if result.signal is None else result.signal
    signal = np.where(np.isin(provenance, [STOPPED, NONE]), empty_signal(labels), signal)
    signal = np.where(annotation.annotated, 1.0, signal)
    size = size_fraction(labels)
    if calibrated:
        features = slice_features(annotation.annotated, labels, signal)
        confidence = load_calibration().apply(method, provenance, features, size)
    else:
        confidence = signal
    return PropagationResult(labels, confidence, provenance, signal)


__all__ = ["PROPAGATORS", "PROVENANCES", "PropagationResult", "Propagator", "get_propagator", "propagate",
           "propagator_parameters"]
