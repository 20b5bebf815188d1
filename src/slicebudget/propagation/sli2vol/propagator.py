"""The learned propagator: feature affinity between neighbouring slices, verified by the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from slicebudget.errors import UserError
from slicebudget.propagation.common import LEARNED, ProgressCallback, PropagationResult, Propagator, class_ids
from slicebudget.propagation.queue import StopRule, propagate_by_chains
from slicebudget.propagation.sli2vol.edges import edge_profile, normalise_intensity
from slicebudget.propagation.sli2vol.model_io import load_model
from slicebudget.propagation.sli2vol.network import FeatureNet, Sli2VolConfig, window_bias
from slicebudget.propagation.sli2vol.sparse_carry import sparse_carry
from slicebudget.propagation.sli2vol.verify import Verified, verify_step
from slicebudget.volume import SparseAnnotation

# Slices wider than this are matched at half resolution (the affinity is computed on 2 x 2-pooled
# features and the carried mask upsampled): keeps a 512 x 512 slice pair well under half a second
# on two CPU cores, while phantom-sized slices keep full resolution for thin structures.
FULL_RESOLUTION_UP_TO = 256
FEATURE_BATCH = 8
CACHE_SLICES = 48
FALLBACKS = ("sdf", "none")


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _FeatureCache:
    """Features of slices computed on demand in small batches, bounded in size (local to one call).

    Each slice's features are computed once while cached: a batch holds only slices not cached yet,
    running ahead in the chain's direction, and the oldest entries make room when the cache is full
    (a two-sided gap's backward chain then finds the forward chain's features still there).
    """

    def __init__(self, net: FeatureNet, volume: np.ndarray, scale: int, device: torch.device):
        self.net, self.volume, self.scale, self.device = net, volume, scale, device
        self.cache: dict[int, torch.Tensor] = {}

    def get(self, index: int, direction: int) -> torch.Tensor:
        if index not in self.cache:
            ahead = range(index, index + direction * FEATURE_BATCH, direction)
            wanted = [i for i in ahead if 0 <= i < self.volume.shape[0] and i not in self.cache]
            for old in list(self.cache)[: max(0, len(self.cache) + len(wanted) - CACHE_SLICES)]:
                del self.cache[old]
            batch = torch.from_numpy(np.ascontiguousarray(self.volume[wanted]))[:, None].to(self.device)
            if self.scale > 1:
                batch = F.avg_pool2d(batch, self.scale, ceil_mode=True)
            with torch.inference_mode():
                feats = self.net(edge_profile(batch))
            self.cache.update({i: feats[k : k + 1] for k, i in enumerate(wanted)})
        return self.cache[index]


class Sli2VolPropagator(Propagator):
    """Sli2Vol-style propagation with a self-supervised feature affinity (see the package docs).

    Parameters: ``model`` (path of a model file; None = the shipped default), ``device`` (None picks
    a GPU when present), ``scale`` (1 or 2; None = full resolution up to 256 pixels wide, half
    above), ``ring_width`` (pixels of the ring verification compares against), and the stop rule
    ``min_confidence``, ``min_area``, ``collapse_ratio`` (see :mod:`slicebudget.propagation.queue`).
    ``fallback``: ``"sdf"`` (default) -- between two annotated slices, a chain that died on a lost
    match votes the signed-distance interpolation of the two human masks instead of background, and
    slices it decides are marked ``interpolation`` in the result's provenance; ``"none"`` -- such
    slices stay as the chains left them (empty where both died).
    ``max_beyond``: at most this many slices beyond the outermost annotated slice (None: until the
    stop rule ends the chain).

    Beyond the outermost annotated slices propagation continues until the stop rule ends it, so the
    object's extent there is decided by the image.
    """

    fills_as = LEARNED

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | None = None,
        scale: int | None = None,
        ring_width: int = 3,
        min_confidence: float = 0.05,
        min_area: int = 3,
        collapse_ratio: float = 0.25,
        fallback: str = "sdf",
        max_beyond: int | None = None,
    ):
        if fallback not in FALLBACKS:
            raise UserError(f"unknown sli2vol fallback {fallback!r}; choose from {', '.join(FALLBACKS)}")
        if max_beyond is not None and int(max_beyond) < 0:
            raise UserError(f"max_beyond must be 0 or more slices, got {max_beyond}")
        self.model = model
        self.device = device
        self.scale = scale
        self.ring_width = ring_width
        self.min_confidence = min_confidence
        self.min_area = min_area
        self.collapse_ratio = collapse_ratio
        self.fallback = fallback
        self.max_beyond = max_beyond

    def propagate(self, image: np.ndarray, annotation: SparseAnnotation,
                  progress: ProgressCallback | None = None) -> PropagationResult:
        device = pick_device(self.device)
        net, config = load_model(self.model, device)
        volume = normalise_intensity(image)
        scale = self.scale or (1 if max(volume.shape[1:]) <= FULL_RESOLUTION_UP_TO else 2)
        features = _FeatureCache(net, volume, scale, device)
        smoothed = {}

        def smooth(i: int) -> np.ndarray:
            if i not in smoothed:
                if len(smoothed) > CACHE_SLICES:
                    smoothed.clear()
                smoothed[i] = ndimage.gaussian_filter(volume[i], 1.0)
            return smoothed[i]

        h, w = volume.shape[1:]
        bias = window_bias(-(-h // scale), -(-w // scale), config.window, device)
        channel_classes = np.concatenate([[0], class_ids(annotation)]).astype(annotation.labels.dtype)

        def step(src: int, dst: int, src_labels: np.ndarray, keep_area: bool) -> tuple[np.ndarray, Verified]:
            direction = 1 if dst > src else -1
            src_features = features.get(src, direction)  # first: its batch then covers dst too
            dst_features = features.get(dst, direction)
            probs = self._carry_mask(dst_features, src_features, src_labels, channel_classes, config, scale, bias)
            return probs, verify_step(
                smooth(dst), smooth(src), src_labels, probs, channel_classes, self.ring_width, keep_area
            )

        rule = StopRule(self.min_confidence, self.min_area, self.collapse_ratio, self.max_beyond)
        return propagate_by_chains(annotation, step, channel_classes, rule, progress, self.fallback == "sdf")

    @staticmethod
    def _carry_mask(
        dst_features: torch.Tensor,
        src_features: torch.Tensor,
        src_labels: np.ndarray,
        channel_classes: np.ndarray,
        config: Sli2VolConfig,
        scale: int,
        bias: torch.Tensor,
    ) -> np.ndarray:
        """Affinity-weighted copy of the source one-hot mask: (K+1, H, W) probabilities."""
        h, w = src_labels.shape
        onehot = torch.from_numpy(
            np.stack([src_labels == c for c in channel_classes]).astype(np.float32)
        )[None].to(src_features.device)
        with torch.inference_mode():
            if scale > 1:
                onehot = F.avg_pool2d(onehot, scale, ceil_mode=True)
            probs = sparse_carry(dst_features, src_features, onehot, config.window, config.temperature, bias)
            if scale > 1:
                probs = F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False)[..., :h, :w]
        return probs[0].cpu().numpy()
