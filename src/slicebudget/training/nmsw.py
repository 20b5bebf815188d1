"""Training NMSW end to end on whole volumes, with dense or sparse (slice) labels.

One iteration, following the paper: the global network sees the downsampled volume and scores the
N patch positions; K = 3 patches are taken, two by differentiable Gumbel top-K without replacement
(temperature ``tau`` annealed from 2 to 0.33 over the run) and one uniformly at random among the
rest, for exploration; the local network predicts them; the aggregation blends them with the
upsampled global prediction. Loss (Eq. 7), each term Dice + cross-entropy on annotated voxels only:

    L = L(y, up(y_low)) + mean_k L(y_patch_k, y_hat_patch_k) + L(y, y_high) - lambda * H(p(z | x_low))

The low-resolution term scores the coarse prediction against nearest-sampled labels when labels are
dense, and after upsampling to full resolution when they are sparse, so an annotated slice counts
fully even when it falls between low-resolution samples.

Sign of the entropy term: the paper adds it "to promote diversity in patch selection" and shows the
distribution staying well spread; *subtracting* lambda * H (lambda = 1e-4 > 0) is what does that when
the loss is minimised, so that is the sign used here (the printed "+ lambda H" would sharpen it).

``train_local=False`` freezes the local network (e.g. the backbone a study already trained with the
sliding window in mind), so NMSW only learns where to look and how to blend. The learned
top-K patches still pass their gradient through the frozen network to the selection.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from slicebudget.models.nmsw.aggregate import blend_predictions
from slicebudget.models.nmsw.model import NMSWModel
from slicebudget.models.nmsw.patches import extract_patches, select_patches
from slicebudget.models.nmsw.topk import annealed_tau, distribution_entropy, gumbel_topk
from slicebudget.models.outputs import logits_from_output, resolve_device
from slicebudget.training.fit import Phase, Step, fit, seeded
from slicebudget.training.losses import masked_dice_ce_loss
from slicebudget.training.spec import TrainingCase, TrainingDiverged

GRAD_CLIP = 12.0  # nnU-Net's clip norm; whole-volume losses can spike early on


@dataclass(eq=False)
class NMSWTrainResult:
    """The trained model (eval mode), what the checkpoint should record, and the loss history."""

    model: NMSWModel
    training: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _case_tensors(case: TrainingCase, patch_size: tuple[int, int, int], device) -> tuple[torch.Tensor, ...]:
    """Image (1, C, D, H, W), target (D, H, W) int64 and mask (D, H, W) bool, padded to >= one patch."""
    image = torch.from_numpy(np.ascontiguousarray(case.image, dtype=np.float32))
    target = torch.from_numpy(case.annotation.labels.astype(np.int64))
    mask = torch.from_numpy(np.ascontiguousarray(case.annotation.voxel_mask()))
    missing = [max(0, p - s) for p, s in zip(patch_size, target.shape, strict=True)]
    if any(missing):  # padding is never annotated, so it adds nothing to any loss
        pads = [v for axis in reversed(range(3)) for v in (missing[axis] // 2, missing[axis] - missing[axis] // 2)]
        image, target, mask = F.pad(image, pads), F.pad(target, pads), F.pad(mask, pads)
    return image[None].to(device), target.to(device), mask.to(device)


def _patch_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor, grid) -> torch.Tensor:
    losses = []
    for k, start in enumerate(starts.tolist()):
        region = grid.region(start)
        losses.append(masked_dice_ce_loss(logits[k : k + 1], target[region][None], mask[region][None]))
    return torch.stack(losses).mean()


def _low_resolution_loss(coarse: torch.Tensor, up: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dice + CE of the global prediction: on the low-resolution grid against nearest-sampled labels
    when every voxel is annotated (the paper's L(y_low, y_hat_low), and 1/8 of the work); after
    upsampling when labels are sparse, since annotated slices may fall between low-resolution samples."""
    if bool(mask.all()):
        low_target = F.interpolate(target[None, None].float(), size=coarse.shape[2:], mode="nearest")[:, 0].long()
        return masked_dice_ce_loss(coarse, low_target, torch.ones_like(low_target, dtype=torch.bool))
    return masked_dice_ce_loss(up[None], target[None], mask[None])


