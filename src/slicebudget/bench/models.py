"""Benchmarks behind ``budget-study bench models``: size, FLOPs and CPU time of every registered
model, and Med-DANet V2's dynamic-versus-static compute and Dice on organ phantoms.

Standard inputs: 2D models a 1 x 1 x 256 x 256 slice with 2 classes; 3D models a BraTS-like
1 x 4 x 128^3 volume with 4 classes (LightMedSeg's paper setting). FLOPs are FlopCounterMode's
(2 per MAC). Med-DANet V2 is measured in its static form here (whole slice, full precision, i.e.
its worst case); its dynamic cost depends on a trained policy and comes from :func:`bench_meddanet`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

STANDARD_INPUTS: dict[int, tuple[tuple[int, ...], int]] = {
    2: ((1, 1, 256, 256), 2),
    3: ((1, 4, 128, 128, 128), 4),
}
PHANTOM_WINDOW_HU = (-250.0, 250.0)  # soft-tissue window; scaled to [-2, 2]


def bench_model(name: str, repeats: int = 3, warmup: int = 1, threads: int = 2,
                input_shape: tuple[int, ...] | None = None, classes: int | None = None) -> dict:
    """Parameters, FLOPs and median CPU forward time (ms) of one registered model."""
    import torch

    from slicebudget.models.flops import count_parameters, flops_of
    from slicebudget.models.registry import create_model, model_info

    dims = model_info(name)[0]
    default_shape, default_classes = STANDARD_INPUTS[dims]
    shape = tuple(input_shape or default_shape)
    classes = int(classes or default_classes)
    model = create_model(name, dims=dims, in_channels=shape[1], classes=classes, seed=0).eval()
    forward = model.static_forward if hasattr(model, "static_forward") else model
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            _, flops = flops_of(forward, example)
            for _ in range(warmup):
                forward(example)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                forward(example)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        torch.set_num_threads(previous_threads)
    record = {
        "name": name,
        "dims": dims,
        "input_shape": list(shape),
        "classes": classes,
        "params": count_parameters(model),
        "flops": flops,
        "cpu_forward_ms": statistics.median(times),
        "threads": threads,
    }
    if hasattr(model, "static_forward"):
        record["note"] = "static form: whole slice, full precision (dynamic cost: --meddanet)"
    return record


def bench_models(names: Sequence[str] | None = None, repeats: int = 3, warmup: int = 1, threads: int = 2,
                 on_model: Callable[[str], None] | None = None) -> list[dict]:
    """:func:`bench_model` for each named model (default: every registered model)."""
    from slicebudget.models.registry import MODEL_REGISTRY, model_info

    records = []
    for name in names or list(MODEL_REGISTRY):
        model_info(name)  # unknown names fail before any work
        if on_model is not None:
            on_model(name)
        records.append(bench_model(name, repeats=repeats, warmup=warmup, threads=threads))
    return records


# ---- Med-DANet V2: dynamic versus static -------------------------------------------------------
def organ_phantom_volumes(count: int, shape: tuple[int, int, int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` organ phantoms as (1, D, H, W) windowed images and (D, H, W) binary organ labels.

    The tumour is merged into the organ: one foreground class keeps the few-minute CPU training of
    the benchmark about the policy's trade-off rather than about a hard small class.
    Spacing scales with the in-plane size so the anatomy looks the same at any size.
    """
    from slicebudget.data.phantoms import DEFAULT_SHAPE, DEFAULT_SPACING, generate_phantom

    inplane = DEFAULT_SPACING[1] * DEFAULT_SHAPE[1] / shape[1]
    spacing = (DEFAULT_SPACING[0], inplane, inplane)
    low, high = PHANTOM_WINDOW_HU
    images, labels = [], []
    for index in range(count):
        image, label = generate_phantom("organ", shape, spacing, rng=seed + index)
        scaled = (np.clip(image, low, high) - (low + high) / 2) / ((high - low) / 4)
        images.append(scaled[None].astype(np.float32))
        labels.append((label > 0).astype(np.int64))
    return images, labels


def slice_batches(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], batch_size: int,
                  rng: np.random.Generator) -> Iterator[tuple]:
    """Endless batches of slices drawn uniformly from all slices of all volumes (no ignore mask)."""
    import torch

    slices = torch.from_numpy(np.concatenate([np.moveaxis(v, 1, 0) for v in images]))
    targets = torch.from_numpy(np.concatenate(labels))
    while True:
        index = torch.from_numpy(rng.integers(0, slices.shape[0], batch_size))
        yield slices[index], targets[index], None


def bench_meddanet(
    slice_size: int = 48,
    crop_size: int = 32,
    depth: int = 32,
    train_volumes: int = 8,
    test_volumes: int = 3,
    phase_steps: Sequence[int] = (40, 80, 20, 10),
    batch_size: int = 8,
    learning_rate: float = 5e-3,
    seed: int = 0,
    threads: int = 2,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Train Med-DANet V2 briefly on organ phantoms; compare it with its own static U-Net.

    Static = the same trained network run as a plain U-Net on every whole slice at full precision.
    GFLOPs per slice are averaged over every slice of the test volumes (skipped ones included);
    ``measured`` figures come from FlopCounterMode over the whole evaluation, the others from the
    model's per-slice accounting (they agree). Dice: mean over test volumes of the 3D organ Dice.
    """
    import torch

    from slicebudget.models.meddanet_v2.training import evaluate_volumes
    from slicebudget.training.meddanet_v2 import train_meddanet_v2
    from slicebudget.models.registry import create_model

    shape = (depth, slice_size, slice_size)
    train_images, train_labels = organ_phantom_volumes(train_volumes, shape, seed)
    test_images, test_labels = organ_phantom_volumes(test_volumes, shape, seed + 10_000)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        model = create_model("meddanet_v2", dims=2, in_channels=1, classes=2, seed=seed, crop_size=crop_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            batches = slice_batches(train_images, train_labels, batch_size, np.random.default_rng(seed))
            train_meddanet_v2(model, batches, phase_steps, learning_rate=learning_rate, on_progress=on_progress)
        train_seconds = time.perf_counter() - started
        static = evaluate_volumes(model, test_images, test_labels, classes=2, static=True)
        dynamic = evaluate_volumes(model, test_images, test_labels, classes=2, static=False)
    finally:
        torch.set_num_threads(previous_threads)
    empty = float(np.mean([(label.reshape(label.shape[0], -1).max(axis=1) == 0).mean() for label in test_labels]))
    return {
        "slice_size": slice_size,
        "crop_size": crop_size,
        "train_slices": train_volumes * depth,
        "test_slices": test_volumes * depth,
        "empty_slice_share": empty,
        "phase_steps": list(phase_steps),
        "train_seconds": train_seconds,
        "static": static.__dict__,
        "dynamic": dynamic.__dict__,
        "compute_reduction": static.measured_gflops_per_slice / dynamic.measured_gflops_per_slice,
        "bit_weighted_compute_reduction": static.bit_gflops_per_slice / dynamic.bit_gflops_per_slice,
        "dice_difference": dynamic.dice - static.dice,
    }
