"""The inferer registry: one plain dict from name to inferer class, like models, policies and propagators.

Every inferer is called as ``inferer(image (B, C, D, H, W), network)`` and returns logits. Its class
has ``build(network, patch_size, *, <params>)``: the keyword parameters after ``*`` are what a
study config or a caller may set, and :func:`inferer_parameters` reads them from that signature.
``needs_nmsw_model`` says whether ``network`` must be a trained NMSW model (the study trains one
around its backbone first); otherwise ``network`` is the trained backbone itself.

To add an inferer: write its class in its own module (with ``build`` and ``needs_nmsw_model``) and
add one line to ``INFERERS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from slicebudget.errors import UserError
from slicebudget.inference.nmsw.inferer import NMSWInferer
from slicebudget.inference.nmsw.random_foreground import RandomForegroundInferer
from slicebudget.inference.sliding_window import SlidingWindowInferer


class Inferer(Protocol):
    needs_nmsw_model: bool

    @classmethod
    def build(cls, network, patch_size: Sequence[int], **params) -> Inferer: ...

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor: ...


INFERERS: dict[str, type[Inferer]] = {
    "sliding_window": SlidingWindowInferer,
    "nmsw": NMSWInferer,
    "random_foreground": RandomForegroundInferer,
}


def get_inferer_class(name: str) -> type[Inferer]:
    if name not in INFERERS:
        raise UserError(f"unknown inference {name!r}; valid: {', '.join(INFERERS)}")
    return INFERERS[name]


def _keyword_parameters(name: str) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(get_inferer_class(name).build)
    return {p.name: p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def registered_name(inferer) -> str:
    """The ``INFERERS`` name of an inferer object's class (what a study records as having predicted)."""
    for name, cls in INFERERS.items():
        if type(inferer) is cls:
            return name
    raise ValueError(f"{type(inferer).__name__} is not a registered inferer")


def inferer_parameters(name: str) -> tuple[str, ...]:
    """The keyword parameters ``build_inferer(name, ...)`` takes for this inferer."""
    return tuple(_keyword_parameters(name))


def build_inferer(name: str, network, patch_size: Sequence[int], **params) -> Callable:
    """An ``inferer(image, network)``; unknown names, unknown or missing parameters raise UserError
    that lists the valid ones."""
    cls = get_inferer_class(name)
    valid = _keyword_parameters(name)
    unknown = set(params) - set(valid)
    if unknown:
        raise UserError(f"inference {name!r} does not take {', '.join(sorted(unknown))}; "
                        f"valid keys: {', '.join(sorted(valid))}")
    missing = [p for p, spec in valid.items() if spec.default is inspect.Parameter.empty and p not in params]
    if missing:
        raise UserError(f"inference {name!r} needs {', '.join(missing)}; valid keys: {', '.join(sorted(valid))}")
    if int(params.get("batch_size", 1)) < 1:
        raise UserError(f"inference batch_size must be at least 1, got {params['batch_size']}")
    return cls.build(network, patch_size, **params)