def nmsw_step(
    model: NMSWModel,
    image: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    tau: float,
    k: int,
    random_patches: int,
    entropy_weight: float,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, dict]:
    """The loss of one whole volume (1, C, D, H, W) and its parts (floats)."""
    shape = tuple(image.shape[2:])
    grid = model.grid(shape)
    starts = grid.starts().to(image.device)
    coarse, patch_logits = model.global_forward(image, grid)
    n_random = min(random_patches, max(grid.n_patches - 1, 0), k - 1) if k > 1 else 0
    sample = gumbel_topk(patch_logits[0], min(k - n_random, grid.n_patches), tau, generator)
    learned = select_patches(image[0], grid, sample.selection, sample.indices)
    remaining = np.setdiff1d(np.arange(grid.n_patches), sample.indices.cpu().numpy())
    random_index = torch.as_tensor(rng.choice(remaining, size=n_random, replace=False), dtype=torch.int64)
    random_index = random_index.to(image.device)
    patches = torch.cat([learned, extract_patches(image[0], grid, starts[random_index])])
    chosen = torch.cat([sample.indices, random_index])
    weights = torch.cat([sample.weights, sample.weights.new_ones(n_random)])
    local_logits = logits_from_output(model.local_net(patches))
    up = model.upsample(coarse, shape)[0]
    high = blend_predictions(up, local_logits, starts[chosen], grid, model.class_logit, weights)
    parts = {
        "low": _low_resolution_loss(coarse, up, target, mask),
        "patch": _patch_loss(local_logits, target, mask, starts[chosen], grid),
        "high": masked_dice_ce_loss(high[None], target[None], mask[None]),
        "entropy": distribution_entropy(patch_logits[0]),
    }
    loss = parts["low"] + parts["patch"] + parts["high"] - entropy_weight * parts["entropy"]
    return loss, {name: float(value.detach()) for name, value in parts.items()}


def _warm_up_loss(model: NMSWModel, tensors, rng: np.random.Generator) -> torch.Tensor:
    """One step of the global warm-up: the coarse segmentation alone (low-resolution loss only).

    Not in the paper, which trains end to end for 150k iterations; on a CPU budget of a few hundred
    iterations, a cheap head start on the coarse prediction gives the patch distribution something
    to condition on from the first end-to-end step.
    """
    image, target, mask = tensors[int(rng.integers(len(tensors)))]
    coarse, _ = model.global_forward(image, model.grid(image.shape[2:]))
    up = model.upsample(coarse, image.shape[2:])[0] if not bool(mask.all()) else None
    return _low_resolution_loss(coarse, up, target, mask)


