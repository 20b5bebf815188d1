"""Propagation methods by name: a plain dict, and a lookup that lists valid names on a miss."""

from __future__ import annotations

from slicebudget.errors import UserError
from slicebudget.propagation.mci import MorphologicalContourPropagator
from slicebudget.propagation.nearest import NearestSlicePropagator
from slicebudget.propagation.sdf import SignedDistancePropagator
from slicebudget.propagation.sli2vol.propagator import Sli2VolPropagator

PROPAGATORS = {
    "sli2vol": Sli2VolPropagator,
    "sdf": SignedDistancePropagator,
    "nearest": NearestSlicePropagator,
    "mci": MorphologicalContourPropagator,
}


def get_propagator(name: str, **params):
    """A propagator instance for ``name``, built from keyword parameters (scikit-learn style)."""
    try:
        cls = PROPAGATORS[name]
    except KeyError:
        raise UserError(f"unknown propagation method {name!r}; valid methods: {', '.join(PROPAGATORS)}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"bad parameters for propagation method {name!r}: {exc}") from None
