"""Measure Med-DANet V2 slice by slice on whole volumes (its training: :mod:`slicebudget.training.meddanet_v2`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SliceEvaluation:
    """Per-volume foreground Dice and per-slice compute of one way of running the model."""

    dice: float  # mean over volumes of the mean foreground-class Dice
    gflops_per_slice: float  # FlopCounterMode FLOPs (2 per MAC) / 1e9, averaged over all slices
    bit_gflops_per_slice: float  # the same with each U-Net stage scaled by its weight bits / 32
    measured_gflops_per_slice: float  # FLOPs counted by FlopCounterMode over the whole run
    choice_share: dict[str, float]


def evaluate_volumes(
    model: torch.nn.Module,
    volumes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    classes: int,
    static: bool = False,
    batch_size: int = 16,
) -> SliceEvaluation:
    """Segment each (C, D, H, W) volume slice by slice (axis 1 = slice axis) and score it in 3D.

    ``static=True`` runs the plain full-precision U-Net on every whole slice instead of the policy.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from slicebudget.metrics import dice

    model.eval()
    scores, gflops, bit_gflops, choices = [], [], [], []
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        for volume, label in zip(volumes, labels):
            slices = torch.from_numpy(np.ascontiguousarray(np.moveaxis(volume, 1, 0))).float()
            predictions = []
            for start in range(0, slices.shape[0], batch_size):
                batch = slices[start : start + batch_size]
                logits = model.static_forward(batch) if static else model(batch)
                predictions.append(logits.argmax(dim=1).numpy())
                gflops.extend(model.last_gflops_.tolist())
                bit_gflops.extend(model.last_bit_gflops_.tolist())
                choices.extend(d.choice for d in model.last_decisions_)
            prediction = np.concatenate(predictions, axis=0)
            scores.append(np.mean([dice(prediction == k, label == k) for k in range(1, classes)]))
    share = {name: choices.count(name) / len(choices) for name in ("skip", "full", "crop")}
    return SliceEvaluation(
        dice=float(np.mean(scores)),
        gflops_per_slice=float(np.mean(gflops)),
        bit_gflops_per_slice=float(np.mean(bit_gflops)),
        measured_gflops_per_slice=counter.get_total_flops() / 1e9 / len(gflops),
        choice_share=share,
    )
