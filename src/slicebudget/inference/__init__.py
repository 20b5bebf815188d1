"""Inference: sliding window (Gaussian blending) and whole-case prediction, one call signature."""

from slicebudget.inference.outputs import logits_from_output, module_device, resolve_device
from slicebudget.inference.predict import predict_case
from slicebudget.inference.sliding_window import (
    SlidingWindowInferer,
    gaussian_importance_map,
    sliding_window_inference,
    window_starts,
)

__all__ = [
    "SlidingWindowInferer",
    "gaussian_importance_map",
    "logits_from_output",
    "module_device",
    "predict_case",
    "resolve_device",
    "sliding_window_inference",
    "window_starts",
]
