"""Small shared helpers: read logits out of whatever a network returns, find its device."""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Keys tried, in order, when a network returns a dict (deep supervision, auxiliary heads).
LOGIT_KEYS = ("logits", "out", "seg")


def logits_from_output(output) -> torch.Tensor:
    """The main prediction of a network's output.

    A tensor is returned as is; for a tuple or list (deep supervision: full resolution first) the
    first element; for a dict the first of ``logits``, ``out``, ``seg`` present.
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, list | tuple) and output:
        return logits_from_output(output[0])
    if isinstance(output, Mapping):
        for key in LOGIT_KEYS:
            if key in output:
                return logits_from_output(output[key])
        raise TypeError(f"network returned a dict without any of the keys {LOGIT_KEYS}: {sorted(output)}")
    raise TypeError(f"cannot read logits from a network output of type {type(output).__name__}")


def module_device(model: torch.nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """Device of the model's first parameter (or buffer), else ``default``."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device(default)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
