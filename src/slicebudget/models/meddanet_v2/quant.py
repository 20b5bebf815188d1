"""Dynamic weight quantisation for Med-DANet V2: per-sample, per-stage bit widths.

- Weights are quantised symmetrically with scale ``a = max |w|`` (the paper's "simplest strategy"):
  ``Q_b(w) = round(clip(w, -a, a) * r / a) * a / r`` with ``r = 2**(b-1) - 1`` so the codes fit a
  signed b-bit integer (the paper writes ``2**(b-1)``, one level more than b bits hold). Rounding
  passes gradients straight through.
- A :class:`BitSelector` before each stage looks at how complex the stage's input is (mean spatial
  gradient and spatial standard deviation per channel) and scores the candidate bit widths.
  The chosen width is the argmax in the forward pass, while gradients flow through the softmax
  (straight-through estimator, the paper's Eq. 7).
- :class:`QuantConv2d` / :class:`QuantConvTranspose2d` take a per-sample one-hot over bit widths
  and split the batch by chosen width (see :func:`run_with_bits`).
- Only weights are quantised; activations stay in floating point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform quantisation with a straight-through gradient."""
    scale = weight.detach().abs().max().clamp(min=1e-12)
    levels = 2 ** (bits - 1) - 1
    quantised = torch.round(weight.clamp(-scale, scale) * levels / scale) * scale / levels
    return weight + (quantised - weight).detach()


def straight_through_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """One-hot of the argmax in the forward pass, softmax gradient in the backward pass."""
    soft = torch.softmax(logits, dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


class BitSelector(nn.Module):
    """Scores bit widths for one stage from the complexity of the stage's input (B, C, H, W)."""

    def __init__(self, channels: int, choices: int, hidden: int = 16):
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, hidden)
        self.fc2 = nn.Linear(hidden, choices)

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2C): mean |spatial gradient| and spatial standard deviation per channel.

        Both are defined (zero) for a 1 x 1 map, which a small crop reaches at the bottleneck.
        """
        gradient = x.new_zeros(x.shape[:2])
        if x.shape[2] > 1:
            gradient = gradient + (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(2, 3))
        if x.shape[3] > 1:
            gradient = gradient + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(2, 3))
        spread = x.flatten(2).std(dim=2, correction=0)
        return torch.cat([gradient, spread], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through_one_hot(self.fc2(F.relu(self.fc1(self.statistics(x)))))

    def flops(self) -> int:
        return 2 * (self.fc1.in_features * self.fc1.out_features + self.fc2.in_features * self.fc2.out_features)


def run_with_bits(layer: nn.Module, x: torch.Tensor, bits: torch.Tensor | None, run) -> torch.Tensor:
    """Run ``run(x, weight)`` with ``layer.weight`` quantised per sample as ``bits`` says.

    ``bits`` is a (B, K) straight-through one-hot over ``layer.bit_choices``, or None for full
    precision. The batch is split by chosen width and each group runs once with its quantised
    weight, so the cost is that of one pass. In training each group's output is multiplied by its
    one-hot entry (1 in the forward pass) so the task loss also reaches the selector's softmax.
    """
    if bits is None:
        return run(x, layer.weight)
    choice = bits.argmax(dim=1)
    out = None
    for k, width in enumerate(layer.bit_choices):
        index = (choice == k).nonzero(as_tuple=True)[0]
        if index.numel() == 0:
            continue
        whole = index.numel() == x.shape[0]  # common case: no gather / scatter needed
        group = run(x if whole else x[index], quantize_weight(layer.weight, width))
        if layer.training:
            group = group * bits[index, k].view(-1, *([1] * (group.ndim - 1)))
        if whole:
            return group
        if out is None:
            out = group.new_zeros((x.shape[0], *group.shape[1:]))
        out = out.index_copy(0, index, group)
    return out


class _PerSampleBits:
    """What both quantised layers add to their torch layer: ``bit_choices``, and a forward that runs
    the layer's own ``_run(x, weight)`` through :func:`run_with_bits`."""

    def __init__(self, *args, bit_choices: tuple[int, ...] = (8, 16), **kwargs):
        super().__init__(*args, **kwargs)
        self.bit_choices = tuple(bit_choices)

    def forward(self, x: torch.Tensor, bits: torch.Tensor | None = None) -> torch.Tensor:
        return run_with_bits(self, x, bits, self._run)


class QuantConv2d(_PerSampleBits, nn.Conv2d):
    """Conv2d whose weight is quantised to a per-sample bit width (``bits`` (B, K) one-hot, or None)."""

    def _run(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class QuantConvTranspose2d(_PerSampleBits, nn.ConvTranspose2d):
    """ConvTranspose2d with a per-sample quantised weight (see :class:`QuantConv2d`)."""

    def _run(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, weight, self.bias, self.stride, self.padding, self.output_padding, self.groups)
