"""Data: procedural phantoms, MIST-style dataset checks and intensity normalisation.

Import :mod:`slicebudget.data.checks` explicitly; it reads images with SimpleITK.
"""

from __future__ import annotations

from slicebudget.data.phantoms import TASK_LABELS, generate_phantom, write_phantom_dataset
from slicebudget.data.preprocess import Normalization, fit_normalization, target_spacing

__all__ = ["TASK_LABELS", "Normalization", "fit_normalization", "generate_phantom", "target_spacing",
           "write_phantom_dataset"]
