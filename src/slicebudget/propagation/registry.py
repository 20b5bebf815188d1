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
