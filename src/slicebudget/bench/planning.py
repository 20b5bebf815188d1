"""Synthetic studies with a known budget surface, and the `budget-study bench plan` timing.

``synthetic_runs`` draws run records the way a study produces them: one IoU per (cell, repeat,
test case) from a known surface ``a - b n^-alpha - c k^-beta`` plus a repeat effect shared by the
repeat's runs in the same cell, a case effect shared by every run (the test set is common), and
residual noise. The planner's fit should recover the surface from them (tests), and
``write_synthetic_study`` writes them as a real study folder (store + results.csv per run) for
timing ``budget-study plan`` on a large study.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TrueSurface:
    a: float = 0.85
    b: float = 0.5
    alpha: float = 0.8
    c: float = 0.3
    beta: float = 0.7
    policy_offsets: tuple[float, ...] = (0.0, -0.02)

    def __call__(self, n, k, level=0):
        offsets = np.asarray(self.policy_offsets)[np.asarray(level, int)]
        return self.a - self.b * np.asarray(n, float) ** -self.alpha - self.c * np.asarray(k, float) ** -self.beta + offsets


def synthetic_runs(truth: TrueSurface = TrueSurface(), densities=(0.1, 0.2, 0.3, 0.5), fractions=(0.25, 0.5, 1.0),
                   policies=("fixed",), repeats: int = 3, cases: int = 6, n_total: int = 16, depth: int = 20,
                   repeat_sd: float = 0.02, case_sd: float = 0.05, residual_sd: float = 0.01, seed: int = 0,
                   model: str = "unet-resnet18", dims: int = 2, shared_repeat_sd: float = 0.0) -> list[dict]:
    """Run records (as ``StudyStore.runs()`` gives them, plus ``case_iou``) from a known surface.

    ``shared_repeat_sd``: SD of a repeat effect shared by all the repeat's runs (a study draws a
    repeat's volumes and training seed once for every cell), on top of the per-cell ``repeat_sd``."""
    rng = np.random.default_rng(seed)
    case_effect = rng.normal(0.0, case_sd, cases)
    case_ids = [f"case_{i:03d}" for i in range(cases)]
    # drawn from their own generator, so worlds without them keep the records they always had
    shared = np.random.default_rng([seed, 1]).normal(0.0, shared_repeat_sd, repeats) if shared_repeat_sd else np.zeros(repeats)
    records = []
    for repeat in range(repeats):
        for p, policy in enumerate(policies):
            for rho in densities:
                for s in fractions:
                    n = max(1, int(round(s * n_total)))
                    k = max(1, int(round(rho * depth)))
                    mean = float(truth(n, k, p)) + shared[repeat] + rng.normal(0.0, repeat_sd)
                    iou = np.clip(mean + case_effect + rng.normal(0.0, residual_sd, cases), 0.0, 1.0)
                    records.append({
                        "run_id": f"{model}-{policy}-{rho:g}-{s:g}-{repeat}", "status": "done", "model": model,
                        "dims": dims, "policy": policy, "density": float(rho), "volume_fraction": float(s),
                        "repeat": repeat, "interpolation": "off", "is_dense_baseline": False,
                        "n_volumes": n, "n_volumes_total": n_total, "slices_per_volume": float(k),
                        "budget_slices": n * k, "metrics": {"iou": float(iou.mean())},
                        "case_iou": dict(zip(case_ids, map(float, iou))),
                    })
    return records


def write_synthetic_study(folder: str | Path, records: list[dict]) -> Path:
    """A study folder holding ``records`` as finished runs (store rows and each run's results.csv)."""
    from slicebudget.metrics import write_results_csv
    from slicebudget.study.store import StudyStore

    folder = Path(folder)
    specs = []
    for r in records:
        specs.append((r["run_id"], {
            "model": {"name": r["model"], "display_name": r["model"], "dims": r["dims"]},
            "policy": r["policy"], "density": r["density"], "volume_fraction": r["volume_fraction"],
            "repeat": r["repeat"], "interpolation": r["interpolation"], "is_dense_baseline": r["is_dense_baseline"],
            "n_volumes": r["n_volumes"], "n_volumes_total": r["n_volumes_total"],
        }))
    with StudyStore(folder, create=True) as store:
        store.sync_grid(specs)
        store.set_meta("config", {"name": "synthetic", "costs": None})
        for r in records:
            store.mark_done(r["run_id"], {"metrics": r["metrics"], "n_volumes": r["n_volumes"],
                                          "n_volumes_total": r["n_volumes_total"],
                                          "slices_per_volume": r["slices_per_volume"],
                                          "budget_slices": r["budget_slices"]})
            run_dir = folder / "runs" / r["run_id"]
            run_dir.mkdir(parents=True, exist_ok=True)
            write_results_csv(run_dir / "results.csv", {c: {"iou": v} for c, v in r["case_iou"].items()})
    (folder / "synthetic.json").write_text(json.dumps({"runs": len(records)}) + "\n")
    return folder


def large_synthetic_records(runs: int = 1000, seed: int = 0) -> list[dict]:
    """At least ``runs`` records: 5 densities x 4 fractions x 2 models x 3 repeats x as many policies as it takes."""
    import math

    densities = (0.05, 0.1, 0.2, 0.4, 0.8)
    fractions = (0.125, 0.25, 0.5, 1.0)
    per_policy = len(densities) * len(fractions) * 3 * 2
    policies = tuple(f"policy{i}" for i in range(max(1, math.ceil(runs / per_policy))))
    offsets = tuple(-0.01 * i for i in range(len(policies)))
    records = []
    for m, model in enumerate(("unet-resnet34", "segformer-mit_b2")):
        truth = TrueSurface(a=0.85 - 0.03 * m, policy_offsets=offsets)
        records += synthetic_runs(truth, densities, fractions, policies, repeats=3, cases=8, n_total=32, depth=64,
                                  seed=seed + m, model=model)
    return records


def bench_plan(folder: str | Path, budget: float = 400.0, repeats: int = 3) -> dict:
    """Wall and CPU seconds of `budget-study plan` on the study in ``folder`` (``repeats`` fresh processes)."""
    import resource
    import subprocess
    import sys

    times, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "slicebudget.cli.main", "plan", str(folder), "--budget", str(budget),
                        "--target-iou", "0.8"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    # CPU seconds beside wall seconds: on a shared machine the wall time also measures the neighbours.
    return {"seconds": times, "best": min(times), "cpu_seconds": cpu}
