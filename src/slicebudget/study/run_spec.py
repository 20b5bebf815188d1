"""The typed spec of one run: what ``execute_run`` reads, validated once when the run starts.

The grid builds each spec as plain JSON (that is what a Dask worker receives, what the store keeps
and what the run id hashes; see :mod:`slicebudget.study.grid`); :meth:`RunSpec.of` turns it into
this frozen model, and :meth:`RunSpec.to_json` gives the same JSON back.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slicebudget.study.config import ModelConfig, TrainingConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DatasetRef(_Frozen):
    name: str
    fingerprint: str


class Split(_Frozen):
    train: tuple[str, ...]
    test: tuple[str, ...]
    source: str  # "imagesTs" or "test_fraction"


with warnings.catch_warnings():
    # The stored spec carries the label ModelConfig computes as a property; the field replacing that
    # property is intended, and pydantic's warning about it reached users' terminals as noise.
    warnings.filterwarnings("ignore", message='Field name "display_name"', category=UserWarning)

    class RunModel(ModelConfig):
        display_name: str


class RunSpec(_Frozen):
    spec_schema: int = Field(alias="schema")
    dataset: DatasetRef
    split: Split
    classes: dict[str, int]  # class name -> label value, background left out
    density: float
    volume_fraction: float
    policy: str | dict[str, Any]  # a name, or {name, <parameters>, scope, quota} (see config.policy_label)
    repeat: int
    interpolation: str  # "off", or a propagation method with its parameters (e.g. "sli2vol:model=adapt")
    is_dense_baseline: bool
    selection_seed: int
    train_seed: int
    n_volumes: int
    n_volumes_total: int
    model: RunModel
    training: TrainingConfig

    @classmethod
    def of(cls, spec: RunSpec | dict) -> RunSpec:
        return spec if isinstance(spec, RunSpec) else cls.model_validate(spec)

    def to_json(self) -> dict:
        out = self.model_dump(mode="json", by_alias=True)
        if out["training"].get("sampling") is None:
            out["training"].pop("sampling", None)  # as the grid writes it (see grid._training_json)
        return out

    @property
    def class_ids(self) -> list[int]:
        return sorted(self.classes.values())

    @property
    def n_classes(self) -> int:
        return max(self.class_ids) + 1  # background included
