"""Route CPU 3D convolutions through oneDNN (mkldnn) for the duration of a ``with`` block.

Why: for a batch of one, PyTorch's CPU backend choice sends a 3x3x3 convolution to its native
im2col path whenever batch x channels x depth x height is small (the case of NMSW's global network:
one low-resolution volume, few channels). That path materialises a column buffer of
``in_channels x 27 x D x H x W`` floats: about 85 MB for the benchmark's first decoder convolution,
more than a whole tuned sliding window needs, and it is also the slower kernel. oneDNN, which
PyTorch picks anyway for batches of two or more, needs no such buffer. The heuristic cannot be
switched off by a flag, so inside ``OneDNNConvolutions`` every eligible ``conv3d`` call goes to
``torch.mkldnn_convolution`` (the op PyTorch's own oneDNN backend calls; same arithmetic up to
float rounding). Only batches of one are taken over; other calls (larger batches, not CPU float32,
string padding, oneDNN not built in) are left to PyTorch unchanged. A ``TorchFunctionMode`` scopes the rerouting to the block and to any
backbone, without touching the modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.overrides import TorchFunctionMode

_CONV3D_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_CONV3D_ORDER = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _triple(value: int | Sequence[int]) -> list[int]:
    return [int(v) for v in value] if isinstance(value, Sequence) else [int(value)] * 3


def _conv3d_arguments(args: tuple, kwargs: dict) -> dict:
    """``torch.conv3d``'s arguments by name, defaults filled in."""
    bound = {**_CONV3D_DEFAULTS, **dict(zip(_CONV3D_ORDER, args, strict=False)), **kwargs}
    missing = {"input", "weight"} - bound.keys()
    if missing:
        raise TypeError(f"conv3d() missing {', '.join(sorted(missing))}")
    return bound


def _eligible(call: dict) -> bool:
    tensors = [call["input"], call["weight"]] + ([call["bias"]] if call["bias"] is not None else [])
    return (
        torch.backends.mkldnn.is_available()
        and not isinstance(call["padding"], str)
        and call["input"].dim() == 5
        # Batches of two or more already get oneDNN from PyTorch, through its own (leaner) setup.
        and call["input"].shape[0] == 1
        and all(t.device.type == "cpu" and t.dtype == torch.float32 and t.layout == torch.strided for t in tensors)
    )


class OneDNNConvolutions(TorchFunctionMode):
    """``with OneDNNConvolutions(): net(x)``: eligible ``conv3d`` calls run on oneDNN.

    Meant for inference (``torch.no_grad``); calls that need a gradient are left to PyTorch so
    training keeps its usual, well-tested backward.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv3d and not torch.is_grad_enabled():
            call = _conv3d_arguments(args, kwargs)
            if _eligible(call):
                return torch.mkldnn_convolution(
                    call["input"].contiguous(), call["weight"].contiguous(), call["bias"],
                    _triple(call["padding"]), _triple(call["stride"]), _triple(call["dilation"]), int(call["groups"]),
                )
        return func(*args, **kwargs)
