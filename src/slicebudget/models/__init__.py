"""Segmentation models behind one registry: the smp 2D zoo, a residual 3D U-Net, LightMedSeg (3D)
and Med-DANet V2 (2D, dynamic). ``create_model(name, dims, in_channels, classes, **params)``."""

from slicebudget.models.flops import count_flops, count_parameters
from slicebudget.models.registry import MODEL_REGISTRY, check_model_arguments, create_model, load_weights, model_info, model_parameters

__all__ = [
    "MODEL_REGISTRY",
    "check_model_arguments",
    "count_flops",
    "count_parameters",
    "create_model",
    "load_weights",
    "model_info",
    "model_parameters",
]
