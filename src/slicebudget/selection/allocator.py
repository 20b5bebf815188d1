"""The budget allocator: from (rho, s, seed) to which volumes and which of their slices.

``s`` (volume fraction) picks ``max(1, round(s * n_volumes))`` volumes; ``rho`` (density) gives each
chosen volume ``n_slices_for_density(D, rho)`` slices, so the budget is the sum of those. Three scopes:

- ``volume``: the policy picks each volume's slices on its own (the study's setting);
- ``dataset``: the policy picks the whole budget from the pooled slices of the chosen volumes, so a
  volume may get more, fewer or none (the study's discussion suggests this may beat per-volume UAL);
- ``dataset-quota``: pooled, but every chosen volume gets exactly its per-volume count.

Random streams are split by purpose: the volume draw depends only on the seed (so every policy sees
the same volumes: paired comparisons), and a volume's slices depend only on the seed and its case id
(so growing ``s`` keeps earlier volumes' picks). The volume draw takes a prefix of one seeded
permutation, so a smaller ``s`` chooses a subset of a larger one's volumes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from slicebudget.errors import UserError
from slicebudget.selection.base import SlicePolicy, check_density, n_slices_for_density
from slicebudget.selection.registry import get_policy

SCOPES = ("volume", "dataset", "dataset-quota")
_VOLUME_STREAM, _SLICE_STREAM, _DATASET_STREAM = 0, 1, 2


def n_volumes_for_fraction(n_volumes: int, volume_fraction: float) -> int:
    """``max(1, round(s * n_volumes))`` (Python's round, half to even)."""
    fraction = check_density(volume_fraction, "volume fraction")
    return max(1, min(n_volumes, round(fraction * n_volumes)))


def draw_volumes(case_ids, volume_fraction: float, seed: int) -> tuple[str, ...]:
    """The chosen case ids (sorted); the same seed chooses the same volumes for every policy."""
    ids = sorted(case_ids)
    if not ids:
        raise UserError("no volumes to choose from")
    m = n_volumes_for_fraction(len(ids), volume_fraction)
    order = np.random.default_rng([_check_seed(seed), _VOLUME_STREAM]).permutation(len(ids))
    return tuple(sorted(ids[i] for i in order[:m]))


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _case_rng(seed: int, case_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SLICE_STREAM, zlib.crc32(case_id.encode())])


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)  # e.g. a feature-extractor object: recorded for the reader, not replayed


@dataclass(frozen=True)
class SelectionPlan:
    """Every choice of one (policy, rho, s, seed, scope), as concrete lists that replay exactly.

    ``chosen``: case id -> sorted slice indices, only volumes that receive slices.
    ``n_slices_total``: case id -> slice count, for every drawn volume (a superset of ``chosen``
    in the ``dataset`` scope, where a drawn volume may receive no slices).
    """

    policy: str
    density: float
    volume_fraction: float
    seed: int
    scope: str
    chosen: dict[str, list[int]]
    n_slices_total: dict[str, int]
    policy_params: dict = field(default_factory=dict)

    @property
    def budget(self) -> int:
        """Total number of annotated slices."""
        return sum(len(s) for s in self.chosen.values())

    @property
    def drawn(self) -> tuple[str, ...]:
        """The volumes the volume fraction drew (sorted)."""
        return tuple(sorted(self.n_slices_total))

    def to_json(self) -> dict:
        return {
            "policy": self.policy,
            "policy_params": {k: _jsonable(v) for k, v in self.policy_params.items()},
            "density": self.density,
            "volume_fraction": self.volume_fraction,
            "seed": self.seed,
            "scope": self.scope,
            "budget": self.budget,
            "chosen": {k: [int(i) for i in v] for k, v in sorted(self.chosen.items())},
            "n_slices_total": {k: int(v) for k, v in sorted(self.n_slices_total.items())},
        }

    @classmethod
    def from_json(cls, d: dict) -> SelectionPlan:
        """Rebuild a plan from :meth:`to_json`'s output, checking it is self-consistent."""
        missing = [k for k in ("policy", "density", "volume_fraction", "seed", "scope", "chosen", "n_slices_total") if k not in d]
        if missing:
            raise UserError(f"selection plan lacks {', '.join(missing)}")
        if d["scope"] not in SCOPES:
            raise UserError(f"unknown scope {d['scope']!r}; choose one of: {', '.join(SCOPES)}")
        totals = {str(k): int(v) for k, v in d["n_slices_total"].items()}
        chosen = {str(k): sorted(int(i) for i in v) for k, v in d["chosen"].items()}
        for case_id, slices in chosen.items():
            depth = totals.get(case_id)
            if depth is None or (slices and (slices[0] < 0 or slices[-1] >= depth)) or len(set(slices)) != len(slices):
                raise UserError(f"selection plan has invalid slices for case {case_id!r}")
        return cls(
            policy=str(d["policy"]),
            density=float(d["density"]),
            volume_fraction=float(d["volume_fraction"]),
            seed=int(d["seed"]),
            scope=str(d["scope"]),
            chosen=chosen,
            n_slices_total=totals,
            policy_params=dict(d.get("policy_params", {})),
        )


def plan_selection(
    volumes: Mapping[str, np.ndarray],
    policy: str | SlicePolicy,
    density: float,
    volume_fraction: float,
    seed: int,
    scope: str = "volume",
    progress: Callable[[str], None] | None = None,
) -> SelectionPlan:
    """Choose volumes and slices for one budget configuration.

    ``volumes`` maps case id -> (D, H, W) array; only drawn volumes are read, so a mapping that
    loads from disk on access works. ``progress`` is called with each case id once its volume has
    been processed (for progress bars).
    """
    density = check_density(density)
    volume_fraction = check_density(volume_fraction, "volume fraction")
    seed = _check_seed(seed)
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    policy_obj = get_policy(policy) if isinstance(policy, str) else policy
    if not isinstance(policy_obj, SlicePolicy):
        raise UserError(f"policy must be a name or a SlicePolicy, got {type(policy).__name__}")
    policy_obj.validate()

    drawn = draw_volumes(volumes.keys(), volume_fraction, seed)
    picks, depths, summaries = {}, {}, []
    for case_id in drawn:  # read each volume once; a lazy mapping holds one at a time
        array = volumes[case_id]
        depths[case_id] = int(array.shape[0])
        if scope == "volume":
            quota = n_slices_for_density(depths[case_id], density)
            picks[case_id] = policy_obj.select(array, quota, _case_rng(seed, case_id))
        else:
            summaries.append(policy_obj.summarise(array))
        del array
        if progress is not None:
            progress(case_id)
    if scope != "volume":
        quotas = [n_slices_for_density(depths[c], density) for c in drawn]
        per_volume = policy_obj.select_pooled(
            summaries,
            [depths[c] for c in drawn],
            sum(quotas),
            np.random.default_rng([seed, _DATASET_STREAM]),
            quotas=quotas if scope == "dataset-quota" else None,
        )
        picks = dict(zip(drawn, per_volume))
    return SelectionPlan(
        policy=policy_obj.name,
        density=density,
        volume_fraction=volume_fraction,
        seed=seed,
        scope=scope,
        chosen={c: [int(i) for i in p] for c, p in picks.items() if len(p)},
        n_slices_total=depths,
        policy_params=policy_obj.get_params(),
    )
