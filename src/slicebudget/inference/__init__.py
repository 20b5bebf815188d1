"""Inference: the inferer family (sliding window, NMSW, random foreground), one call signature
``inferer(image, network)``, built by name from the ``INFERERS`` registry."""

from slicebudget.inference.registry import (INFERERS, build_inferer, get_inferer_class, inferer_parameters,
                                          registered_name)
from slicebudget.inference.sliding_window import SlidingWindowInferer

__all__ = ["INFERERS", "SlidingWindowInferer", "build_inferer", "get_inferer_class", "inferer_parameters",
           "registered_name"]
