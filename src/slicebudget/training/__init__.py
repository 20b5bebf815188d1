"""Training on sparse labels: masked losses, 2D slice / 3D patch samplers, and one training core
(:func:`slicebudget.training.fit.fit`) that every loop runs on.

Names are imported on first use, so ``slicebudget.training.fit`` alone does not pull in TorchIO.
"""

import importlib

_EXPORTS = {
    "train_model": "slicebudget.training.fit",
    "masked_dice_ce_loss": "slicebudget.training.losses",
    "SliceBatchSampler": "slicebudget.training.samplers",
    "build_patch_queue": "slicebudget.training.samplers",
    "patch_batches": "slicebudget.training.samplers",
    "EvalCase": "slicebudget.training.spec",
    "TrainingCase": "slicebudget.training.spec",
    "TrainingDiverged": "slicebudget.training.spec",
    "TrainResult": "slicebudget.training.spec",
    "TrainSpec": "slicebudget.training.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'slicebudget.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
