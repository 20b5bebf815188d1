"""The sliding window as a registered inferer: ``inferer(image, network)`` -> blended logits.

The blending itself lives in :mod:`slicebudget.models.sliding_window`, below training, which
validates 3D models with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from slicebudget.models.sliding_window import sliding_window_inference


class SlidingWindowInferer:
    """``inferer(image, model)`` -> blended logits; shares its call with the NMSW inferer."""

    needs_nmsw_model = False

    def __init__(
        self, patch_size: Sequence[int], overlap: float = 0.5, batch_size: int = 4, sigma_scale: float = 0.125
    ):
        self.patch_size = tuple(patch_size)
        self.overlap = overlap
        self.batch_size = batch_size
        self.sigma_scale = sigma_scale

    @classmethod
    def build(cls, network, patch_size: Sequence[int], *, overlap: float = 0.5, batch_size: int = 4) -> SlidingWindowInferer:
        return cls(tuple(patch_size), float(overlap), batch_size)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        return sliding_window_inference(
            inputs, network, self.patch_size, self.overlap, self.batch_size, self.sigma_scale
        )
