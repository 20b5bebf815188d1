"""No-More-Sliding-Window (NMSW): learned top-K patch sampling instead of sliding-window inference.

A global network on the downsampled volume predicts a coarse segmentation and a distribution over
the N overlapping patch positions a sliding window would visit; the local network runs on K of
them; a per-class learnable weight blends both (Jeon et al., Eq. 6). See ``train_nmsw`` for
training and ``NMSWInferer`` for inference (built by name through ``slicebudget.inference.build_inferer``).
"""

from slicebudget.inference.nmsw.inferer import NMSWInferer
from slicebudget.inference.nmsw.model import NMSWModel, build_nmsw_model, load_nmsw, save_nmsw
from slicebudget.inference.nmsw.patches import PatchGrid, patch_grid
from slicebudget.inference.nmsw.random_foreground import RandomForegroundInferer
from slicebudget.inference.nmsw.topk import annealed_tau, deterministic_topk, gumbel_topk
from slicebudget.inference.nmsw.train import NMSWTrainResult, train_nmsw

__all__ = [
    "NMSWInferer",
    "NMSWModel",
    "NMSWTrainResult",
    "PatchGrid",
    "RandomForegroundInferer",
    "annealed_tau",
    "build_nmsw_model",
    "deterministic_topk",
    "gumbel_topk",
    "load_nmsw",
    "patch_grid",
    "save_nmsw",
    "train_nmsw",
]
