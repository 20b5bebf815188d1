"""The study config: a YAML file validated by a versioned pydantic model.

A study crosses annotation density rho (``densities``), volume fraction s (``volume_fractions``),
slice policies, mask interpolation settings and models, each repeated ``repeats`` times. Invalid
files are refused with one line that names the field, e.g.
``study.yaml: densities.2: Input should be less than or equal to 1``.

Example::

    version: 1
    dataset: {phantom: {task: organ, cases: 8, test_cases: 4, seed: 0, shape: [20, 64, 64]}}
    densities: [0.1, 0.2]
    volume_fractions: [0.5, 1.0]
    policies: [fixed, random]
    interpolation: [off]
    models:
      - {name: unet, encoder: resnet18, dims: 2}
    training: {iterations: 200, batch_size: 8, learning_rate: 0.001, val_every: 50}
    repeats: 2
    seed: 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slicebudget.errors import UserError
from slicebudget.study.choices import (
    OFF,
    known_inference,
    known_interpolation,
    interpolation_spec,
    policy_choice,
    policy_label,
)

CONFIG_VERSION = 1
# Constraints sit on the list items, so an error names the item: "densities.2: Input should be ...".
Share = Annotated[float, Field(gt=0.0, le=1.0)]
PolicyChoice = Annotated[str | dict[str, Any], AfterValidator(policy_choice)]
InterpolationName = Annotated[str, AfterValidator(known_interpolation)]
InferenceName = Annotated[str, AfterValidator(known_inference)]


def _distinct(values: list, what: str) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat, got {values}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhantomSpec(_Strict):
    """A procedural phantom dataset, generated into the study folder when absent."""

    task: str = "organ"
    cases: int = Field(default=8, ge=1)
    test_cases: int = Field(default=4, ge=0)
    seed: int = Field(default=0, ge=0)
    shape: tuple[int, int, int] = (32, 96, 96)
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from slicebudget.data.phantoms import PHANTOM_TASKS

        if value not in PHANTOM_TASKS:
            raise ValueError(f"unknown phantom task {value!r}; choose one of {', '.join(sorted(PHANTOM_TASKS))}")
        return value

    @field_validator("shape")
    @classmethod
    def _big_enough(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        from slicebudget.data.phantoms import MIN_SIZE

        if min(value) < MIN_SIZE:
            raise ValueError(f"every phantom axis needs at least {MIN_SIZE} voxels, got {list(value)}")
        return value


class PhantomDataset(_Strict):
    phantom: PhantomSpec


class InferenceConfig(_Strict):
    """How 3D test volumes are predicted (2D models go slice by slice).

    ``name``: a key of ``slicebudget.inference.INFERERS``. ``k``: patches per volume of the
    inferers that take it (NMSW, random foreground); ``overlap``: the patch grid's overlap;
    ``iterations``: NMSW's own training (its global network, around the frozen trained backbone),
    default the backbone's iterations. Each inferer is handed the settings its ``build`` takes.
    """

    name: InferenceName = "sliding_window"
    k: int = Field(default=10, ge=1)
    overlap: float = Field(default=0.5, ge=0.0, lt=1.0)
    iterations: int | None = Field(default=None, gt=0)


class ModelConfig(_Strict):
    """One model of the study. ``params`` are passed on to the model factory unchanged."""

    name: str
    dims: Literal[2, 3] = 2
    encoder: str | None = None
    weights_path: str | None = None
    patch_size: tuple[int, ...] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    label: str | None = Field(default=None, description="name in the report; default name[-encoder]")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        _check_model(self.name, self.dims, self.factory_params)
        if self.inference.name != "sliding_window" and self.dims != 3:
            raise ValueError(f"inference {self.inference.name} is for 3D models")
        if self.patch_size is not None:
            if len(self.patch_size) != self.dims:
                raise ValueError(f"patch_size needs {self.dims} sizes for a {self.dims}D model, got {list(self.patch_size)}")
            if min(self.patch_size) < 1:
                raise ValueError(f"patch_size must be positive, got {list(self.patch_size)}")
        if self.dims == 3 and self.patch_size is None:
            raise ValueError("a 3D model needs patch_size (D, H, W)")
        return self

    @property
    def factory_params(self) -> dict[str, Any]:
        """The keyword arguments the model factory gets: ``params``, and ``encoder`` where one is set."""
        return {**self.params, **({"encoder": self.encoder} if self.encoder else {})}

    @property
    def display_name(self) -> str:
        if self.label:
            return self.label
        return f"{self.name}-{self.encoder}" if self.encoder else self.name


class TrainingConfig(_Strict):
    """Optimisation settings shared by every run.

    ``val_fraction``: share of the chosen (annotated) volumes held out to pick the best weights;
    see :mod:`slicebudget.study.execute_run` for the rule. Held-out volumes are annotated but not
    trained on, which costs most where few volumes are annotated (one of four at n = 4): on the
    organ reference grid (48 paired runs, ``studies/reference-organ-noval.yaml``) 0.0 scored
    +0.036 IoU (95% interval +0.007 to +0.068) over 0.2. ``device``: None = CUDA when available.
    """

    iterations: int = Field(gt=0)
    batch_size: int = Field(default=8, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    val_every: int = Field(default=50, gt=0)
    val_fraction: float = Field(default=0.2, ge=0.0, le=0.5)
    augment: bool = True
    device: str | None = None
    sampling: dict[str, float] | None = Field(
        default=None, description="3D patch-centre probabilities {foreground, background, unannotated}; sum to 1")

    @field_validator("sampling")
    @classmethod
    def _check_sampling(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        from slicebudget.training.spec import TrainSpec

        # the trainer's own check names unknown groups and negative weights
        try:
            TrainSpec.model_validate({"iterations": 1, "batch_size": 1, "learning_rate": 1.0, "val_every": 1,
                                      "sampling": value})
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"sampling probabilities must sum to 1, got {total:g}")
        return value


class AnnotationCosts(_Strict):
    """Seconds of annotator time, for budgets in hours (``budget-study plan --unit hours``).

    The defaults are assumptions, not measurements: a minute to outline the object on a slice, ten
    seconds to mark a slice empty, two minutes per volume taken on (loading, scrolling, review), and
    a third of the annotated slices empty. A cost file exported by the napari plugin
    (``budget-study plan --costs``) replaces them with the annotators' measured times.
    """

    seconds_per_object_slice: float = Field(default=60.0, gt=0)
    seconds_per_empty_slice: float = Field(default=10.0, ge=0)
    seconds_per_volume: float = Field(default=120.0, ge=0)
    empty_share: float = Field(default=0.3, ge=0.0, lt=1.0)


class DesignConfig(_Strict):
    """An adaptive design (``budget-study run --adaptive``): run the grid's cells in the order that
    settles the plan at ``budgets`` soonest, up to ``max_runs`` (see slicebudget.design.propose).
    ``budgets``: None = three inside the grid's cell budgets; ``max_runs``: None = 30% of the grid."""

    adaptive: bool = False
    max_runs: int | None = Field(default=None, gt=0)
    budgets: list[float] | None = Field(default=None, min_length=1)
    unit: Literal["slices", "hours"] = "slices"


