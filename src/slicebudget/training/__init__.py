"""Training on sparse labels: masked losses, 2D slice / 3D patch samplers, one loop."""

from slicebudget.training.fit import train_model
from slicebudget.training.losses import masked_dice_ce_loss
from slicebudget.training.samplers import SliceBatchSampler, build_patch_queue, patch_batches
from slicebudget.training.spec import (
    EvalCase,
    TrainingCase,
    TrainingDiverged,
    TrainResult,
    TrainSpec,
)

__all__ = [
    "EvalCase",
    "SliceBatchSampler",
    "TrainResult",
    "TrainSpec",
    "TrainingCase",
    "TrainingDiverged",
    "build_patch_queue",
    "masked_dice_ce_loss",
    "patch_batches",
    "train_model",
]
