"""Med-DANet V2: per-slice dynamic inference with a skip / whole / crop policy and a U-Net whose
stages pick their weight bit width per slice.

Per slice (B, C, H, W): the policy network chooses skip (all background, only the policy's cost),
the whole slice, or a ``crop_size`` window (paper: {Skip, 96, Whole}); for a crop the crop-position
network regresses the centre, the window is cut by bilinear sampling, the U-Net runs on it up to its
last decoder stage, the features (and the first skip) are placed back into the full slice by the
inverse translation, and the size-independent last stage produces full-size logits. With
quantisation on (the paper's phases 2 and 3), a bit selector before each U-Net stage picks 8 or 16
bits.

Training mode: every branch runs on every slice; the policy's choice is a straight-through
Gumbel-softmax sample (argmax once the policy is frozen) and the returned logits are the log of the
chosen branch's probabilities. The branch outputs, the choice and the differentiable per-slice
costs are kept in ``train_outputs_`` for :meth:`compute_loss`. Eval mode: only the chosen branch runs for each slice
(skipped slices cost only the policy); the logits are plain (B, K, H, W), and ``last_decisions_``,
``last_gflops_`` (FlopCounterMode FLOPs, 2 per MAC, /1e9) and ``last_bit_gflops_`` (each U-Net
stage's FLOPs scaled by bits/32, the paper's GFLOPs(Q_b(w), b)) describe each slice.

Choices where the paper is silent:
- The GFLOPs loss is the slice's bit-weighted cost divided by the static full-precision U-Net's
  cost at the same slice size, so lambda = 0.06 means the same at any slice size (the paper used
  absolute GFLOPs on 240 x 240 BraTS slices).
- The choice mixes per-slice branch *losses*: ``sum_k g_k (Dice_k + w * CE_k + lambda * cost_k)``
  with g the hard Gumbel-softmax sample. Its value is the loss of the chosen output plus lambda *
  its GFLOPs (the paper's loss, plus ``decision_ce_weight`` w times the slice's cross-entropy), but
  its gradient compares the options directly; mixing the outputs (a linearised gradient) drove the
  policy to skip every slice in our runs on organ phantoms. The cross-entropy term is ours too:
  with Dice alone (w = 0) the policy skipped 73 % of test slices (43 % are empty) and lost 0.33
  Dice; w = 0.1 skipped 78 % (-0.43 Dice); w = 1 never skipped. w = 0.3 (the default) skipped 14 %
  and cropped the rest: 1.95x fewer FLOPs at -0.018 Dice (``budget-study bench models
  --meddanet-only``). These short CPU runs are noisy; the weight is a tuning knob, not a finding.
- The policy head starts biased towards "whole slice" (the safe choice); skipping is learnt.
  Without the bias, an empty slice's gain from skipping (soft Dice punishes any stray foreground,
  ~0.5) outweighs a missed organ slice's loss (~0.2-0.3) before the policy can tell them apart.
- Besides the chosen branch, the whole and crop branches are each supervised by Dice +
  cross-entropy (``branch_weight``), so the U-Net learns both modes while the policy explores (the
  paper only says Dice supervises the network).
- Phases, 0-based as the generic training loop counts them (``set_phase``), relative lengths
  2:2:2:1 (the paper's 200/100/50 epochs with its first phase halved):
  0 = U-Net warm-up, full precision, whole and centre-crop branches, policy off (every slice "whole");
  1 = policy + full-precision U-Net (the paper's first phase); crops at the untrained crop
  network's default, the slice centre;
  2 = crop network + bit selectors + quantised U-Net, policy frozen at its argmax;
  3 = everything.
  The warm-up is ours: a policy trained against an untrained U-Net finds skipping every slice
  cheapest and most accurate, and its softmax then saturates so it never recovers (we saw it
  choose "skip" for 100 % of slices within 20 steps).
- Inputs are padded to a multiple of 16; a crop is only offered when the window is smaller than
  the padded slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slicebudget.models.meddanet_v2.crop import centre_from_fraction, crop_window, place_window
from slicebudget.models.meddanet_v2.loss import (
    masked_cross_entropy,
    mean_over_valid_slices,
    per_slice_cross_entropy,
    per_slice_dice_loss,
)
from slicebudget.models.meddanet_v2.policy import CropPositionNetwork, PolicyNetwork
from slicebudget.models.meddanet_v2.unet import QuantUNet2d
from slicebudget.models.padding import crop_to_size, pad_to_multiple

CHOICES = ("skip", "full", "crop")
SKIP, FULL, CROP = 0, 1, 2
FULL_PRECISION_BITS = 32
BACKGROUND_MARGIN = 30.0  # logit gap of a skipped slice: background probability 1 - 1e-13
POLICY_FULL_BIAS = 1.0  # initial logit advantage of "whole slice": start safe, learn to save


@dataclass(frozen=True)
class SliceDecision:
    """What the dynamic network did with one slice in eval mode."""

    choice: str
    centre: tuple[float, float] | None  # crop centre (row, column) in pixels of the padded slice
    bits: tuple[int, ...] | None  # weight bits per U-Net stage, None = full precision / not run
    gflops: float
    bit_gflops: float


class MedDANetV2(nn.Module):
    """(B, C, H, W) -> (B, K, H, W) logits; see the module docstring."""

    training_phases = (2.0, 2.0, 2.0, 1.0)

    def __init__(self, in_channels: int, classes: int, base_channels: int = 16, crop_size: int = 96,
                 bit_choices: tuple[int, ...] = (8, 16), flops_weight: float = 0.06, tau: float = 1.0,
                 branch_weight: float = 1.0, decision_ce_weight: float = 0.3):
        super().__init__()
        self.unet = QuantUNet2d(in_channels, classes, base_channels, bit_choices=bit_choices)
        if crop_size < self.unet.stride or crop_size % self.unet.stride:
            raise ValueError(f"crop_size must be a positive multiple of {self.unet.stride}, got {crop_size}")
        self.classes = classes
        self.crop_size = int(crop_size)
        self.bit_choices = tuple(int(b) for b in bit_choices)
        self.flops_weight = float(flops_weight)
        self.tau = float(tau)
        self.branch_weight = float(branch_weight)
        self.decision_ce_weight = float(decision_ce_weight)
        self.policy = PolicyNetwork(in_channels, len(CHOICES))
        with torch.no_grad():
            self.policy.head.bias[FULL] += POLICY_FULL_BIAS
        self.crop_net = CropPositionNetwork(in_channels)
        self.phase_ = len(self.training_phases) - 1
        self.train_outputs_: dict | None = None
        self.last_decisions_: list[SliceDecision] = []
        self.last_gflops_ = torch.zeros(0)
        self.last_bit_gflops_ = torch.zeros(0)

    # ---- phases -------------------------------------------------------------------------------
    def set_phase(self, phase: int) -> None:
        """Select what trains: 0 U-Net warm-up, 1 policy + U-Net, 2 crop net + quantised U-Net, 3 all."""
        if phase not in range(len(self.training_phases)):
            raise ValueError(f"phase must be one of 0..{len(self.training_phases) - 1}, got {phase}")
        self.phase_ = int(phase)
        trainable = {
            self.policy: phase in (1, 3),
            self.crop_net: phase in (2, 3),
            self.unet: True,
            self.unet.selectors: phase in (2, 3),
        }
        for module, flag in trainable.items():
            module.requires_grad_(flag)
        self.train(self.training)

    def train(self, mode: bool = True) -> MedDANetV2:
        super().train(mode)
        if mode:  # frozen parts keep their BatchNorm statistics
            if self.phase_ in (0, 1):
                self.crop_net.eval()
            if self.phase_ in (0, 2):
                self.policy.eval()
        return self

    @property
    def quantize(self) -> bool:
        return self.phase_ >= 2

    # ---- costs --------------------------------------------------------------------------------
    def _crop_possible(self, size: tuple[int, int]) -> bool:
        return self.crop_size < min(size)

    def cost_table(self, size: tuple[int, int]) -> dict:
        """FLOPs per slice of every part at a padded slice ``size`` (computed from layer shapes)."""
        full = self.unet.stage_flops(size)
        crop = self.unet.stage_flops((self.crop_size, self.crop_size))
        crop[-1] = full[-1]  # the last stage runs on the placed, full-size features
        return {
            "policy": self.policy.flops(),
            "crop_net": self.crop_net.flops(),
            "selectors": self.unet.selector_flops() if self.quantize else 0,
            "full": full,
            "crop": crop,
            "static": sum(full),
        }

    def _unet_cost(self, stage_flops: list[int], bits: list, weighted: bool, batch: int) -> torch.Tensor:
        """(B,) U-Net FLOPs, optionally scaled by each stage's bits / 32 (differentiable in the bits)."""
        values = torch.tensor(self.bit_choices, dtype=torch.float32)
        total = torch.zeros(batch)
        for flops, stage_bits in zip(stage_flops, bits):
            if weighted and stage_bits is not None:
                factor = (stage_bits * values.to(stage_bits)).sum(dim=1) / FULL_PRECISION_BITS
                total = total.to(factor) + flops * factor
            else:
                total = total + flops
        return total

    # ---- forward ------------------------------------------------------------------------------
    def _policy_logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.policy(x)
        if not self._crop_possible(tuple(x.shape[2:])):
            blocked = torch.zeros_like(logits, dtype=torch.bool)
            blocked[:, CROP] = True
            logits = logits.masked_fill(blocked, float("-inf"))
        return logits

    def _crop_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, list, torch.Tensor]:
        size = tuple(x.shape[2:])
        centre = centre_from_fraction(self.crop_net(x), self.crop_size, size)
        window = crop_window(x, centre, self.crop_size)
        features, skip, bits = self.unet.features_before_last(window, self.quantize)
        features = place_window(features, centre, self.crop_size, size)
        skip = place_window(skip, centre, self.crop_size, size)
        logits, last_bits = self.unet.last_stage(features, skip, self.quantize)
        return logits, [*bits, last_bits], centre

    def _background_logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.new_full((x.shape[0], self.classes, *x.shape[2:]), -BACKGROUND_MARGIN)
        logits[:, 0] = 0.0
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"MedDANetV2 takes (B, C, H, W) slices, got shape {tuple(x.shape)}")
        padded, size = pad_to_multiple(x, self.unet.stride)
        if self.training:
            return self._train_forward(padded, size)
        self.train_outputs_ = None
        return crop_to_size(self._eval_forward(padded), size)

    def _train_forward(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        table = self.cost_table(tuple(x.shape[2:]))
        policy_logits = self._policy_logits(x)
        if self.phase_ == 0:
            choice = F.one_hot(torch.full_like(policy_logits[:, 0], FULL, dtype=torch.long), len(CHOICES)).to(x.dtype)
        elif self.phase_ == 2:
            choice = F.one_hot(policy_logits.argmax(dim=1), len(CHOICES)).to(x.dtype)
        else:
            choice = F.gumbel_softmax(policy_logits, tau=self.tau, hard=True)
        full_logits, full_bits = self.unet(x, self.quantize)
        background = torch.softmax(self._background_logits(x), dim=1)
        probs = choice[:, SKIP, None, None, None] * background
        probs = probs + choice[:, FULL, None, None, None] * torch.softmax(full_logits, dim=1)
        full_cost = self._unet_cost(table["full"], full_bits, True, x.shape[0]) + table["selectors"]
        skip_cost = torch.full_like(full_cost, float(table["policy"]))
        branch_costs = [skip_cost, full_cost + table["policy"], torch.zeros_like(full_cost)]
        crop_logits = None
        if self._crop_possible(tuple(x.shape[2:])):
            crop_logits, crop_bits, _ = self._crop_branch(x)
            probs = probs + choice[:, CROP, None, None, None] * torch.softmax(crop_logits, dim=1)
            crop_cost = self._unet_cost(table["crop"], crop_bits, True, x.shape[0]) + table["selectors"]
            branch_costs[CROP] = crop_cost + table["policy"] + table["crop_net"]
        cost = sum(choice[:, k] * branch_costs[k] for k in range(len(CHOICES)))
        static = table["static"]
        self.train_outputs_ = {
            "skip": crop_to_size(self._background_logits(x), size),
            "full": crop_to_size(full_logits, size),
            "crop": None if crop_logits is None else crop_to_size(crop_logits, size),
            "choice": choice,
            "branch_cost": torch.stack(branch_costs, dim=1) / static,  # (B, 3)
            "cost": cost / static,
        }
        return crop_to_size(torch.log(probs.clamp_min(1e-8)), size)

    def _eval_forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, size = x.shape[0], tuple(x.shape[2:])
        table = self.cost_table(size)
        choice = self._policy_logits(x).argmax(dim=1)
        out = self._background_logits(x)
        raw = torch.full((batch,), float(table["policy"]))
        weighted = raw.clone()
        centres: dict[int, tuple[float, float]] = {}
        bits_of: dict[int, tuple[int, ...]] = {}
        for branch in (FULL, CROP):
            index = (choice == branch).nonzero(as_tuple=True)[0]
            if index.numel() == 0:
                continue
            if branch == FULL:
                logits, bits = self.unet(x[index], self.quantize)
                stage_flops, extra = table["full"], table["selectors"]
            else:
                logits, bits, centre = self._crop_branch(x[index])
                stage_flops, extra = table["crop"], table["selectors"] + table["crop_net"]
                centres.update({i: tuple(float(c) for c in row) for i, row in zip(index.tolist(), centre)})
            out[index] = logits
            raw[index] += self._unet_cost(stage_flops, bits, False, index.numel()) + extra
            weighted[index] += self._unet_cost(stage_flops, bits, True, index.numel()).float() + extra
            if self.quantize:
                chosen = torch.stack([self._bit_values(b) for b in bits], dim=1)  # (n, stages)
                bits_of.update({i: tuple(int(v) for v in row) for i, row in zip(index.tolist(), chosen)})
        self.last_gflops_ = raw / 1e9
        self.last_bit_gflops_ = weighted / 1e9
        self.last_decisions_ = [
            SliceDecision(CHOICES[int(c)], centres.get(i), bits_of.get(i), float(raw[i]) / 1e9, float(weighted[i]) / 1e9)
            for i, c in enumerate(choice.tolist())
        ]
        return out

    def _bit_values(self, bits: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.bit_choices)[bits.argmax(dim=1).cpu()]

    def static_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The plain full-precision U-Net on whole slices (the static baseline); records its cost."""
        padded, size = pad_to_multiple(x, self.unet.stride)
        logits, _ = self.unet(padded, quantize=False)
        gflops = sum(self.unet.stage_flops(tuple(padded.shape[2:]))) / 1e9
        self.last_gflops_ = torch.full((x.shape[0],), gflops)
        self.last_bit_gflops_ = self.last_gflops_.clone()
        self.last_decisions_ = [SliceDecision("full", None, None, gflops, gflops)] * x.shape[0]
        return crop_to_size(logits, size)

    # ---- loss ---------------------------------------------------------------------------------
    def compute_loss(self, outputs: torch.Tensor, target: torch.Tensor,
                     ignore_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-slice Dice of the chosen branch + lambda * its relative GFLOPs (+ branch supervision).

        After an eval-mode forward (no branch outputs kept) this is the per-slice Dice of ``outputs``.
        """
        valid = torch.ones_like(target, dtype=torch.bool) if ignore_mask is None else ~ignore_mask.bool()
        state = self.train_outputs_
        if state is None:
            return mean_over_valid_slices(per_slice_dice_loss(outputs, target, valid), valid)
        per_choice = torch.zeros_like(state["branch_cost"])
        supervision = outputs.new_zeros(())
        for k, key in enumerate(CHOICES):
            if state[key] is None:
                continue
            dice = per_slice_dice_loss(state[key], target, valid)
            entropy = per_slice_cross_entropy(state[key], target, valid)
            per_choice[:, k] = dice + self.decision_ce_weight * entropy + self.flops_weight * state["branch_cost"][:, k]
            if key != "skip":
                supervision = supervision + mean_over_valid_slices(dice, valid) + masked_cross_entropy(state[key], target, valid)
        chosen = (state["choice"] * per_choice).sum(dim=1)
        return mean_over_valid_slices(chosen, valid) + self.branch_weight * supervision
