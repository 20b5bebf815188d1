"""Slice selection: which slices of which volumes to annotate for a budget.

Policies (``fixed``, ``random``, ``coreset``) share :class:`SlicePolicy`'s contract and live in a
plain registry dict; :func:`plan_selection` turns (rho, s, seed, scope) into a replayable plan.
"""

from slicebudget.selection.allocator import (
    SCOPES,
    SelectionPlan,
    draw_volumes,
    n_volumes_for_fraction,
    plan_selection,
)
from slicebudget.selection.base import SlicePolicy, n_slices_for_density
from slicebudget.selection.coreset import CoresetPolicy
from slicebudget.selection.features import FEATURES, IntensityPCAFeatures, get_features, slice_thumbnails
from slicebudget.selection.fixed import FixedIntervalPolicy, fixed_interval_indices
from slicebudget.selection.kcenter import kcenter_greedy
from slicebudget.selection.random import RandomPolicy
from slicebudget.selection.registry import POLICIES, get_policy

__all__ = [
    "FEATURES",
    "POLICIES",
    "SCOPES",
    "CoresetPolicy",
    "FixedIntervalPolicy",
    "IntensityPCAFeatures",
    "RandomPolicy",
    "SelectionPlan",
    "SlicePolicy",
    "draw_volumes",
    "fixed_interval_indices",
    "get_features",
    "get_policy",
    "kcenter_greedy",
    "n_slices_for_density",
    "n_volumes_for_fraction",
    "plan_selection",
    "slice_thumbnails",
]
