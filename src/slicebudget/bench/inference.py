"""``budget-study bench inference``: NMSW and random-foreground against a tuned sliding window.

For each method (SW; NMSW and RF at K in {3, 5, 10, 15% of N, N}) on held-out phantom volumes:
- seconds: median of ``repeats`` (>= 3) timed runs on the first test volume after a warm-up, with a
  fixed torch thread count; ``cpu_seconds``: the same runs' process CPU time, which other jobs on a
  shared machine do not inflate (with one torch thread it equals wall time on an idle machine).
  Speed-ups and the speed target use CPU seconds. SW's batch size is tuned first: each candidate is
  timed once and the one with the least CPU time is kept; NMSW and RF use the same batch size for
  their local patches.
- macs: ``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs of convolutions and matrix
  products (2 per multiply-accumulate); reported MACs = FLOPs / 2. Interpolation, blending and other
  element-wise work is not counted by it, for any method.
- peak_mb: extra resident memory at the peak of one run, in a fresh process per method
  (:mod:`slicebudget.bench.inference_memory` explains the measurement).
- dice: mean over test volumes of the mean foreground-class Dice against the dense labels, with a
  95% t-interval over the volumes (``dice_ci``); ``dices`` keeps one value per volume.
- paired: NMSW minus RF Dice at each K, per test volume (same volumes, same model), mean with a
  95% t-interval over the volumes: NMSW beats RF only when the interval lies above zero.

Tasks: ``organ`` (one large organ: random foreground patches nearly always hit it), ``lesion``
(one to several small low-contrast lesions per volume) and ``vessel`` (a thin branching tree):
on the last two, where the K patches go decides what is segmented at all.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from slicebudget.bench.inference_memory import measure_peak_mb
from slicebudget.bench.inference_methods import (
    BenchSetup,
    check_checkpoint,
    make_method,
    normalized_tensor,
    phantom_cases,
    train_bench_model,
)
from slicebudget.models.nmsw.model import load_nmsw, save_nmsw
from slicebudget.models.nmsw.patches import patch_grid
from slicebudget.report.stats import mean_ci

SW_BATCH_SIZES = (1, 2, 4, 8)


def k_values(n: int) -> list[int]:
    """K in {3, 5, 10, 15% of N, N}, clamped to N, without duplicates."""
    return sorted({min(k, n) for k in (3, 5, 10, max(1, round(0.15 * n)), n)})


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, process CPU seconds, output) of ``fn()``."""
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = fn()
    return time.perf_counter() - started, time.process_time() - cpu, out


def speed_seconds(row: dict) -> float:
    """The seconds speed is compared on: CPU seconds (reports from before they were kept: wall)."""
    return row.get("cpu_seconds", row["seconds"])