class StudyConfig(_Strict):
    version: Literal[1]
    name: str | None = None
    dataset: str | PhantomDataset
    test_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)
    densities: list[Share] = Field(min_length=1)
    volume_fractions: list[Share] = Field(min_length=1)
    policies: list[PolicyChoice] = Field(default_factory=lambda: ["fixed"], min_length=1)
    interpolation: list[InterpolationName] = Field(default_factory=lambda: [OFF], min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    training: TrainingConfig
    repeats: int = Field(default=3, ge=1)
    seed: int = Field(default=0, ge=0)
    dense_baseline: bool = True
    costs: AnnotationCosts | None = Field(default=None, description="annotation costs; None: the documented defaults")
    design: DesignConfig | None = Field(default=None, description="adaptive design; None: run the whole grid")

    @field_validator("densities", "volume_fractions")
    @classmethod
    def _no_repeats(cls, values: list, info) -> list:
        return _distinct(values, info.field_name)

    @field_validator("policies")
    @classmethod
    def _policies_no_repeats(cls, values: list) -> list:
        _distinct([policy_label(v) for v in values], "policies")
        return values

    @field_validator("interpolation", mode="before")
    @classmethod
    def _interpolation_words(cls, values):
        # YAML 1.1 reads a bare `off` as False; the user meant the word.
        if isinstance(values, (str, bool, dict)) or values is None:
            values = [values]
        return [OFF if v is False or v is None else interpolation_spec(v) for v in values]

    @field_validator("interpolation")
    @classmethod
    def _interpolation_no_repeats(cls, values: list[str]) -> list[str]:
        return _distinct(values, "interpolation")

    @model_validator(mode="after")
    def _distinct_models(self) -> StudyConfig:
        labels = [(m.display_name, m.dims) for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError("two models share a name and dims; give one a distinct `label`")
        return self


def _check_model(name: str, dims: int, params: dict) -> None:
    """Name, dims and the factory's parameters, checked by the model registry itself."""
    from slicebudget.models import check_model_arguments

    if "seed" in params or "weights_path" in params:
        raise ValueError("set weights_path beside name, not in params; the study sets the seed")
    try:
        check_model_arguments(name, dims, params)
    except UserError as exc:
        raise ValueError(exc.message) from None


_TYPE_MISMATCH = {"string_type", "model_type", "dict_type", "model_attributes_type", "is_instance_of"}


def _is_type_tag(part) -> bool:
    """Union branch names pydantic puts in an error location ('str', 'PhantomDataset', ...)."""
    return isinstance(part, str) and (part in {"str", "int", "float"} or part[:1].isupper() or "[" in part)


def _first_error_line(exc: ValidationError) -> str:
    """The most useful problem as ``where: what``: for a union (``dataset: path | {phantom: ...}``)
    the branch that does not even match the input's type is not the interesting one."""
    errors = exc.errors()
    specific = [e for e in errors if e["type"] not in _TYPE_MISMATCH] or errors
    first = specific[0]
    where = ".".join(str(p) for p in first["loc"] if not _is_type_tag(p)) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(specific) - 1} more problem{'s' if len(specific) > 2 else ''})" if len(specific) > 1 else ""
    return f"{where}: {message}{more}"


def parse_config(data: Any, source: str | Path | None = None) -> StudyConfig:
    """Validate a parsed YAML mapping; UserError names the first bad field."""
    if not isinstance(data, dict):
        raise UserError("a study config must be a YAML mapping (key: value lines)", source)
    if "version" not in data:
        raise UserError(f"version: missing; write `version: {CONFIG_VERSION}` at the top", source)
    if data["version"] != CONFIG_VERSION:
        raise UserError(f"version: this slicebudget reads study config version {CONFIG_VERSION}, got {data['version']!r}", source)
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(_first_error_line(exc), source) from exc


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise UserError("study config not found", path) from exc
    except OSError as exc:
        raise UserError(f"cannot read study config: {exc.strerror}", path) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}", path) from exc
    return parse_config(data, path)
