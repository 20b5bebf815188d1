"""The plain data that training takes and returns: cases, the training spec, the result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slicebudget.volume import SparseAnnotation

# Patch-centre groups a 3D sampler understands. "class_<id>" keys (e.g. "class_2") may be given as
# well, to weight one foreground class on its own (the paper's LiTS17 setting weighs liver and tumour
# separately); the "foreground" weight then covers only the classes without a key of their own.
SAMPLING_GROUPS = ("foreground", "background", "unannotated")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the study marks the run as failed."""


@dataclass(frozen=True, eq=False)
class TrainingCase:
    """One training volume: a normalised image (C, D, H, W) and its sparse annotation (D, H, W)."""

    case_id: str
    image: np.ndarray
    annotation: SparseAnnotation

    def __post_init__(self):
        if self.image.ndim != 4:
            raise ValueError(f"{self.case_id}: image must be (C, D, H, W), got shape {self.image.shape}")
        if self.image.shape[1:] != self.annotation.labels.shape:
            raise ValueError(
                f"{self.case_id}: image grid {self.image.shape[1:]} differs from labels {self.annotation.labels.shape}"
            )


@dataclass(frozen=True, eq=False)
class EvalCase:
    """One validation or test volume with its dense ground truth and spacing (mm per canonical axis)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if self.image.ndim != 4:
            raise ValueError(f"{self.case_id}: image must be (C, D, H, W), got shape {self.image.shape}")
        if self.image.shape[1:] != self.label.shape:
            raise ValueError(f"{self.case_id}: image grid {self.image.shape[1:]} differs from label {self.label.shape}")


class TrainSpec(BaseModel):
    """How to train one model. Configs are data: a study stores this beside every run.

    ``sampling`` gives 3D patch-centre probabilities per group (need not sum to one; TorchIO
    normalises them). ``slice_size`` crops (or pads) 2D training slices to a fixed in-plane size;
    without it every slice is padded to the largest in-plane size, rounded up to a multiple of 32.
    ``samples_per_volume`` and ``queue_length`` size the TorchIO patch queue (3D only).
    The schedule is AdamW with cosine decay, as MIST uses.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    iterations: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    val_every: int = Field(gt=0)
    seed: int = 0
    device: str | None = None
    augment: bool = True
    patch_size: tuple[int, int, int] | None = None
    sampling: dict[str, float] = Field(
        default_factory=lambda: {"foreground": 0.5, "background": 0.3, "unannotated": 0.2}
    )
    slice_size: tuple[int, int] | None = None
    weight_decay: float = Field(default=1e-5, ge=0)
    samples_per_volume: int = Field(default=8, gt=0)
    queue_length: int = Field(default=64, gt=0)

    @field_validator("sampling")
    @classmethod
    def _check_sampling(cls, value: dict[str, float]) -> dict[str, float]:
        for key, weight in value.items():
            is_class_key = key.startswith("class_") and key[len("class_") :].isdigit()
            if key not in SAMPLING_GROUPS and not is_class_key:
                raise ValueError(
                    f"unknown sampling group {key!r}; valid: {', '.join(SAMPLING_GROUPS)} or class_<id>"
                )
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"sampling weight for {key!r} must be a finite number >= 0, got {weight}")
        if not value or sum(value.values()) <= 0:
            raise ValueError("sampling weights must not all be zero")
        return value

    @model_validator(mode="after")
    def _check_sizes(self) -> TrainSpec:
        if self.patch_size is not None and min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be positive, got {self.patch_size}")
        if self.slice_size is not None and min(self.slice_size) < 1:
            raise ValueError(f"slice_size must be positive, got {self.slice_size}")
        return self


@dataclass(eq=False)
class TrainResult:
    """The trained model (best validation weights loaded, in eval mode) and what happened."""

    model: object
    history: list[dict] = field(default_factory=list)
    best_val_dice: float = float("nan")
    seconds: float = 0.0