def _onednn_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import conv_flop_count

    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def count_macs(fn: Callable[[], torch.Tensor]) -> int:
    """MACs of ``fn()``; convolutions that NMSW sends straight to oneDNN
    (:mod:`slicebudget.models.nmsw.onednn`) are counted like any other convolution."""
    from torch.utils.flop_counter import FlopCounterMode

    custom = {torch.ops.aten.mkldnn_convolution: _onednn_conv_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        fn()
    return int(counter.get_total_flops() // 2)


def mean_foreground_dice(logits: torch.Tensor, labels: np.ndarray) -> float:
    from slicebudget.metrics import dice

    prediction = logits[0].argmax(dim=0).cpu().numpy()
    return float(np.mean([dice(prediction == c, labels == c) for c in range(1, logits.shape[1])]))


def tune_sw_batch_size(model, image: torch.Tensor, patch_size, on_stage) -> tuple[int, dict[int, float]]:
    """Time SW once per candidate batch size (after one warm-up) and keep the one with least CPU time."""
    timed(lambda: make_method("sw", model, None, SW_BATCH_SIZES[0], patch_size)(image))
    seconds = {}
    for batch_size in SW_BATCH_SIZES:
        on_stage(f"tuning the sliding window: batch size {batch_size}")
        _, seconds[batch_size], _ = timed(lambda b=batch_size: make_method("sw", model, None, b, patch_size)(image))
    return min(seconds, key=seconds.get), seconds


def load_or_train(setup: BenchSetup, checkpoint: Path | None, iterations: int, workdir: Path, on_stage):
    """The cached checkpoint when it exists, else a freshly trained model saved there (or in workdir)."""
    if checkpoint is not None and checkpoint.exists():
        on_stage(f"loading {checkpoint}")
        model, facts = load_nmsw(checkpoint, backbone=setup.backbone)
        check_checkpoint(setup, model, facts, checkpoint)
        return model, facts, checkpoint, False
    model, facts = train_bench_model(setup, iterations, on_stage)
    path = save_nmsw(model, checkpoint if checkpoint is not None else workdir / "nmsw.pt", facts)
    return model, facts, path, True


def run_inference_bench(
    setup: BenchSetup,
    iterations: int,
    checkpoint: Path | None,
    threads: int,
    repeats: int = 3,
    on_stage: Callable[[str], None] = lambda text: None,
    ks: Sequence[int] | None = None,
) -> dict:
    """Train or load, then measure every row; returns the JSON-ready report. ``ks``: the K values
    of the NMSW and RF rows (default :func:`k_values`), each clamped to N."""
    from slicebudget.data.preprocess import Normalization

    if repeats < 3:
        raise ValueError(f"repeats must be at least 3, got {repeats}")
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="nmsw-bench-") as tmp:
        workdir = Path(tmp)
        model, facts, checkpoint_path, trained = load_or_train(setup, checkpoint, iterations, workdir, on_stage)
        model.eval()
        normalization = Normalization(**facts["normalization"])
        tests = phantom_cases(setup.task, setup.volume_shape, setup.test_seeds)
        images = [normalized_tensor(image, normalization) for image, _ in tests]
        volume_path = workdir / "volume.pt"
        torch.save(images[0], volume_path)
        n = patch_grid(setup.volume_shape, setup.patch_size).n_patches
        batch_size, tuning = tune_sw_batch_size(model, images[0], setup.patch_size, on_stage)

        rows = []
        chosen = k_values(n) if ks is None else sorted({min(int(k), n) for k in ks})
        for method, k in [("sw", None)] + [(m, k) for k in chosen for m in ("nmsw", "rf")]:
            label = method if k is None else f"{method} K={k}"
            run = make_method(method, model, k, batch_size, setup.patch_size)
            on_stage(f"timing {label}")
            timed(lambda: run(images[0]))  # warm-up
            runs, cpu_runs, outputs = zip(*(timed(lambda: run(images[0])) for _ in range(repeats)))
            on_stage(f"scoring {label}")
            dices = [mean_foreground_dice(outputs[0], tests[0][1])]
            dices += [mean_foreground_dice(run(image), labels) for image, (_, labels) in zip(images[1:], tests[1:])]
            on_stage(f"counting MACs and peak memory of {label}")
            job = {"checkpoint": str(checkpoint_path), "volume": str(volume_path), "method": method, "k": k,
                   "batch_size": batch_size, "patch_size": list(setup.patch_size), "threads": threads}
            rows.append({
                "method": method, "k": k, "seconds": statistics.median(runs), "cpu_seconds": statistics.median(cpu_runs),
                "macs": count_macs(lambda: run(images[0])),
                "peak_mb": measure_peak_mb(job), "dice": float(np.mean(dices)),
                "dice_ci": mean_ci(dices).as_list(), "dices": dices, "runs_s": list(runs),
            })
    return {
        "n_patches": n,
        "patch_size": list(setup.patch_size),
        "volume_shape": list(setup.volume_shape),
        "rows": rows,
        "paired": paired_nmsw_rf(rows),
        "task": setup.task,
        "threads": threads,
        "sw_batch_size": batch_size,
        "sw_batch_tuning_cpu_s": {str(b): s for b, s in tuning.items()},
        "test_seeds": list(setup.test_seeds),
        "trained_now": trained,
        "training": {key: facts.get(key) for key in ("iterations", "backbone_iterations", "tau", "class_weight")},
        "notes": [
            "macs = FlopCounterMode FLOPs / 2 (convolutions and matrix products only)",
            "peak_mb = resident-set high-water mark above the pre-run RSS, one fresh process per method, "
            "after a warm-up run, glibc mmap threshold 64 KiB",
            "dice = mean over held-out test volumes of the mean foreground-class Dice; dice_ci its 95% "
            "t-interval over the volumes",
            "paired = NMSW minus RF Dice per test volume at the same K: mean and 95% t-interval",
        ],
    }


def paired_nmsw_rf(rows: list[dict]) -> list[dict]:
    """Per K: NMSW minus RF Dice on each test volume, its mean and 95% t-interval over volumes."""
    rf = {r["k"]: r for r in rows if r["method"] == "rf"}
    paired = []
    for row in rows:
        if row["method"] == "nmsw" and row["k"] in rf:
            diffs = [a - b for a, b in zip(row["dices"], rf[row["k"]]["dices"], strict=True)]
            interval = mean_ci(diffs)
            paired.append({"k": row["k"], "diff": interval.mean, "ci": interval.as_list(), "n": interval.n})
    return paired


def target_checks(report: dict) -> list[tuple[str, bool]]:
    """The issue's targets, evaluated on a report (for printing, not for tuning)."""
    n = report["n_patches"]
    rows = report["rows"]
    sw = next(r for r in rows if r["method"] == "sw")
    nmsw = {r["k"]: r for r in rows if r["method"] == "nmsw"}
    rf = {r["k"]: r for r in rows if r["method"] == "rf"}
    checks = []
    for k in sorted(k for k in nmsw if k / n <= 0.07):
        row = nmsw[k]
        speed_up = speed_seconds(sw) / speed_seconds(row)
        checks.append((f"NMSW K={k} ({k / n:.1%} of N) >= 6x faster than the tuned SW: {speed_up:.1f}x", speed_up >= 6))
        checks.append((f"NMSW K={k} >= 85% fewer MACs: {1 - row['macs'] / sw['macs']:.1%}",
                       row["macs"] <= 0.15 * sw["macs"]))
    k15 = max(1, round(0.15 * n))
    if k15 in nmsw:
        gap = sw["dice"] - nmsw[k15]["dice"]
        checks.append((f"NMSW K={k15} Dice within 0.02 of SW: {nmsw[k15]['dice']:.3f} vs {sw['dice']:.3f}", gap <= 0.02))
    for k in (3, 5, 10):
        if k in nmsw and k in rf:
            checks.append((f"NMSW K={k} Dice >= RF: {nmsw[k]['dice']:.3f} vs {rf[k]['dice']:.3f}",
                           nmsw[k]["dice"] >= rf[k]["dice"]))
    for pair in report.get("paired", []):
        if pair["k"] / n <= 0.07 and pair["ci"] is not None:
            low, high = pair["ci"]
            checks.append((f"NMSW K={pair['k']} Dice above RF beyond the interval: {pair['diff']:+.3f} "
                           f"(95% CI {low:+.3f} to {high:+.3f} over {pair['n']} test volumes)", low > 0))
    for k in sorted(k for k in nmsw if k <= k15):
        checks.append((f"NMSW K={k} peak memory <= SW: {nmsw[k]['peak_mb']:.0f} vs {sw['peak_mb']:.0f} MB",
                       nmsw[k]["peak_mb"] <= sw["peak_mb"]))
    return checks
