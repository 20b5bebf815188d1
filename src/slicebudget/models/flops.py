"""Parameter and FLOP counts, measured the same way for every model.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-accumulate (MAC) of convolutions, transposed convolutions and matrix products, and nothing
for element-wise work (norms, activations, interpolation, grid sampling). Most papers that report
"GFLOPs" from thop or ptflops report MACs, so :func:`macs_from_flops` halves the count for a
like-for-like comparison.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those requiring grad)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one eval-mode forward pass on ``example`` (FlopCounterMode: 2 per MAC).

    The model is put in eval mode for the count and returned to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def flops_of(fn, *args, **kwargs) -> tuple[object, int]:
    """Run ``fn(*args, **kwargs)`` under a FLOP counter; return its result and the FLOPs it took."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    return result, int(counter.get_total_flops())


def macs_from_flops(flops: int | float) -> float:
    """Multiply-accumulates behind a FlopCounterMode count (2 FLOPs per MAC)."""
    return float(flops) / 2.0


def conv_output_size(layer: torch.nn.modules.conv._ConvNd, in_size: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial output size of a (transposed) convolution for a given input size."""
    sizes = []
    for axis, n in enumerate(in_size):
        k, s, p, d = layer.kernel_size[axis], layer.stride[axis], layer.padding[axis], layer.dilation[axis]
        if layer.transposed:
            sizes.append((n - 1) * s - 2 * p + d * (k - 1) + layer.output_padding[axis] + 1)
        else:
            sizes.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
    return tuple(sizes)


def conv_layer_flops(layer: torch.nn.modules.conv._ConvNd, in_size: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """FLOPs of one sample through ``layer`` (exactly as FlopCounterMode counts them) and the output size.

    Computed from shapes alone, so it can run inside a forward pass that an outer FlopCounterMode is
    counting without being counted itself.
    """
    from torch.utils.flop_counter import conv_flop_count

    out_size = conv_output_size(layer, in_size)
    flops = conv_flop_count(
        [1, layer.in_channels, *in_size],
        list(layer.weight.shape),
        [1, layer.out_channels, *out_size],
        transposed=layer.transposed,
    )
    return int(flops), out_size


def linear_layer_flops(layer: torch.nn.Linear) -> int:
    """FLOPs of one sample through a linear layer (2 per MAC, bias not counted)."""
    return 2 * layer.in_features * layer.out_features