def train_nmsw(
    model: NMSWModel,
    cases: Sequence[TrainingCase],
    iterations: int,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-5,
    k: int = 3,
    random_patches: int = 1,
    tau_start: float = 2.0,
    tau_end: float = 0.33,
    entropy_weight: float = 1e-4,
    train_local: bool = True,
    global_warmup: int = 0,
    head_lr_scale: float = 20.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> NMSWTrainResult:
    """Train a copy of ``model`` (the input is left untouched) on whole volumes; AdamW, cosine decay.

    ``cases``: normalised images (C, D, H, W) with sparse or dense annotations, as for the backbone.
    Returns the trained copy in eval mode and the facts a checkpoint keeps (``training``: the tau
    schedule and its final value, k, seed, ...). Raises TrainingDiverged on a non-finite loss.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if not cases:
        raise ValueError("no training cases")
    if k < 1 or random_patches < 0:
        raise ValueError(f"need k >= 1 and random_patches >= 0, got {k} and {random_patches}")
    device = resolve_device(device)
    started = time.perf_counter()
    trained = copy.deepcopy(model).to(device)
    trained.train()
    trained.local_net.requires_grad_(train_local)
    if not train_local:
        trained.local_net.eval()  # frozen: no dropout / batch-norm updates either
    head = list(trained.patch_head.parameters())
    params = [p for p in trained.parameters() if p.requires_grad]
    others = [p for p in params if all(p is not h for h in head)]

    def warm_up_optimizer():
        global_params = [p for p in trained.global_net.parameters() if p.requires_grad]
        return torch.optim.AdamW(global_params, lr=learning_rate, weight_decay=weight_decay), None

    def end_to_end_optimizer():
        optimizer = torch.optim.AdamW(
            [{"params": others}, {"params": head, "lr": learning_rate * head_lr_scale, "weight_decay": 0.0}],
            lr=learning_rate, weight_decay=weight_decay,
        )
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)

    phases = [Phase(global_warmup, warm_up_optimizer), Phase(iterations, end_to_end_optimizer, clip=(params, GRAD_CLIP))]
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    tensors = [_case_tensors(case, trained.patch_size, device) for case in cases]
    history: list[dict] = []
    current = {"tau": tau_start, "parts": {}}

    def step_loss(step: Step) -> torch.Tensor:
        if step.phase == 0:
            return _warm_up_loss(trained, tensors, rng)
        current["tau"] = annealed_tau(step.step, iterations, tau_start, tau_end)
        image, target, mask = tensors[int(rng.integers(len(tensors)))]
        loss, current["parts"] = nmsw_step(trained, image, target, mask, current["tau"], k, random_patches,
                                           entropy_weight, generator, rng)
        return loss

    def record(step: Step, loss: torch.Tensor) -> None:
        if step.phase == 0:
            entry = {"warmup": step.step + 1, "warmup_steps": global_warmup, "loss": float(loss.detach())}
        else:
            entry = {"iteration": step.step + 1, "iterations": iterations, "loss": float(loss.detach()),
                     "tau": current["tau"], **current["parts"], "seconds": time.perf_counter() - started}
            history.append(entry)
        if on_progress is not None:
            on_progress(entry)

    def diverged(step: Step, loss: float) -> str:
        where = "warm-up step" if step.phase == 0 else "iteration"
        return f"NMSW training diverged: loss is {loss} at {where} {step.step + 1}"

    with seeded(seed, deterministic=device.type == "cpu"):
        fit(phases, step_loss, callbacks=[record], diverged=diverged)
    tau = current["tau"]
    trained.requires_grad_(True)
    training = {
        "iterations": iterations, "tau_start": tau_start, "tau_end": tau_end, "tau": tau, "k": k,
        "random_patches": random_patches, "entropy_weight": entropy_weight, "learning_rate": learning_rate,
        "train_local": train_local, "global_warmup": global_warmup, "head_lr_scale": head_lr_scale, "seed": seed,
        "class_weight": torch.sigmoid(trained.class_logit.detach()).cpu().tolist(),
    }
    return NMSWTrainResult(trained.eval(), training, history, time.perf_counter() - started)


# The one recipe for NMSW around a trained backbone: what `budget-study bench inference` measures is
# what a study runs. These are the benchmark's settings (2026-12-02): the global network's
# warm-up gets three low-resolution steps per end-to-end iteration (a low-resolution step costs about
# a tenth of a whole-volume one), its own learning rate (the backbone's is tuned for patch training,
# not for the global network and patch head), K = 3 patches per training volume (two learned, one
# random), and the backbone frozen.
RECIPE_LEARNING_RATE = 2e-3
RECIPE_WARMUP_PER_ITERATION = 3
RECIPE_K = 3


def train_nmsw_recipe(
    model: NMSWModel,
    cases: Sequence[TrainingCase],
    iterations: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> NMSWTrainResult:
    """Train NMSW's global network and patch head around ``model``'s (trained) local network, which
    stays frozen; the study and the inference benchmark both call this, so they share every setting."""
    return train_nmsw(model, cases, iterations, learning_rate=RECIPE_LEARNING_RATE, k=RECIPE_K, train_local=False,
                      global_warmup=RECIPE_WARMUP_PER_ITERATION * iterations, seed=seed, device=device,
                      on_progress=on_progress)
