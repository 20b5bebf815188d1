"""NMSW inference behind the sliding window's call: ``inferer(image, network)`` -> logits.

Per volume: the global network scores all N patch positions on the downsampled volume, the K
positions with the largest logits are taken (no noise: two calls agree exactly), only those K
windows are cut out and run through the local network ``batch_size`` at a time, and the result is
blended with the upsampled global prediction (:mod:`slicebudget.models.nmsw.aggregate`).
K is clamped to N; with K = N the output equals the sliding window's with the same local network.

``network``, when given, is the local network (the study hands in its trained backbone, exactly as
it would to the sliding window); ``inferer(image)`` uses the NMSW model's own local network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from slicebudget.errors import UserError
from slicebudget.models.nmsw.aggregate import PatchBlender
from slicebudget.models.nmsw.model import NMSWModel, load_nmsw
from slicebudget.models.nmsw.onednn import OneDNNConvolutions
from slicebudget.models.nmsw.patches import PatchGrid, extract_patches, pad_to_patch
from slicebudget.models.nmsw.topk import deterministic_topk
from slicebudget.models.outputs import logits_from_output, module_device

# chooser(coarse logits (C, *low), patch logits (N,), grid) -> chosen positions (K',) int64
Chooser = Callable[[torch.Tensor, torch.Tensor, PatchGrid], torch.Tensor]


def validate_k(k) -> int:
    """K must be a whole number >= 1 (it is clamped to N later, when N is known)."""
    if isinstance(k, bool) or not isinstance(k, int | float) or int(k) != k:
        raise UserError(f"NMSW k must be a whole number of patches, got {k!r}")
    if k < 1:
        raise UserError(f"NMSW k must be at least 1 patch, got {k}")
    return int(k)


def resolve_nmsw_model(name: str, network, patch_size: Sequence[int], checkpoint: str | Path | None) -> NMSWModel:
    """The NMSW model an inferer runs: ``network`` when it is one, else the saved ``checkpoint``;
    UserError when neither is given or the model's patch size is not the study's."""
    if isinstance(network, NMSWModel):
        nmsw = network
    elif checkpoint:
        nmsw, _ = load_nmsw(Path(checkpoint))
    else:
        raise UserError(
            f"inference {name!r} needs an NMSW model: pass the model returned by train_nmsw, "
            "or set inference.checkpoint to a saved NMSW checkpoint"
        )
    if tuple(nmsw.patch_size) != tuple(int(p) for p in patch_size):
        raise UserError(
            f"the NMSW model was trained with patch size {tuple(nmsw.patch_size)}, "
            f"but the study uses {tuple(int(p) for p in patch_size)}"
        )
    return nmsw


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block and restore each one's previous mode afterwards."""
    previous = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in zip(modules, previous, strict=True):
            m.train(was_training)


def predict_with_patches(
    model: NMSWModel,
    local_net: nn.Module,
    image: torch.Tensor,
    chooser: Chooser,
    batch_size: int,
    local_only: bool = False,
) -> torch.Tensor:
    """One volume (C, D, H, W) at least one patch large -> blended logits (classes, D, H, W)."""
    grid = model.grid(image.shape[1:])
    coarse, patch_logits = model.global_forward(image[None], grid)
    chosen = chooser(coarse[0], patch_logits[0], grid)
    starts = grid.starts().to(image.device)[chosen]
    blender = PatchBlender(grid, starts, model.classes, image.device)
    local_device = module_device(local_net, default=image.device)
    for first in range(0, starts.shape[0], batch_size):
        chunk = starts[first : first + batch_size]
        patches = extract_patches(image, grid, chunk).to(local_device)
        # A short last chunk (K = 5 at batch size 4) is a batch of one: keep it off the im2col path.
        with OneDNNConvolutions():
            logits = logits_from_output(local_net(patches)).float().to(image.device)
        blender.add(logits, chunk)
        del patches, logits  # free this chunk before the next one is cut out
    # Upsampled only now, so the full-resolution global prediction and the local network's
    # activations are never alive at once (the peak memory stays below the sliding window's).
    output = model.upsample(coarse, image.shape[1:])[0]
    return blender.write(output, output, None if local_only else model.class_logit)


def run_patch_inference(
    model: NMSWModel,
    image: torch.Tensor,
    network: nn.Module | None,
    chooser: Chooser,
    batch_size: int,
    local_only: bool = False,
) -> torch.Tensor:
    """(B, C, D, H, W) -> logits (B, classes, D, H, W) on the image's device; pads small volumes."""
    if image.ndim != 5:
        raise ValueError(f"expected (B, C, D, H, W), got shape {tuple(image.shape)}")
    if image.shape[1] != model.in_channels:
        raise UserError(f"the NMSW model takes {model.in_channels} channel(s), the image has {image.shape[1]}")
    local_net = model.local_net if network is None or network is model else network
    device = module_device(model, default=image.device)
    padded, crop = pad_to_patch(image, model.patch_size)
    with torch.no_grad(), eval_mode(model, local_net):
        outputs = [
            predict_with_patches(model, local_net, volume.to(device), chooser, batch_size, local_only).to(image.device)
            for volume in padded
        ]
    # One volume (the usual case): a view, not a second full-resolution copy at the peak.
    stacked = outputs[0][None] if len(outputs) == 1 else torch.stack(outputs)
    return stacked[(slice(None), slice(None), *crop)].contiguous()


class NMSWInferer:
    """``inferer(image, network=None)`` -> logits (B, classes, D, H, W): deterministic top-``k`` NMSW."""

    needs_nmsw_model = True  # a study trains NMSW's global network around its backbone first

    def __init__(self, model: NMSWModel, k: int, batch_size: int = 4):
        self.model = model
        self.k = validate_k(k)
        self.batch_size = int(batch_size)

    @classmethod
    def build(cls, network, patch_size: Sequence[int], *, k: int, batch_size: int = 4,
              checkpoint: str | None = None) -> NMSWInferer:
        return cls(resolve_nmsw_model("nmsw", network, patch_size, checkpoint), k, batch_size)

    def choose(self, coarse: torch.Tensor, patch_logits: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
        return deterministic_topk(patch_logits, self.k)

    def __call__(self, inputs: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        return run_patch_inference(self.model, inputs, network, self.choose, self.batch_size)
