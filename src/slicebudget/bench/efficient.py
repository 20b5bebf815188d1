"""``budget-study bench efficient STUDY_DIR``: each efficient model against its baseline in one study.

The study must hold both models of a pair on the same grid (e.g. studies/efficient-comparison.yaml):
a study pairs its runs by construction (the training seed and the selection depend on the dataset,
the cell and the repeat, never on the model; every run scores the same test cases). For each pair:

- cost: mean training seconds per run and inference seconds per test case, CPU (the run's process,
  which a shared machine does not inflate) and wall, and baseline / efficient ratios;
- quality: the efficient model's IoU minus its baseline's, per paired run (each run's IoU is its mean
  over the test cases), with the mean and a 95% t-interval over the paired runs. The unit is the
  training run, because runs are what repeat independently (test cases are shared by all runs).

"Within the margin" means the interval's lower end is at or above ``-margin`` (0.02 IoU): the
efficient model may be better or up to ``margin`` worse, and the data must show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.planning.observations import load_study_runs
from slicebudget.report.stats import mean_ci

DEFAULT_PAIRS = (("lightmedseg", "unet3d"), ("meddanet_v2", "unet-resnet34"))
MARGIN = 0.02
COSTS = ("cpu_seconds_train", "cpu_seconds_infer_per_case", "seconds_train", "seconds_infer_per_case")
PAIR_KEYS = ("density", "volume_fraction", "policy", "interpolation", "repeat", "is_dense_baseline")


def parse_pairs(texts: Sequence[str]) -> list[tuple[str, str]]:
    """``["lightmedseg=unet3d", ...]`` -> [(efficient, baseline), ...]."""
    pairs = []
    for text in texts:
        efficient, sep, baseline = text.partition("=")
        if not sep or not efficient.strip() or not baseline.strip():
            raise UserError(f"--pair takes EFFICIENT=BASELINE (model names as the report shows them), got {text!r}")
        pairs.append((efficient.strip(), baseline.strip()))
    return pairs


def _key(run: dict) -> tuple:
    return tuple(run[k] for k in PAIR_KEYS)


def compare_pair(runs: list[dict], efficient: str, baseline: str, margin: float = MARGIN) -> dict:
    """Cost ratios and the paired IoU difference of one (efficient, baseline) pair of models."""
    done = [r for r in runs if r["status"] == "done" and r["metrics"] and r["metrics"].get("iou") is not None]
    names = sorted({r["model"] for r in runs})
    by_model = {}
    for name in (efficient, baseline):
        if name not in names:
            raise UserError(f"model {name!r} is not in the study; its models: {', '.join(names)}")
        by_model[name] = {_key(r): r for r in done if r["model"] == name}
    shared = sorted(set(by_model[efficient]) & set(by_model[baseline]), key=str)
    if not shared:
        raise UserError(f"no finished runs of {efficient!r} and {baseline!r} share a grid cell and repeat")
    pairs = [(by_model[efficient][k], by_model[baseline][k]) for k in shared]
    costs = {}
    for cost in COSTS:
        eff = [a.get(cost) for a, _ in pairs]
        base = [b.get(cost) for _, b in pairs]
        if any(v is None for v in eff + base):
            costs[cost] = None  # a run recorded without it (an older study): say nothing
            continue
        costs[cost] = {"efficient": float(np.mean(eff)), "baseline": float(np.mean(base)),
                       "ratio": float(np.mean(base) / np.mean(eff))}
    diffs = [float(a["metrics"]["iou"]) - float(b["metrics"]["iou"]) for a, b in pairs]
    interval = mean_ci(diffs)
    return {
        "efficient": efficient, "baseline": baseline, "paired_runs": len(pairs),
        "iou": {"efficient": float(np.mean([a["metrics"]["iou"] for a, _ in pairs])),
                "baseline": float(np.mean([b["metrics"]["iou"] for _, b in pairs]))},
        "iou_diff": {"mean": interval.mean, "ci": interval.as_list(), "n": interval.n},
        "costs": costs,
        "margin": margin,
        "within_margin": bool(interval.has_interval and interval.low >= -margin),
    }


def compare_study(study_dir: str | Path, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
                  margin: float = MARGIN) -> list[dict]:
    runs = load_study_runs(study_dir)
    return [compare_pair(runs, efficient, baseline, margin) for efficient, baseline in pairs]
