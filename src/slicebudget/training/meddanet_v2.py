"""Train Med-DANet V2 through its phases with the paper's schedule, on the shared training core.

A variation of :func:`slicebudget.training.fit.train_model` for the benchmark and for direct use:
explicit steps per phase, AdamW rebuilt per phase with a linear warm-up then polynomial decay, and
a record per step of the policy's choices and compute. The study's ``train_model`` trains the same
model through the ``set_phase`` / ``training_phases`` / ``compute_loss`` hooks instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from slicebudget.training.fit import Phase, Step, fit

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

    Each phase builds an AdamW optimiser over the parameters that phase trains (see
    ``MedDANetV2.set_phase``); a phase of no steps is skipped. The caller seeds torch (Gumbel noise)
    and the batch iterator. Raises TrainingDiverged on a non-finite loss.
    """
    kept = [(phase, steps) for phase, steps in enumerate(phase_steps) if steps > 0]

    def optimizer_for(steps: int):
        def build():
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
            return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, poly_with_warmup(steps))

        return build

    phases = [Phase(steps, optimizer_for(steps), start=lambda phase=phase: model.set_phase(phase)) for phase, steps in kept]
    history: list[dict] = []

    def step_loss(step: Step) -> torch.Tensor:
        image, target, ignore = next(batches)
        return model.compute_loss(model(image), target, ignore)

    def record(step: Step, loss: torch.Tensor) -> None:
        entry = {
            "phase": kept[step.phase][0],
            "step": step.step,
            "loss": float(loss.detach()),
            "relative_cost": float(model.train_outputs_["cost"].detach().mean()),
            "choice_share": model.train_outputs_["choice"].detach().mean(dim=0).tolist(),
        }
        history.append(entry)
        if on_progress is not None:
            on_progress(entry)

    def diverged(step: Step, loss: float) -> str:
        return f"Med-DANet V2 training diverged in phase {kept[step.phase][0]} at step {step.step}"

    model.train()
    fit(phases, step_loss, callbacks=[record], diverged=diverged)
    model.eval()
    return history
