"""Propagation methods by name: a plain dict, and a lookup that lists valid names on a miss."""

from __future__ import annotations

from slicebudget.errors import UserError
from slicebudget.propagation.common import Propagator, init_parameters
from slicebudget.propagation.mci import MorphologicalContourPropagator
from slicebudget.propagation.nearest import NearestSlicePropagator
from slicebudget.propagation.sdf import SignedDistancePropagator
from slicebudget.propagation.sli2vol.propagator import Sli2VolPropagator

PROPAGATORS: dict[str, type[Propagator]] = {
    "sli2vol": Sli2VolPropagator,
    "sdf": SignedDistancePropagator,
    "nearest": NearestSlicePropagator,
    "mci": MorphologicalContourPropagator,
}


def _class(name: str) -> type[Propagator]:
    try:
        return PROPAGATORS[name]
    except KeyError:
        raise UserError(f"unknown propagation method {name!r}; valid methods: {', '.join(PROPAGATORS)}") from None


def propagator_parameters(name: str) -> tuple[str, ...]:
    """The keyword parameters the method named ``name`` is built from."""
    return init_parameters(_class(name))


def get_propagator(name: str, **params) -> Propagator:
    """A propagator instance for ``name``, built from keyword parameters (scikit-learn style)."""
    cls = _class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"bad parameters for propagation method {name!r}: {exc}") from None
