"""Timings behind `budget-study bench selection`.

What is timed, per figure (each the median of ``runs`` runs after one warm-up run):

- ``coreset volume (intensity)``: ``CoresetPolicy().select`` on a 300 x 512 x 512 float32 organ
  phantom at density 0.1 (30 slices): thumbnails (area averaging to 32 x 32), PCA, k-center.
  Target <= 2 s on 2 cores.
- ``coreset volume (encoder)``: the same with the conv-autoencoder features (training included).
  No target; shown for comparison.
- ``k-center step``: ``kcenter_greedy`` alone on that volume's 300 x 32 PCA features. Target <= 50 ms.
- ``dataset k-center`` / ``dataset k-center, quota``: ``kcenter_greedy`` over a pool of synthetic
  32-d features (a Gaussian mixture standing in for PCA features; extraction is timed separately)
  for ``pool_size`` slices in volumes of 250, budget 10% of the pool. Target <= 20 s.
- ``dataset PCA features``: PCA (randomized, 32 components) fitted on ``pool_size`` synthetic
  32 x 32 thumbnails, i.e. the feature step of dataset-level selection once thumbnails exist.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

VOLUME_SHAPE = (300, 512, 512)
SLICES_PER_POOL_VOLUME = 250
FEATURE_DIM = 32


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: imports, allocator, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _row(name: str, what: str, times: list[float], target_s: float | None) -> dict:
    median = statistics.median(times)
    return {
        "name": name,
        "what": what,
        "median_s": median,
        "runs_s": times,
        "target_s": target_s,
        "met": None if target_s is None else bool(median <= target_s),
    }


def synthetic_pool_features(n: int, dim: int = FEATURE_DIM, clusters: int = 64, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 features with cluster structure, like PCA features of many volumes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(clusters, size=n)
    return centres[labels] + rng.standard_normal((n, dim), dtype=np.float32)


def run_selection_bench(runs: int = 3, pool_size: int = 50_000, on_stage: Callable[[str], None] | None = None) -> dict:
    """Run every timing; returns {"machine": ..., "rows": [...]} (see the module docstring)."""
    from slicebudget.data.phantoms import generate_phantom
    from slicebudget.selection.base import n_slices_for_density
    from slicebudget.selection.coreset import CoresetPolicy
    from slicebudget.selection.features import IntensityPCAFeatures, slice_thumbnails
    from slicebudget.selection.kcenter import kcenter_greedy

    def stage(text: str) -> None:
        if on_stage is not None:
            on_stage(text)

    stage("generating a 300 x 512 x 512 phantom")
    volume, _ = generate_phantom("organ", VOLUME_SHAPE, (1.0, 0.8, 0.8), 0)
    n_pick = round(0.1 * VOLUME_SHAPE[0])
    rows = []

    stage("coreset selection (intensity features)")
    times = _timed(lambda: CoresetPolicy().select(volume, n_pick, 0), runs)
    rows.append(_row("coreset volume (intensity)",
                     f"select {n_pick} of 300 slices of 512x512: 32x32 thumbnails + PCA(32) + k-center", times, 2.0))

    stage("coreset selection (encoder features)")
    times = _timed(lambda: CoresetPolicy(features="encoder").select(volume, n_pick, 0), runs)
    rows.append(_row("coreset volume (encoder)",
                     f"select {n_pick} of 300: 64x64 thumbnails + autoencoder training (60 steps) + k-center", times, None))

    stage("k-center on one volume")
    features = IntensityPCAFeatures().fit_transform(slice_thumbnails(volume, 32), seed=0)
    del volume
    times = _timed(lambda: kcenter_greedy(features, n_pick), runs)
    rows.append(_row("k-center step", f"greedy k-center alone, {n_pick} of 300 points x {features.shape[1]}-d", times, 0.05))

    pool = synthetic_pool_features(pool_size)
    budget = pool_size // 10
    n_volumes = -(-pool_size // SLICES_PER_POOL_VOLUME)
    groups = np.minimum(np.arange(pool_size) // SLICES_PER_POOL_VOLUME, n_volumes - 1)
    depths = np.bincount(groups, minlength=n_volumes)
    quotas = [n_slices_for_density(int(d), 0.1) for d in depths]
    quota_total = sum(quotas)

    stage(f"dataset-level k-center over {pool_size} slices")
    times = _timed(lambda: kcenter_greedy(pool, budget), runs)
    rows.append(_row("dataset k-center", f"{budget} of {pool_size} synthetic {FEATURE_DIM}-d slice features, no quota", times, 20.0))

    stage(f"dataset-level k-center with quotas over {pool_size} slices")
    times = _timed(lambda: kcenter_greedy(pool, quota_total, groups=groups, quotas=quotas), runs)
    rows.append(_row("dataset k-center, quota",
                     f"{quota_total} of {pool_size}, equal share in each of {n_volumes} volumes", times, 20.0))

    stage(f"PCA on {pool_size} thumbnails")
    thumbs = np.random.default_rng(1).standard_normal((pool_size, 32, 32), dtype=np.float32)
    thumbs += pool[:, :1, None]  # some shared low-rank structure, as real slices have
    times = _timed(lambda: IntensityPCAFeatures().fit_transform(thumbs, seed=0), runs)
    rows.append(_row("dataset PCA features", f"PCA(32, randomized) fitted on {pool_size} 32x32 thumbnails", times, None))

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}"
    return {"machine": machine, "runs": runs, "pool_size": pool_size, "rows": rows}
