"""What a study's policy, interpolation and inference entries may be: each checked against its
registry (the one source of truth for names and parameters), and how runs and the report name them.

The study config (:mod:`slicebudget.study.config`) validates its lists with these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicebudget.errors import UserError

OFF = "off"


def _known_policy(value: str) -> str:
    valid = _policy_names()
    if value not in valid:
        raise ValueError(f"unknown policy {value!r}; choose from {', '.join(valid)}")
    return value


# Study-level knobs a policy mapping may carry beside the policy's own parameters: where selection
# runs (``slicebudget.selection.SCOPES``) and, at dataset scope, whether every volume keeps its share.
PLAN_KEYS = ("scope", "quota")
PLAN_SCOPES = ("volume", "dataset")


def policy_choice(value: Any) -> str | dict:
    """A policy name, or ``{name: ..., <policy parameters>, scope: volume|dataset, quota: bool}``.

    Parameters are checked against the policy's own ``get_params()`` (the registry is the one
    source of truth) and by building it. Parameters equal to their defaults are dropped, so
    ``{name: coreset}`` is plain ``coreset``; a mapping left with no parameter becomes its name.
    """
    if isinstance(value, str):
        return _known_policy(value)
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError("a policy is a name or a mapping with `name` and its parameters")
    from slicebudget.selection import POLICIES, get_policy

    name = _known_policy(value["name"])
    defaults = POLICIES[name]().get_params()
    params = {k: v for k, v in value.items() if k != "name"}
    unknown = sorted(set(params) - set(defaults) - set(PLAN_KEYS))
    if unknown:
        valid = ", ".join([*defaults, *PLAN_KEYS])
        raise ValueError(f"policy {name!r} takes no parameter {', '.join(map(repr, unknown))}; valid: {valid}")
    scope = params.get("scope", "volume")
    if scope not in PLAN_SCOPES:
        raise ValueError(f"policy {name!r}: unknown scope {scope!r}; choose one of: {', '.join(PLAN_SCOPES)}")
    quota = params.get("quota", False)
    if not isinstance(quota, bool):
        raise ValueError(f"policy {name!r}: quota must be true or false, got {quota!r}")
    if quota and scope != "dataset":
        raise ValueError(f"policy {name!r}: quota applies to scope: dataset (volume scope always gives each volume its share)")
    own = {k: v for k, v in params.items() if k in defaults and v != defaults[k]}
    try:
        get_policy(name, **own).validate()
    except UserError as exc:
        raise ValueError(f"policy {name!r}: {exc.message}") from None
    canonical = {**own, **({"scope": scope} if scope != "volume" else {}), **({"quota": True} if quota else {})}
    return {"name": name, **canonical} if canonical else name


def policy_label(policy: str | dict) -> str:
    """How runs and the report name a policy variant: ``coreset(features=encoder, scope=dataset, quota=true)``."""
    if isinstance(policy, str):
        return policy
    # own parameters alphabetically, then scope and quota: stored specs come back with sorted keys
    keys = [*sorted(k for k in policy if k not in ("name", *PLAN_KEYS)), *(k for k in PLAN_KEYS if k in policy)]
    parts = [f"{k}={str(policy[k]).lower() if isinstance(policy[k], bool) else policy[k]}" for k in keys]
    return f"{policy['name']}({', '.join(parts)})"


def policy_parts(policy: str | dict) -> tuple[str, dict, str]:
    """(registry name, the policy's own parameters, selection scope as ``plan_selection`` takes it)."""
    if isinstance(policy, str):
        return policy, {}, "volume"
    params = {k: v for k, v in policy.items() if k not in ("name", *PLAN_KEYS)}
    scope = policy.get("scope", "volume")
    if scope == "dataset" and policy.get("quota"):
        scope = "dataset-quota"
    return policy["name"], params, scope


def known_interpolation(value: str) -> str:
    """``off``, a method name, or a method with parameters (``sli2vol:model=adapt``, written in YAML
    as ``{name: sli2vol, model: adapt}``); ``model`` is ``adapt`` (the shipped model adapted to the
    study's training images) or an existing model file."""
    if value == OFF:
        return value
    name, _, rest = value.partition(":")
    valid = _propagation_names()
    if name not in valid:
        raise ValueError(f"unknown interpolation {name!r}; choose from off, {', '.join(valid)}")
    params = dict(pair.partition("=")[::2] for pair in rest.split(":")) if rest else {}
    if set(params) - {"model", "fallback", "max_beyond"} or (params and name != "sli2vol"):
        raise ValueError(f"interpolation {name!r} takes no parameter {', '.join(sorted(params))}"
                         + ("; sli2vol takes model, fallback, max_beyond" if name == "sli2vol" else ""))
    model = params.get("model")
    if model is not None and model != "adapt" and not Path(model).is_file():
        raise ValueError(f"model file {model!r} not found (give a path, or 'adapt')")
    return value


def interpolation_spec(value):
    """``{name: sli2vol, model: adapt}`` -> ``"sli2vol:model=adapt"`` (the form runs and the store keep)."""
    if not isinstance(value, dict):
        return value
    if "name" not in value:
        raise ValueError("an interpolation given as a mapping needs a `name`")
    params = {k: v for k, v in value.items() if k != "name"}
    return ":".join([str(value["name"]), *(f"{k}={params[k]}" for k in sorted(params))])


def known_inference(value: str) -> str:
    from slicebudget.inference import INFERERS

    if value not in INFERERS:
        raise ValueError(f"unknown inference {value!r}; choose from {', '.join(INFERERS)}")
    return value



def _policy_names() -> tuple[str, ...]:
    from slicebudget.selection import POLICIES

    return tuple(sorted(POLICIES))


def _propagation_names() -> tuple[str, ...]:
    from slicebudget.propagation import PROPAGATORS

    return tuple(sorted(PROPAGATORS))
