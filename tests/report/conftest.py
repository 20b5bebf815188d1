"""Synthetic study records for the report tests: known effects, so the report's answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

SLICES_PER_VOLUME = 50
TOTAL_VOLUMES = 40


def synthetic_records(
    *,
    models=(("unet2d", 2), ("unet3d", 3)),
    densities=(0.1, 0.2, 0.4),
    fractions=(0.25, 0.5, 1.0),
    policies=("fixed", "random", "coreset"),
    repeats=3,
    volume_weight=0.08,
    density_weight=0.01,
    policy_effects=None,
    noise=0.004,
    interpolation_gain=0.0,
    with_interpolation=True,
    with_dense=True,
    with_failed=True,
    seed=0,
) -> list[dict]:
    """IoU = 0.45 + volume_weight*log2(volumes) + density_weight*log2(rho/0.05) + policy effect + noise."""
    rng = np.random.default_rng(seed)
    policy_effects = policy_effects or {}
    records = []

    def add(model, dims, policy, rho, s, repeat, interpolation="off", shift=0.0, dense=False):
        k = round(rho * SLICES_PER_VOLUME)
        volumes = round(s * TOTAL_VOLUMES)
        iou = (0.45 + volume_weight * math.log2(volumes) + density_weight * math.log2(rho / 0.05)
               + policy_effects.get(policy, 0.0) + shift + rng.normal(0.0, noise))
        run_id = f"{model}-r{rho}-s{s}-{policy}-{interpolation}-{repeat}"
        records.append({
            "run_id": run_id, "status": "done", "model": model, "dims": dims, "policy": policy,
            "density": rho, "volume_fraction": s, "repeat": repeat, "interpolation": interpolation,
            "is_dense_baseline": dense, "n_volumes": volumes, "n_volumes_total": TOTAL_VOLUMES,
            "slices_per_volume": float(k), "budget_slices": k * volumes,
            "metrics": {"iou": iou, "dice": 2 * iou / (1 + iou), "hd95": 10 * (1 - iou),
                        "surface_dice": iou + 0.05, "liver_iou": iou, "liver_dice": 2 * iou / (1 + iou)},
            "interp_iou": (0.85 + 0.3 * rho) if interpolation != "off" else None,
            "seconds_train": 100.0 * dims, "seconds_infer_per_case": 0.5 * dims,
            "cpu_seconds_train": 40.0 * dims, "cpu_seconds_infer_per_case": 0.2 * dims, "error": None,
        })

    for model, dims in models:
        for repeat in range(repeats):
            for rho in densities:
                for s in fractions:
                    for policy in policies:
                        add(model, dims, policy, rho, s, repeat)
                        if with_interpolation and s == 1.0 and policy == "fixed":
                            add(model, dims, policy, rho, s, repeat, "sli2vol", shift=interpolation_gain)
            if with_dense:
                add(model, dims, "fixed", 1.0, 1.0, repeat, dense=True)
    if with_failed:
        records.append({
            "run_id": "zz-failed", "status": "failed", "model": models[0][0], "dims": models[0][1],
            "policy": "random", "density": 0.1, "volume_fraction": 0.25, "repeat": 9,
            "interpolation": "off", "is_dense_baseline": False, "n_volumes": None, "n_volumes_total": None,
            "slices_per_volume": None, "budget_slices": None, "metrics": None, "interp_iou": None,
            "seconds_train": None, "seconds_infer_per_case": None,
            "error": "TrainingDiverged: loss became NaN at step 12",
        })
    return records


@pytest.fixture(scope="session")
def make_records():
    return synthetic_records


@pytest.fixture(scope="session")
def paper_like_report():
    """The default synthetic study's report without figures (built once; tests must not change it)."""
    from slicebudget.report import build_report

    return build_report(synthetic_records(), with_figures=False)
