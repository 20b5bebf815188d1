"""Inference: sliding window (Gaussian blending), NMSW and whole-case prediction, one call signature;
inferers are built by name from the ``INFERERS`` registry."""

from slicebudget.inference.outputs import logits_from_output, module_device, resolve_device
from slicebudget.inference.predict import predict_case
from slicebudget.inference.registry import INFERERS, build_inferer, get_inferer_class, inferer_parameters
from slicebudget.inference.sliding_window import (
    SlidingWindowInferer,
    gaussian_importance_map,
    sliding_window_inference,
    window_starts,
)

__all__ = [
    "INFERERS",
    "build_inferer",
    "get_inferer_class",
    "inferer_parameters",
    "SlidingWindowInferer",
    "gaussian_importance_map",
    "logits_from_output",
    "module_device",
    "predict_case",
    "resolve_device",
    "sliding_window_inference",
    "window_starts",
]
