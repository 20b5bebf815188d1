"""Whole-case prediction: 2D slice by slice, 3D by sliding window (or any ``inferer(x, model)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slicebudget.models.outputs import logits_from_output, module_device
from slicebudget.models.sliding_window import sliding_window_inference

PAD_MULTIPLE = 32  # encoders downsample up to five times


def _pad_last_axes(tensor: torch.Tensor, n_axes: int, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the last ``n_axes`` axes at the end up to a multiple; return the crop that undoes it."""
    sizes = tensor.shape[-n_axes:]
    extra = [-(-s // multiple) * multiple - s for s in sizes]
    pads = [v for e in reversed(extra) for v in (0, e)]
    crop = tuple(slice(0, s) for s in sizes)
    return (F.pad(tensor, pads) if any(extra) else tensor), crop


def _predict_2d(model: torch.nn.Module, image: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(C, D, H, W) -> logits (K, D, H, W), slices batched along D."""
    slices = image.permute(1, 0, 2, 3)  # (D, C, H, W)
    padded, crop = _pad_last_axes(slices, 2, PAD_MULTIPLE)
    device = module_device(model, default=image.device)
    chunks = []
    for first in range(0, padded.shape[0], batch_size):
        batch = padded[first : first + batch_size].to(device)
        logits = logits_from_output(model(batch)).float()
        chunks.append(logits[(slice(None), slice(None), *crop)].to(image.device))
    return torch.cat(chunks).permute(1, 0, 2, 3)


def _predict_3d(
    model: torch.nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int] | None,
    batch_size: int,
    inferer: Callable | None,
) -> torch.Tensor:
    """(C, D, H, W) -> logits (K, D, H, W)."""
    batch = image[None]
    if inferer is not None:
        logits = inferer(batch, model)
    elif patch_size is not None:
        logits = sliding_window_inference(batch, model, patch_size, overlap=0.5, batch_size=batch_size)
    else:
        padded, crop = _pad_last_axes(batch, 3, PAD_MULTIPLE)
        device = module_device(model, default=image.device)
        logits = logits_from_output(model(padded.to(device))).float().to(image.device)
        logits = logits[(slice(None), slice(None), *crop)]
    return logits_from_output(logits)[0].float()


def predict_case(
    model: torch.nn.Module,
    image: np.ndarray,
    dims: int,
    patch_size: Sequence[int] | None = None,
    batch_size: int = 8,
    inferer: Callable | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities (K, D, H, W) float32 for one normalised image (C, D, H, W).

    ``dims=2`` runs the model on each slice (padded to a multiple of 32), ``batch_size`` at a time;
    ``patch_size`` and ``inferer`` are ignored there.
    ``dims=3`` uses ``inferer(x, model)`` when given, else a sliding window of ``patch_size`` with
    Gaussian blending, else one whole-volume pass padded to a multiple of 32. ``device``: where to
    run (the model is moved there); ``None`` keeps the model where it is. The model's train/eval
    mode is restored afterwards.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if image.ndim != 4:
        raise ValueError(f"expected an image of shape (C, D, H, W), got {image.shape}")
    if device is not None:
        model.to(device)
    run_device = module_device(model)
    was_training = model.training
    model.eval()
    try:
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(run_device)
        with torch.no_grad():
            if dims == 2:
                logits = _predict_2d(model, tensor, batch_size)
            else:
                logits = _predict_3d(model, tensor, patch_size, batch_size, inferer)
            probabilities = torch.softmax(logits, dim=0)
    finally:
        model.train(was_training)
    return probabilities.cpu().numpy().astype(np.float32, copy=False)
