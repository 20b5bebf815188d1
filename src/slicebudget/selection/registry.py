"""The policy registry: a plain dict from name to class, and a builder that checks names."""

from __future__ import annotations

from slicebudget.errors import UserError
from slicebudget.selection.base import SlicePolicy
from slicebudget.selection.coreset import CoresetPolicy
from slicebudget.selection.fixed import FixedIntervalPolicy
from slicebudget.selection.random import RandomPolicy

POLICIES: dict[str, type[SlicePolicy]] = {
    "fixed": FixedIntervalPolicy,
    "random": RandomPolicy,
    "coreset": CoresetPolicy,
}


def get_policy(name: str, **params) -> SlicePolicy:
    """Build a policy by name; an unknown name or parameter is a UserError listing what is valid."""
    if name not in POLICIES:
        raise UserError(f"unknown slice policy {name!r}; choose one of: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    try:
        policy = cls(**params)
    except TypeError as exc:
        valid = ", ".join(cls().get_params()) or "none"
        raise UserError(f"bad parameters {sorted(params)} for policy {name!r} (valid: {valid})") from exc
    policy.validate()
    return policy
