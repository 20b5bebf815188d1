"""Is the planner's confidence honest? Its plans on synthetic studies whose true surface is known.

Each world is a small study drawn by ``bench.planning.synthetic_runs`` (4 densities x 4 volume
fractions x 3 repeats, one policy) from a known surface; the planner fits it exactly as
``budget-study plan`` does and plans each budget. Against the truth:

- P(best beats runner-up): its mean beside how often the best truly beats the runner-up (an honest
  P averages to that share), the Brier score, and how often a claim of P >= 0.9 was right;
- the 80% and 95% intervals of the best plan: how often they hold a new campaign's IoU (the true
  surface plus a new repeat effect and the mean over new test cases of case and residual effects,
  drawn as ``synthetic_runs`` draws them).

Worlds: ``in-family`` is the saturating power law the planner can fit (its exponents up to the grid
the fit profiles over); ``shared`` adds a repeat effect shared by every cell of a repeat, as a real
study's repeats share their volumes and training seed; ``bump`` adds a Gaussian bump of +-0.06 in
(log n, log k) that no form follows, so forms compete and disagree on plans.
Every world's seed is its index (paired across planner variants).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.bench.planning import TrueSurface, synthetic_runs

BUDGETS = (24, 40, 60, 100)
DENSITIES = (0.1, 0.2, 0.3, 0.5)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
N_TOTAL, DEPTH, CASES = 16, 20, 6
REPEAT_SD, CASE_SD, RESIDUAL_SD = 0.02, 0.05, 0.01


@dataclass(frozen=True)
class BumpySurface(TrueSurface):
    """The power law plus ``height`` x a Gaussian of SD ``width`` in (log n, log k) at (n0, k0)."""

    height: float = 0.0
    width: float = 0.35
    n0: float = 8.0
    k0: float = 4.0

    def __call__(self, n, k, level=0):
        base = super().__call__(n, k, level)
        d2 = (np.log(np.asarray(n, float) / self.n0) ** 2 + np.log(np.asarray(k, float) / self.k0) ** 2)
        return base + self.height * np.exp(-0.5 * d2 / self.width ** 2)


KINDS = ("in-family", "shared", "bump")
SHARED_SD = {"shared": 0.02}  # worlds whose repeats share an effect across cells (``synthetic_runs``)


def world(kind: str, seed: int) -> TrueSurface:
    """The true surface of world ``seed`` of ``kind`` (its bump, if any, placed and signed by the seed)."""
    if kind in ("in-family", "shared"):
        return TrueSurface(policy_offsets=(0.0,))
    if kind == "bump":
        rng = np.random.default_rng(10_000 + seed)
        return BumpySurface(policy_offsets=(0.0,), height=float(rng.choice([-0.06, 0.06])),
                            n0=float(np.exp(rng.uniform(np.log(4), np.log(16)))),
                            k0=float(np.exp(rng.uniform(np.log(2), np.log(10)))))
    raise ValueError(f"unknown world kind {kind!r}; choose from {', '.join(KINDS)}")


def new_campaign(kind: str, truth: TrueSurface, n: int, k: int, rng: np.random.Generator) -> float:
    """One new campaign's IoU at (n, k) on the population it will be used on: the true surface plus a
    new repeat effect (its own volumes and training seed); case effects average out over a population."""
    spread = np.hypot(REPEAT_SD, SHARED_SD.get(kind, 0.0))
    return float(np.clip(float(truth(n, k)) + rng.normal(0.0, spread), 0.0, 1.0))


def plans_in_world(kind: str, seed: int, budgets=BUDGETS) -> list[dict]:
    """The planner's plan at each budget in world ``seed``, scored against its truth."""
    from slicebudget.planning.plan import fit_model, plan_surface

    truth = world(kind, seed)
    runs = synthetic_runs(truth, DENSITIES, FRACTIONS, repeats=3, cases=CASES, n_total=N_TOTAL, depth=DEPTH,
                          repeat_sd=REPEAT_SD, case_sd=CASE_SD, residual_sd=RESIDUAL_SD, seed=seed,
                          shared_repeat_sd=SHARED_SD.get(kind, 0.0))
    surface, check = fit_model(runs, runs[0]["model"], runs[0]["dims"], None, seed=seed)
    rng = np.random.default_rng(20_000 + seed)
    out = []
    for budget in budgets:
        plan = plan_surface(surface, check, budget)
        if plan.runner_up is None:
            continue
        b, r = plan.best, plan.runner_up
        value = new_campaign(kind, truth, b.n_volumes, b.slices_per_volume, rng)
        out.append({"seed": seed, "budget": budget, "p": float(plan.prob_best_beats_runner_up),
                    "won": bool(truth(b.n_volumes, b.slices_per_volume) > truth(r.n_volumes, r.slices_per_volume)),
                    "in80": bool(b.interval80[0] <= value <= b.interval80[1]),
                    "in95": bool(b.interval95[0] <= value <= b.interval95[1]),
                    "forms": plan.surface["form_shares"]})
    return out


def summarise(rows: list[dict]) -> dict:
    """The calibration figures of ``rows`` (``plans_in_world`` rows), with the share's binomial SE."""
    p = np.array([r["p"] for r in rows])
    won = np.array([r["won"] for r in rows], float)
    sure = p >= 0.9
    return {"pairs": len(rows), "mean_p": float(p.mean()), "truly_won": float(won.mean()),
            "truly_won_se": float(np.sqrt(won.mean() * (1 - won.mean()) / max(len(rows), 1))),
            "brier": float(np.mean((p - won) ** 2)), "claims_p90": int(sure.sum()),
            "claims_p90_right": float(won[sure].mean()) if sure.any() else None,
            "coverage80": float(np.mean([r["in80"] for r in rows])),
            "coverage95": float(np.mean([r["in95"] for r in rows]))}


def calibration(kinds=KINDS, worlds: int = 40, budgets=BUDGETS, progress=None) -> dict:
    """``summarise`` per world kind over ``worlds`` seeds (``progress()`` called after each world)."""
    out = {}
    for kind in kinds:
        rows = []
        for seed in range(worlds):
            rows += plans_in_world(kind, seed, budgets)
            if progress is not None:
                progress()
        out[kind] = summarise(rows)
    return out
