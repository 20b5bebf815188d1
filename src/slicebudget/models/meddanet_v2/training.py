"""Train Med-DANet V2 through its three phases, and measure it slice by slice on whole volumes.

``train_meddanet_v2`` is a compact loop for the benchmark and for direct use; the study's generic
``slicebudget.training.train_model`` trains the same model through the ``set_phase`` /
``training_phases`` / ``compute_loss`` hooks instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # image (B,C,H,W), target (B,H,W), ignore (B,H,W)


def poly_with_warmup(steps: int, warmup_fraction: float = 0.05, power: float = 0.9) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then polynomial decay (the paper's schedule)."""
    warmup = max(1, int(round(steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - (step - warmup) / max(1, steps - warmup)) ** power

    return factor


def train_meddanet_v2(
    model: torch.nn.Module,
    batches: Iterator[Batch],
    phase_steps: Sequence[int] = (40, 80, 20, 10),
    learning_rate: float = 5e-3,
    weight_decay: float = 1e-5,
    on_progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place, phase by phase; return one record per step.

    Each phase builds an Adam optimiser over the parameters that phase trains (see
    ``MedDANetV2.set_phase``). The caller seeds torch (Gumbel noise) and the batch iterator.
    """
    history: list[dict] = []
    model.train()
    for phase, steps in enumerate(phase_steps):
        if steps <= 0:
            continue
        model.set_phase(phase)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_with_warmup(steps))
        for step in range(steps):
            image, target, ignore = next(batches)
            outputs = model(image)
            loss = model.compute_loss(outputs, target, ignore)
            if not torch.isfinite(loss):
                raise RuntimeError(f"Med-DANet V2 training diverged in phase {phase} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            choice = model.train_outputs_["choice"].detach().mean(dim=0).tolist()
            record = {
                "phase": phase,
                "step": step,
                "loss": float(loss.detach()),
                "relative_cost": float(model.train_outputs_["cost"].detach().mean()),
                "choice_share": choice,
            }
            history.append(record)
            if on_progress is not None:
                on_progress(record)
    model.eval()
    return history


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
