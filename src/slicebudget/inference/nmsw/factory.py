"""``build_inferer(spec, model, patch_size)``: the study's way to get an inferer from its config.

``spec`` is the ``inference`` mapping of a 3D model in the study config, e.g.
``{"name": "nmsw", "k": 10}``, ``{"name": "sliding_window", "overlap": 0.5, "batch_size": 4}`` or
``{"name": "random_foreground", "k": 10, "seed": 0}``. Every inferer is called as
``inferer(image (B, C, D, H, W), network)`` and returns logits; for NMSW and RF ``network`` is the
local network (the study's trained backbone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.inference.nmsw.inferer import NMSWInferer, validate_k
from slicebudget.inference.nmsw.model import NMSWModel, load_nmsw
from slicebudget.inference.nmsw.random_foreground import RandomForegroundInferer

INFERER_NAMES = ("sliding_window", "nmsw", "random_foreground")
SPEC_KEYS = {
    "sliding_window": {"name", "overlap", "batch_size"},
    "nmsw": {"name", "k", "batch_size", "checkpoint"},
    "random_foreground": {"name", "k", "batch_size", "checkpoint", "seed"},
}


def _nmsw_model(spec: dict, model, patch_size: Sequence[int]) -> NMSWModel:
    if isinstance(model, NMSWModel):
        nmsw = model
    elif spec.get("checkpoint"):
        nmsw, _ = load_nmsw(Path(spec["checkpoint"]))
    else:
        raise UserError(
            f"inference {spec['name']!r} needs an NMSW model: pass the model returned by train_nmsw, "
            "or set inference.checkpoint to a saved NMSW checkpoint"
        )
    if tuple(nmsw.patch_size) != tuple(int(p) for p in patch_size):
        raise UserError(
            f"the NMSW model was trained with patch size {tuple(nmsw.patch_size)}, "
            f"but the study uses {tuple(int(p) for p in patch_size)}"
        )
    return nmsw


def build_inferer(spec: dict, model, patch_size: Sequence[int]) -> Callable:
    """An ``inferer(image, network)`` for ``spec``; unknown names or keys raise UserError."""
    from slicebudget.inference.sliding_window import SlidingWindowInferer

    spec = dict(spec or {"name": "sliding_window"})
    name = spec.get("name", "sliding_window")
    if name not in INFERER_NAMES:
        raise UserError(f"unknown inference {name!r}; valid: {', '.join(INFERER_NAMES)}")
    spec["name"] = name
    unknown = set(spec) - SPEC_KEYS[name]
    if unknown:
        raise UserError(f"inference {name!r} does not take {', '.join(sorted(unknown))}; "
                        f"valid keys: {', '.join(sorted(SPEC_KEYS[name]))}")
    batch_size = int(spec.get("batch_size", 4))
    if batch_size < 1:
        raise UserError(f"inference batch_size must be at least 1, got {batch_size}")
    if name == "sliding_window":
        return SlidingWindowInferer(tuple(patch_size), float(spec.get("overlap", 0.5)), batch_size)
    if "k" not in spec:
        raise UserError(f"inference {name!r} needs k, the number of patches per volume")
    k = validate_k(spec["k"])
    nmsw = _nmsw_model(spec, model, patch_size)
    if name == "nmsw":
        return NMSWInferer(nmsw, k, batch_size)
    return RandomForegroundInferer(nmsw, k, int(spec.get("seed", 0)), batch_size)
