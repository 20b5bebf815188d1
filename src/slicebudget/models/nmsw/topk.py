"""Differentiable top-K patch sampling (training) and plain top-K (evaluation).

Training follows the NMSW paper: Gumbel-softmax relaxed top-K *without replacement* (the
Gumbel-top-k trick of Kool et al.): one Gumbel draw per position, perturbed log-probabilities, and
K successive tempered softmaxes, each with the positions already taken masked out (their
probability set to zero). The k-th discrete choice is the argmax of the k-th softmax; the sample is
made one-hot with a straight-through estimator and then multiplied by its soft value
(``z = onehot * softhot``), the paper's fix for the straight-through bias while probabilities are
still flat. In the forward pass ``z`` is zero except at the chosen position, where it holds the soft
value in (0, 1]; gradients flow into every logit through the softmax.

Evaluation uses no noise: the K positions with the largest logits, so two calls agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

GUMBEL_EPS = 1e-10  # keeps log(-log(u)) finite when u lands on 0 or 1


@dataclass(frozen=True)
class TopKSample:
    """``indices`` (..., K) chosen positions in draw order; ``softhot`` (..., K, N) relaxed samples;
    ``selection`` (..., K, N) the straight-through ``onehot * softhot`` vectors of Eq. 5."""

    indices: torch.Tensor
    softhot: torch.Tensor
    selection: torch.Tensor

    @property
    def weights(self) -> torch.Tensor:
        """(..., K) the value of each ``selection`` at its chosen position (carries the gradient)."""
        return self.selection.gather(-1, self.indices.unsqueeze(-1)).squeeze(-1)


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    uniform = uniform.clamp(GUMBEL_EPS, 1 - GUMBEL_EPS)
    return -torch.log(-torch.log(uniform))


def straight_through(onehot: torch.Tensor, softhot: torch.Tensor) -> torch.Tensor:
    """Forward: ``onehot``; backward: the gradient of ``softhot``."""
    return onehot - softhot.detach() + softhot


def gumbel_topk(
    logits: torch.Tensor, k: int, tau: float, generator: torch.Generator | None = None
) -> TopKSample:
    """Draw ``min(k, N)`` distinct positions from ``softmax(logits)`` (..., N) without replacement."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not tau > 0:
        raise ValueError(f"the temperature must be positive, got {tau}")
    n = logits.shape[-1]
    k = min(int(k), n)
    log_probs = torch.log_softmax(logits, dim=-1)
    # One noise draw shared by all K steps (Eq. 3): the successive argmaxes are then the top-K of the
    # perturbed log-probabilities, i.e. an exact sample without replacement.
    perturbed = log_probs + gumbel_noise(tuple(logits.shape), generator, logits.device, logits.dtype)
    taken = torch.zeros_like(logits, dtype=torch.bool)
    indices, softhots, selections = [], [], []
    for _ in range(k):
        masked = perturbed.masked_fill(taken, -math.inf)  # Eq. 4: a taken position has probability 0
        softhot = torch.softmax(masked / tau, dim=-1)
        index = masked.argmax(dim=-1)
        onehot = torch.nn.functional.one_hot(index, n).to(logits.dtype)
        selections.append(straight_through(onehot, softhot) * softhot)
        softhots.append(softhot)
        indices.append(index)
        taken = taken | onehot.bool()
    return TopKSample(
        indices=torch.stack(indices, dim=-1),
        softhot=torch.stack(softhots, dim=-2),
        selection=torch.stack(selections, dim=-2),
    )


def deterministic_topk(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The ``min(k, N)`` positions with the largest logits, largest first (no noise)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return torch.topk(logits, min(int(k), logits.shape[-1]), dim=-1, sorted=True).indices


def distribution_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits)`` over the last axis."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def annealed_tau(step: int, steps: int, start: float = 2.0, end: float = 0.33) -> float:
    """Temperature at ``step`` of ``steps`` (0-based): geometric from ``start`` to ``end``.

    Geometric rather than linear so the relaxation sharpens at a steady *relative* rate; the first
    step gets exactly ``start`` and the last exactly ``end``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not (start > 0 and end > 0):
        raise ValueError(f"temperatures must be positive, got {start} and {end}")
    if steps == 1:
        return float(end)
    fraction = min(max(step, 0), steps - 1) / (steps - 1)
    return float(start * (end / start) ** fraction)
