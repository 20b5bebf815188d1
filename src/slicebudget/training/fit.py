"""The training core every loop in slicebudget runs on, and the study's loop built on it.

:func:`fit` is the core: phases of optimiser steps, each step ``loss -> finite? -> zero_grad ->
backward -> (clip) -> step -> (schedule)``, with hooks for what differs between loops:

- **phases** (:class:`Phase`): how many steps, what to do first (``start``: freeze or unfreeze parts
  of the model), which optimiser and schedule to build then, and an optional gradient clip;
- **extra losses**: callables added to the main loss of every step;
- **callbacks**: called after every step with the :class:`Step` and the loss (records, progress,
  validation).

Built on it: :func:`train_model` (2D/3D segmentation on sparse labels, below), NMSW
(:mod:`slicebudget.training.nmsw`), Med-DANet V2's own phases (:mod:`slicebudget.training.meddanet_v2`),
sli2vol's self-supervised network (:mod:`slicebudget.propagation.sli2vol.train`) and the coreset
autoencoder (:mod:`slicebudget.selection.encoder`).

:func:`train_model`, readable top to bottom: draw a batch (2D: uniform over annotated slices; 3D:
TorchIO patches), run the model, compute a loss that ignores unannotated voxels, step AdamW on a
cosine schedule. Every ``val_every`` iterations (and at the end) score mean foreground Dice on the
validation cases and keep the best weights. Progress goes to ``on_progress`` as plain dicts.

Model hooks, all optional, so special architectures need no special loop:
- ``model.compute_loss(outputs, target, ignore_mask)`` replaces the default loss; ``outputs`` is
  whatever ``model(x)`` returned and ``ignore_mask`` is True on voxels that must NOT count.
- ``model.set_phase(i)`` is called at the start of each phase i; ``model.training_phases`` is a
  sequence of relative lengths (e.g. ``(0.7, 0.3)``: first 70% of iterations, then the rest; default
  one phase). The optimiser is rebuilt per phase over the parameters then requiring grad, so a
  phase may freeze parts of the model.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from slicebudget.models.outputs import logits_from_output, resolve_device
from slicebudget.models.predict import predict_case
from slicebudget.training.losses import masked_dice_ce_loss
from slicebudget.training.spec import EvalCase, TrainingCase, TrainingDiverged, TrainResult, TrainSpec


Schedule = torch.optim.lr_scheduler.LRScheduler


@dataclass(frozen=True)
class Phase:
    """``steps`` optimiser steps. ``start()`` runs first (also for a phase of no steps), then
    ``optimizer()`` builds ``(optimizer, schedule or None)`` over what is trainable now. ``clip``:
    ``(parameters, max_norm)`` for ``clip_grad_norm_`` after each backward pass."""

    steps: int
    optimizer: Callable[[], tuple[torch.optim.Optimizer, Schedule | None]]
    start: Callable[[], None] | None = None
    clip: tuple[Sequence[torch.Tensor], float] | None = None


@dataclass(frozen=True)
class Step:
    iteration: int  # 1-based, across phases
    phase: int  # index into the phases
    step: int  # 0-based, within the phase
    learning_rate: float  # of the first parameter group, as used by this step


def _diverged(step: Step, loss: float) -> str:
    return f"training diverged: loss is {loss} at iteration {step.iteration}"


def fit(
    phases: Sequence[Phase],
    loss: Callable[[Step], torch.Tensor],
    extra_losses: Sequence[Callable[[Step], torch.Tensor]] = (),
    callbacks: Sequence[Callable[[Step, torch.Tensor], None]] = (),
    diverged: Callable[[Step, float], str] = _diverged,
) -> None:
    """Run the phases (see the module docstring). ``loss(step)`` draws its batch and returns the
    step's loss; a NaN or infinite total raises :class:`TrainingDiverged` with ``diverged(step, loss)``."""
    iteration = 0
    for index, phase in enumerate(phases):
        if phase.start is not None:
            phase.start()
        if phase.steps <= 0:
            continue
        optimizer, schedule = phase.optimizer()
        for step_index in range(phase.steps):
            iteration += 1
            rate = schedule.get_last_lr()[0] if schedule is not None else optimizer.param_groups[0]["lr"]
            step = Step(iteration, index, step_index, float(rate))
            total = loss(step)
            for extra in extra_losses:
                total = total + extra(step)
            if not torch.isfinite(total):
                raise TrainingDiverged(diverged(step, total.item()))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if phase.clip is not None:
                torch.nn.utils.clip_grad_norm_(phase.clip[0], phase.clip[1])
            optimizer.step()
            if schedule is not None:
                schedule.step()
            for callback in callbacks:
                callback(step, total)


@contextmanager
def seeded(seed: int, deterministic: bool) -> Iterator[None]:
    """Seed python, numpy and torch for the block, then give the caller back its RNG states."""
    py_state, np_state = random.getstate(), np.random.get_state()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
            random.setstate(py_state)
            np.random.set_state(np_state)


