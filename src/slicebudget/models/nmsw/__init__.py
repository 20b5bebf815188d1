"""The No-More-Sliding-Window (NMSW) network: learned top-K patch sampling instead of a sliding window.

A global network on the downsampled volume predicts a coarse segmentation and a distribution over
the N overlapping patch positions a sliding window would visit; the local network runs on K of
them; a per-class learnable weight blends both (Jeon et al., Eq. 6). It sits below training and
inference: :mod:`slicebudget.training.nmsw` trains it, :mod:`slicebudget.inference.nmsw` runs it.
"""

from slicebudget.models.nmsw.model import NMSWModel, build_nmsw_model, load_nmsw, save_nmsw
from slicebudget.models.nmsw.patches import PatchGrid, patch_grid
from slicebudget.models.nmsw.topk import annealed_tau, deterministic_topk, gumbel_topk

__all__ = [
    "NMSWModel",
    "PatchGrid",
    "annealed_tau",
    "build_nmsw_model",
    "deterministic_topk",
    "gumbel_topk",
    "load_nmsw",
    "patch_grid",
    "save_nmsw",
]
