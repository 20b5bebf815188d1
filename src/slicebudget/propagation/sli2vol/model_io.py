"""Model files of the learned propagator: a format version, the architecture config, the weights."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from slicebudget.errors import UserError
from slicebudget.io.atomic import atomic_write
from slicebudget.propagation.sli2vol.edges import EDGE_CHANNELS
from slicebudget.propagation.sli2vol.network import FeatureNet, Sli2VolConfig

FORMAT_NAME = "slicebudget-sli2vol"
FORMAT_VERSION = 1
DEFAULT_MODEL = "sli2vol_default.pt"


def default_model_path() -> Path:
    """The model shipped inside the package (trained on the embedded phantoms)."""
    return Path(str(importlib.resources.files("slicebudget").joinpath("assets", DEFAULT_MODEL)))


def save_model(net: FeatureNet, config: Sli2VolConfig, path: str | Path, training: dict[str, Any]) -> Path:
    """Write a model file atomically; ``training`` records how it was made (data, seed, iterations)."""
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": config.model_dump(mode="json"),
        "training": training,
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[FeatureNet, Sli2VolConfig]:
    """Read a model file (default: the shipped one); wrong files raise a one-line UserError."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise UserError("propagation model file not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-model file
        raise UserError(f"not a readable propagation model file ({type(exc).__name__})", path) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise UserError("not a slicebudget sli2vol model file", path)
    if payload.get("version") != FORMAT_VERSION:
        raise UserError(
            f"model file format version {payload.get('version')} is not supported (expected {FORMAT_VERSION}); "
            "retrain with `budget-study propagation train`",
            path,
        )
    stem = payload.get("state_dict", {}).get("stem.weight") if isinstance(payload.get("state_dict"), dict) else None
    if stem is not None and stem.ndim == 4 and stem.shape[1] != EDGE_CHANNELS:
        raise UserError(
            f"model file takes {stem.shape[1]} input channels; this version feeds {EDGE_CHANNELS} (edge profiles of "
            "one image channel); retrain with `budget-study propagation train`",
            path,
        )
    try:
        config = Sli2VolConfig(**payload["config"])
        net = FeatureNet(config)
        net.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValidationError, RuntimeError) as exc:
        raise UserError(f"model file does not match its architecture config ({type(exc).__name__})", path) from exc
    return net.to(device).eval(), config


def check_model_channels(path: str | Path, image_channels: int) -> None:
    """Refuse a model adapted on images with another number of channels (it learned the first
    channel of those; here the first channel may be another sequence or contrast)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    trained = (payload.get("training") or {}).get("image_channels") if isinstance(payload, dict) else None
    if trained is not None and int(trained) != int(image_channels):
        raise UserError(
            f"model was adapted on {trained}-channel images; these images have {image_channels} channels", path
        )