def phase_starts(model: torch.nn.Module, iterations: int) -> list[int]:
    """First iteration (1-based) of each training phase the model asks for."""
    if not hasattr(model, "set_phase"):
        return [1]
    lengths = [float(x) for x in getattr(model, "training_phases", (1.0,))]
    if not lengths or min(lengths) < 0 or sum(lengths) <= 0:
        raise ValueError(f"training_phases must be non-negative relative lengths, got {lengths}")
    bounds = np.cumsum([0.0, *lengths])[:-1] / sum(lengths)
    return [1 + int(round(b * iterations)) for b in bounds]


def make_optimizer(model: torch.nn.Module, spec: TrainSpec, steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters in this phase")
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    return optimizer, scheduler


def batch_source(train: Sequence[TrainingCase], spec: TrainSpec, dims: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches (seed torch first: TorchIO draws from its RNG)."""
    # TorchIO only here: the loops that use the core alone (sli2vol, the coreset encoder) skip its import.
    from slicebudget.training.augment import build_augmentation
    from slicebudget.training.samplers import SliceBatchSampler, build_patch_queue, patch_batches

    transform = build_augmentation() if spec.augment else None
    if dims == 2:
        return iter(SliceBatchSampler(train, spec.batch_size, spec.seed, spec.slice_size, transform))
    if spec.patch_size is None:
        raise ValueError("3D training needs spec.patch_size")
    queue = build_patch_queue(train, spec.patch_size, spec.sampling, spec.samples_per_volume, spec.queue_length)
    return patch_batches(queue, spec.batch_size, transform)


def validation_dice(
    model: torch.nn.Module, val: Sequence[EvalCase], spec: TrainSpec, dims: int, n_classes: int
) -> float:
    """Mean over cases of the mean foreground-class Dice (a class absent from both scores 1)."""
    from slicebudget.metrics import dice

    scores = []
    for case in val:
        probabilities = predict_case(model, case.image, dims, spec.patch_size, batch_size=spec.batch_size)
        prediction = probabilities.argmax(axis=0)
        scores.append(np.mean([dice(prediction == k, case.label == k) for k in range(1, n_classes)]))
    return float(np.mean(scores))


def compute_loss(model: torch.nn.Module, outputs, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "compute_loss"):
        return model.compute_loss(outputs, target, ~mask)
    return masked_dice_ce_loss(logits_from_output(outputs), target, mask)


def train_model(
    model: torch.nn.Module,
    train: list[TrainingCase],
    val: list[EvalCase],
    spec: TrainSpec,
    dims: int,
    n_classes: int,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on sparse labels; return it with the best validation weights loaded.

    ``history`` holds one dict per validation (iteration, mean training loss since the previous
    validation, learning rate, phase, validation Dice); ``on_progress`` gets a dict every iteration
    (iteration, iterations, loss, phase, seconds, plus the validation record when there is one).
    Without validation cases the final weights are kept and ``best_val_dice`` is NaN.
    Raises :class:`TrainingDiverged` on a NaN or infinite loss.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if not train:
        raise ValueError("no training cases")
    if n_classes < 2:
        raise ValueError(f"n_classes counts background too and must be >= 2, got {n_classes}")
    device = resolve_device(spec.device)
    started = time.perf_counter()
    history: list[dict] = []
    best: dict = {"dice": float("-inf"), "state": None}
    window_losses: list[float] = []

    def start_phase(index: int):
        return (lambda: model.set_phase(index)) if hasattr(model, "set_phase") else None

    def batch_loss(step: Step) -> torch.Tensor:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        return compute_loss(model, model(batch["image"]), batch["target"], batch["mask"])

    def record(step: Step, loss: torch.Tensor) -> None:
        window_losses.append(loss.item())
        progress = {"iteration": step.iteration, "iterations": spec.iterations, "loss": window_losses[-1],
                    "phase": step.phase}
        if step.iteration % spec.val_every == 0 or step.iteration == spec.iterations:
            entry = {
                "iteration": step.iteration,
                "train_loss": float(np.mean(window_losses)),
                "learning_rate": step.learning_rate,
                "phase": step.phase,
                "val_dice": validation_dice(model, val, spec, dims, n_classes) if val else float("nan"),
            }
            window_losses.clear()
            if val and entry["val_dice"] > best["dice"]:
                best["dice"] = entry["val_dice"]
                best["state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            history.append(entry)
            progress = {**progress, **entry}
        progress["seconds"] = time.perf_counter() - started
        if on_progress is not None:
            on_progress(progress)

    def diverged(step: Step, loss: float) -> str:
        return (f"training diverged: loss is {loss} at iteration {step.iteration} "
                f"(learning rate {step.learning_rate:.3g}); try a lower learning rate")

    with seeded(spec.seed, deterministic=device.type == "cpu"):
        model.to(device)
        model.train()
        batches = batch_source(train, spec, dims)
        bounds = [*phase_starts(model, spec.iterations), spec.iterations + 1]
        # A phase whose first iteration lies beyond the run never starts (its set_phase is not called).
        phases = [Phase(end - first, lambda steps=end - first: make_optimizer(model, spec, steps), start_phase(i))
                  for i, (first, end) in enumerate(zip(bounds[:-1], bounds[1:])) if first <= spec.iterations]
        fit(phases, batch_loss, callbacks=[record], diverged=diverged)
    best_state, best_dice = best["state"], best["dice"]
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=copy.deepcopy(history),
        best_val_dice=best_dice if best_state is not None else float("nan"),
        seconds=time.perf_counter() - started,
    )
