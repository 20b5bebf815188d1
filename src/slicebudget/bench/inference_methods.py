"""What the inference benchmark compares, and the model it compares them on.

Methods (all return logits for a (1, C, D, H, W) volume, all with the same local network):
``sw``   sliding window, overlap 0.5, Gaussian blending, no test-time augmentation;
``nmsw`` deterministic top-K NMSW;
``rf``   random-foreground patches at the same K (fixed seed).

The model: phantom volumes (training seeds disjoint from test seeds) normalised the MIST way, a
small 3D backbone trained on patches by the project's ordinary training loop (exactly what a
study trains), then NMSW's global network and class weight trained around it with the local
network frozen, so SW, NMSW and RF share one local model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from slicebudget.errors import UserError
from slicebudget.inference.nmsw.inferer import NMSWInferer
from slicebudget.models.nmsw.model import NMSWModel, build_nmsw_model
from slicebudget.inference.nmsw.random_foreground import RandomForegroundInferer
from slicebudget.training.nmsw import train_nmsw_recipe

METHODS = ("sw", "nmsw", "rf")


@dataclass(frozen=True)
class BenchSetup:
    """Sizes and models of the benchmark; N = 3 x 6 x 6 = 108 patches with the defaults."""

    task: str = "organ"
    volume_shape: tuple[int, int, int] = (48, 128, 128)
    patch_size: tuple[int, int, int] = (24, 40, 40)
    backbone: str = "unet3d"
    local_params: dict = field(default_factory=lambda: {"base_channels": 8, "depth": 3})
    global_params: dict = field(default_factory=lambda: {"base_channels": 4, "depth": 4})
    global_scale: tuple[float, float, float] = (0.5, 0.5, 0.5)
    train_seeds: tuple[int, ...] = tuple(range(8))
    test_seeds: tuple[int, ...] = tuple(range(1000, 1010))  # ten: intervals over test volumes
    backbone_iterations_per_nmsw_iteration: int = 3  # a patch step costs about a third of a volume step
    seed: int = 0


def make_method(name: str, model: NMSWModel, k: int | None, batch_size: int, patch_size: Sequence[int]) -> Callable:
    """``method(image) -> logits`` for one benchmark row."""
    from slicebudget.models.sliding_window import sliding_window_inference

    if name == "sw":
        return lambda image: sliding_window_inference(image, model.local_net, tuple(patch_size), 0.5, batch_size)
    if name == "nmsw":
        return NMSWInferer(model, k, batch_size)
    if name == "rf":
        return RandomForegroundInferer(model, k, seed=0, batch_size=batch_size)
    raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")


def phantom_cases(task: str, shape: Sequence[int], seeds: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image in HU, labels) per seed; the seed is the phantom generator's, so cases are reproducible."""
    from slicebudget.data.phantoms import generate_phantom

    return [generate_phantom(task, shape, rng=seed) for seed in seeds]


def fit_normalization(cases: Sequence[tuple[np.ndarray, np.ndarray]]):
    """MIST's CT normalisation from the training cases' labelled voxels."""
    from slicebudget.data.preprocess import foreground_sample, normalization_from_samples

    return normalization_from_samples(foreground_sample(image, labels) for image, labels in cases)


def normalized_tensor(image: np.ndarray, normalization) -> torch.Tensor:
    return torch.from_numpy(normalization.apply(image))[None, None]


def train_bench_model(setup: BenchSetup, iterations: int, on_stage: Callable[[str], None]) -> tuple[NMSWModel, dict]:
    """Train the backbone on patches, then NMSW around it; return the model and checkpoint facts."""
    from slicebudget.data.phantoms import TASK_LABELS
    from slicebudget.models import create_model
    from slicebudget.training import TrainingCase, TrainSpec, train_model
    from slicebudget.volume import SparseAnnotation

    classes = len(TASK_LABELS[setup.task])
    raw = phantom_cases(setup.task, setup.volume_shape, setup.train_seeds)
    normalization = fit_normalization(raw)
    cases = [
        TrainingCase(f"train{seed}", normalization.apply(image)[None],
                     SparseAnnotation.from_dense(labels, range(labels.shape[0])))
        for seed, (image, labels) in zip(setup.train_seeds, raw, strict=True)
    ]
    torch.manual_seed(setup.seed)
    backbone = create_model(setup.backbone, dims=3, in_channels=1, classes=classes, **setup.local_params)
    backbone_iterations = iterations * setup.backbone_iterations_per_nmsw_iteration
    sampling = {"foreground": 0.4, "background": 0.3}
    if classes > 2:
        sampling["class_2"] = 0.3  # the small inner structure (the tumour) needs patches of its own
    spec = TrainSpec(iterations=backbone_iterations, batch_size=2, learning_rate=2e-3, val_every=backbone_iterations,
                     seed=setup.seed, device="cpu", augment=False, patch_size=setup.patch_size, sampling=sampling)

    def backbone_progress(record: dict) -> None:
        if record["iteration"] % 10 == 0:
            on_stage(f"training the {setup.backbone} backbone: iteration {record['iteration']}/{backbone_iterations}, "
                     f"loss {record['loss']:.3f}")

    backbone = train_model(backbone, cases, [], spec, dims=3, n_classes=classes, on_progress=backbone_progress).model
    model = build_nmsw_model(setup.backbone, 1, classes, setup.patch_size, setup.local_params, setup.global_params,
                             local_net=backbone, global_scale=setup.global_scale)

    def nmsw_progress(record: dict) -> None:
        if "warmup" in record:
            if record["warmup"] % 20 == 0:
                on_stage(f"warming up the global network: step {record['warmup']}/{record['warmup_steps']}, "
                         f"loss {record['loss']:.3f}")
        elif record["iteration"] % 5 == 0:
            on_stage(f"training NMSW (local network frozen): iteration {record['iteration']}/{iterations}, "
                     f"loss {record['loss']:.3f}, tau {record['tau']:.2f}")

    result = train_nmsw_recipe(model, cases, iterations, seed=setup.seed, device="cpu", on_progress=nmsw_progress)
    facts = {**result.training, "task": setup.task, "volume_shape": list(setup.volume_shape),
             "backbone_iterations": backbone_iterations, "train_seeds": list(setup.train_seeds),
             "normalization": normalization.model_dump(mode="json"),
             "seconds": {"nmsw": result.seconds}}
    return result.model, facts


def check_checkpoint(setup: BenchSetup, model: NMSWModel, facts: dict, path) -> None:
    """A cached checkpoint must be a benchmark checkpoint of the same task and geometry."""
    wanted = {"task": setup.task, "volume_shape": list(setup.volume_shape)}
    for key, value in wanted.items():
        if facts.get(key) != value:
            raise UserError(f"checkpoint was made for {key} {facts.get(key)!r}, not {value!r}; "
                            "give another --checkpoint path to train a new one", path)
    if tuple(model.patch_size) != tuple(setup.patch_size) or model.backbone != setup.backbone:
        raise UserError(f"checkpoint uses backbone {model.backbone!r} with patch {tuple(model.patch_size)}; "
                        f"the benchmark needs {setup.backbone!r} with patch {tuple(setup.patch_size)}", path)
    if "normalization" not in facts:
        raise UserError("checkpoint lacks the intensity normalisation; it was not written by this benchmark", path)
