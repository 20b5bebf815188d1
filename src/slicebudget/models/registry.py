"""The model registry: one plain dict from name to how to build it and which dimensionalities it takes.

``create_model(name, dims=2|3, in_channels=C, classes=K, **params)`` returns a ``torch.nn.Module``
mapping (B, C, [D,] H, W) to (B, K, [D,] H, W) logits for any input size (networks with a stride pad
internally and crop back). Initialisation is seeded (``seed``, default 0) without touching the
caller's global RNG, so the same call gives the same weights. ``weights_path`` loads a local
state_dict file after building.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slicebudget.errors import UserError


@dataclass(frozen=True)
class ModelEntry:
    """How to build one registered model."""

    build: Callable[..., object]  # build(in_channels, classes, **params) -> nn.Module
    dims: tuple[int, ...]
    description: str


def _smp(architecture: str) -> Callable[..., object]:
    def build(in_channels: int, classes: int, encoder: str | None = None, encoder_depth: int | None = None):
        from slicebudget.models.smp_zoo import build_smp_model

        return build_smp_model(architecture, in_channels, classes, encoder=encoder, encoder_depth=encoder_depth)

    return build


def _unet3d(in_channels: int, classes: int, base_channels: int = 16, depth: int = 4):
    from slicebudget.models.unet3d import ResidualUNet3d

    return ResidualUNet3d(in_channels, classes, base_channels=base_channels, depth=depth)


def _lightmedseg(in_channels: int, classes: int, num_anchors: int = 8, gate_hidden: int = 32):
    from slicebudget.models.lightmedseg import LightMedSeg

    return LightMedSeg(in_channels, classes, num_anchors=num_anchors, gate_hidden=gate_hidden)


def _meddanet_v2(
    in_channels: int,
    classes: int,
    base_channels: int = 16,
    crop_size: int = 96,
    bit_choices: tuple[int, ...] = (8, 16),
    flops_weight: float = 0.06,
    tau: float = 1.0,
):
    from slicebudget.models.meddanet_v2 import MedDANetV2

    return MedDANetV2(
        in_channels,
        classes,
        base_channels=base_channels,
        crop_size=crop_size,
        bit_choices=tuple(bit_choices),
        flops_weight=flops_weight,
        tau=tau,
    )


MODEL_REGISTRY: dict[str, ModelEntry] = {
    "unet": ModelEntry(_smp("unet"), (2,), "smp U-Net, ResNet-18 encoder by default"),
    "fpn": ModelEntry(_smp("fpn"), (2,), "smp FPN, ResNet-18 encoder by default"),
    "deeplabv3plus": ModelEntry(_smp("deeplabv3plus"), (2,), "smp DeepLabV3+, ResNet-18 encoder by default"),
    "segformer": ModelEntry(_smp("segformer"), (2,), "smp SegFormer, encoder mit_b0..mit_b3 (default mit_b0)"),
    "unet3d": ModelEntry(_unet3d, (3,), "plain residual 3D U-Net (base 16, depth 4)"),
    "lightmedseg": ModelEntry(_lightmedseg, (3,), "LightMedSeg: anchors, structural priors, skip router"),
    "meddanet_v2": ModelEntry(_meddanet_v2, (2,), "Med-DANet V2: skip/crop policy + dynamically quantised U-Net"),
}


def _entry(name: str) -> ModelEntry:
    if name not in MODEL_REGISTRY:
        raise UserError(f"unknown model {name!r}; valid models: {', '.join(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name]


def model_info(name: str) -> tuple[int, ...]:
    """The dimensionalities (2 and/or 3) the model supports; UserError for an unknown name."""
    return _entry(name).dims


def model_parameters(name: str) -> tuple[str, ...]:
    """Names of the keyword parameters ``create_model`` accepts for this model (besides the common ones)."""
    signature = inspect.signature(_entry(name).build)
    return tuple(p for p in signature.parameters if p not in ("in_channels", "classes"))


def check_model_arguments(name: str, dims: int, params: dict) -> None:
    """UserError unless ``name`` is registered, takes ``dims`` and accepts every key of ``params``."""
    entry = _entry(name)
    if dims not in entry.dims:
        raise UserError(f"model {name!r} supports dims {' or '.join(map(str, entry.dims))} only, not {dims}")
    valid = model_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise UserError(
            f"model {name!r} takes no parameter(s) {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}"
        )


def create_model(
    name: str,
    dims: int,
    in_channels: int,
    classes: int,
    seed: int | None = 0,
    weights_path: str | Path | None = None,
    **params,
):
    """Build a registered model (see the module docstring); UserError on any bad argument."""
    import torch

    check_model_arguments(name, dims, params)
    entry = _entry(name)
    if in_channels < 1 or classes < 2:
        raise UserError(f"model {name!r} needs in_channels >= 1 and classes >= 2 (background included), "
                        f"got in_channels={in_channels}, classes={classes}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model = entry.build(in_channels, classes, **params)
        except (TypeError, ValueError) as exc:
            raise UserError(f"cannot build model {name!r}: {exc}") from None
    if weights_path is not None:
        load_weights(model, weights_path)
    return model


def load_weights(model, weights_path: str | Path) -> None:
    """Load a local state_dict file (a plain state_dict or a dict holding one under ``state_dict``/``model``).

    Keys may carry the wrapper prefix ``network.`` or not: an smp state_dict saved without our
    wrapper loads into the wrapped network.
    """
    import torch

    path = Path(weights_path)
    if not path.is_file():
        raise UserError("weights file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise UserError(f"cannot read weights: {exc}", path) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict):
        raise UserError("weights file does not hold a state_dict", path)
    own_keys = set(model.state_dict())
    if not set(state) & own_keys and hasattr(model, "network"):
        state = {f"network.{k}": v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserError(f"weights do not fit this model: {first_line}", path) from None
