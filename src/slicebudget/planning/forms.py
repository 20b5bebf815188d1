"""Candidate shapes of the budget surface: expected IoU as a function of (n volumes, k slices each).

Every form is linear in its coefficients once its exponents are fixed, so a fit profiles the
exponents over a grid and solves a weighted linear least-squares problem at each grid point (for
all bootstrap replicates at once; see :mod:`slicebudget.planning.fit`). The level factor (policy,
interpolation) enters as an additive offset in every form, and also as a slope in ``power-by-level``.

Which form is used is decided by leave-one-cell-out error, never by taste
(:mod:`slicebudget.planning.formchoice`). The forms:

- ``power``: a - b n^-alpha - c k^-beta, the saturating learning curve in each of n and k
  (Figueroa et al.'s inverse power law, one per axis).
- ``log``: a + b log n + c log k; no saturation, often good inside the studied range.
- ``log-interaction``: adds d log n log k: the value of more slices may depend on how many volumes.
- ``k-levels``: piecewise linear in log k (knots at the studied k values; see ``_hats`` beyond them) plus
  -b n^-alpha: lets each studied slice count sit where the data put it (e.g. a policy that places
  two slices badly) while n stays smooth.
- ``power-by-level``: ``power`` with a k slope per level (policy x k interaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXPONENTS = np.geomspace(0.1, 3.0, 12)
# Studied k values closer than this (relative) share one knot.
KNOT_MERGE = 0.05


@dataclass(frozen=True)
class Inputs:
    """Where a design matrix is evaluated: n, k and level per point, plus what the training cells fix."""

    n: np.ndarray
    k: np.ndarray
    level: np.ndarray
    n_levels: int
    knots: np.ndarray  # log k of the training cells' distinct k values


@dataclass(frozen=True)
class Form:
    name: str
    formula: str
    n_exponents: int
    columns: Callable[[Inputs, tuple[float, ...]], list[np.ndarray]]
    needs_levels: bool = False

    def design(self, at: Inputs, exponents: tuple[float, ...]) -> np.ndarray:
        return np.column_stack(self.columns(at, exponents))

    def exponent_grid(self) -> list[tuple[float, ...]]:
        if self.n_exponents == 0:
            return [()]
        if self.n_exponents == 1:
            return [(a,) for a in EXPONENTS]
        return [(a, b) for a in EXPONENTS for b in EXPONENTS]

    def n_parameters(self, at: Inputs) -> int:
        return self.design(at, (1.0,) * self.n_exponents).shape[1] + self.n_exponents


def knots_from(k: np.ndarray) -> np.ndarray:
    """Distinct log k values of the training cells (values within KNOT_MERGE of each other merged)."""
    out: list[float] = []
    for value in np.sort(np.log(np.asarray(k, dtype=float))):
        if not out or value > out[-1] + np.log1p(KNOT_MERGE):
            out.append(float(value))
    return np.asarray(out)


def _offsets(at: Inputs) -> list[np.ndarray]:
    return [(at.level == j).astype(float) for j in range(1, at.n_levels)]


def _hats(at: Inputs) -> list[np.ndarray]:
    """Piecewise-linear basis in log k with a knot per studied k.

    Beyond the studied k both ends are conservative: above the largest k the curve stays flat (no
    gain from more slices is assumed), below the smallest it continues its first segment's slope
    (fewer slices than studied cost what the first step cost), rather than calling fewer slices free.
    """
    knots = at.knots
    if knots.size <= 1:
        return [np.ones_like(at.k, dtype=float)]
    x = np.minimum(np.log(at.k), knots[-1])
    eye = np.eye(knots.size)
    hats = [np.interp(x, knots, eye[j]) for j in range(knots.size)]
    below = x < knots[0]
    t = (x[below] - knots[0]) / (knots[1] - knots[0])  # negative: the first segment extended
    hats[0][below] = 1.0 - t
    hats[1][below] = t
    return hats


def _power(at, e):
    return [np.ones_like(at.n, dtype=float), *_offsets(at), -at.n ** -e[0], -at.k ** -e[1]]


def _log(at, e):
    return [np.ones_like(at.n, dtype=float), *_offsets(at), np.log(at.n), np.log(at.k)]


def _log_interaction(at, e):
    return [*_log(at, e), np.log(at.n) * np.log(at.k)]


def _k_levels(at, e):
    return [*_hats(at), *_offsets(at), -at.n ** -e[0]]


def _power_by_level(at, e):
    slopes = [-(at.k ** -e[1]) * (at.level == j) for j in range(at.n_levels)]
    return [np.ones_like(at.n, dtype=float), *_offsets(at), -at.n ** -e[0], *slopes]


FORMS = {
    "power": Form("power", "a - b n^-alpha - c k^-beta", 2, _power),
    "log": Form("log", "a + b log n + c log k", 0, _log),
    "log-interaction": Form("log-interaction", "a + b log n + c log k + d log n log k", 0, _log_interaction),
    "k-levels": Form("k-levels", "f(log k) - b n^-alpha, f piecewise linear", 1, _k_levels),
    "power-by-level": Form("power-by-level", "a - b n^-alpha - c_level k^-beta", 2, _power_by_level,
                           needs_levels=True),
}


def usable_forms(at: Inputs, n_cells: int) -> list[Form]:
    """Forms that the cells can identify, with two cells to spare (one is held out in the self-check)."""
    out = []
    for form in FORMS.values():
        if form.needs_levels and at.n_levels < 2:
            continue
        x = form.design(at, (0.7,) * form.n_exponents)
        if form.n_parameters(at) <= n_cells - 2 and np.linalg.matrix_rank(x) == x.shape[1]:
            out.append(form)
    return out
