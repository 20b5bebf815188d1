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


def parse_method_spec(spec: str) -> tuple[str, dict]:
    """A method with parameters, each after a colon (commas separate methods on a command line):
    ``"sli2vol:fallback=none:max_beyond=3"`` -> ``("sli2vol", {"fallback": "none", "max_beyond": 3})``."""
    name, *pairs = spec.split(":")
    params: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"method parameter {pair!r} of {spec!r} must be KEY=VALUE")
        params[key] = int(value) if value.lstrip("-").isdigit() else value
    return name, params
