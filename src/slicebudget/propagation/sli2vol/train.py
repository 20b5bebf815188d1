"""Self-supervised training: reconstruct slice i+k from slice i through the affinity. No labels.

Each sample takes a random volume, a random gap k in 1..4, a random direction and a random crop.
The network sees only edge profiles of both slices; the loss compares the affinity-weighted copy of
the source slice's *intensity* with the target slice's intensity (L1). Gaps longer than one slice
make the matching robust to the larger shifts met when slices are thick or structures move fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from slicebudget.errors import UserError
from slicebudget.propagation.sli2vol.edges import edge_profile, normalise_intensity
from slicebudget.propagation.sli2vol.network import FeatureNet, Sli2VolConfig, carry, local_affinity

MAX_GAP = 4
CROP_TRIES = 4  # keep the crop with the most structure out of a few: flat crops teach nothing


@dataclass(frozen=True)
class TrainingSettings:
    iterations: int = 400
    batch: int = 4
    crop: int = 48
    learning_rate: float = 1e-3
    seed: int = 0


# Adapting the shipped model to a group's own images: fine-tuning, not training from scratch. Fewer
# steps at a lower rate keep what it learned while its features adjust to new texture and contrast.
ADAPTATION = TrainingSettings(iterations=200, batch=4, crop=48, learning_rate=5e-4, seed=0)


@dataclass(frozen=True)
class TrainingOutcome:
    net: FeatureNet
    losses: list[float]


def _sample_pair(volumes: Sequence[np.ndarray], crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    vol = volumes[int(rng.integers(len(volumes)))]
    d, h, w = vol.shape
    k = int(rng.integers(1, min(MAX_GAP, d - 1) + 1))
    i = int(rng.integers(0, d - k))
    src, dst = (i, i + k) if rng.random() < 0.5 else (i + k, i)
    ch, cw = min(crop, h), min(crop, w)
    best, best_std = None, -1.0
    for _ in range(CROP_TRIES):
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        pair = vol[[src, dst], y : y + ch, x : x + cw]
        std = float(pair.std())
        if std > best_std:
            best, best_std = pair, std
    return best[0], best[1]


def train_feature_net(
    volumes: Sequence[np.ndarray],
    config: Sli2VolConfig | None = None,
    settings: TrainingSettings | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    init: FeatureNet | None = None,
) -> TrainingOutcome:
    """Train a feature network on unlabelled volumes (D, H, W); same seed -> same weights on CPU.

    ``init``: start from these weights (adaptation: fine-tune the shipped model on a group's own
    images); ``config`` must then be the one ``init`` was built with.
    """
    config = config or Sli2VolConfig()
    settings = settings or TrainingSettings()
    usable = [normalise_intensity(v) for v in volumes if v.shape[0] >= 2]
    if not usable:
        raise UserError("training needs at least one volume with two or more slices")
    crop = min(settings.crop, *(min(v.shape[1:]) for v in usable))
    from slicebudget.training.fit import Phase, Step, fit

    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    net = FeatureNet(config)
    if init is not None:
        net.load_state_dict(init.state_dict())
    net = net.to(device)
    losses: list[float] = []

    def reconstruction_loss(step: Step) -> torch.Tensor:
        pairs = [_sample_pair(usable, crop, rng) for _ in range(settings.batch)]
        src = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None].to(device)
        dst = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None].to(device)
        affinity = local_affinity(net(edge_profile(dst)), net(edge_profile(src)), config.window, config.temperature)
        return (carry(affinity, src) - dst).abs().mean()

    def record(step: Step, loss: torch.Tensor) -> None:
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step.iteration, settings.iterations, losses[-1])

    phase = Phase(settings.iterations, lambda: (torch.optim.Adam(net.parameters(), lr=settings.learning_rate), None))
    fit([phase], reconstruction_loss, callbacks=[record])
    return TrainingOutcome(net.eval(), losses)


def train_from_datasets(
    dataset_dirs: Sequence[str | Path],
    out: str | Path,
    settings: TrainingSettings,
    cases_per_dataset: int | None = None,
    config: Sli2VolConfig | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    init: str | Path | None = None,
) -> float:
    """Train on the first image channel of each dataset's training cases and write a model file.

    ``init``: ``"default"`` (the shipped model) or a model file to fine-tune from; its architecture
    is kept. Returns the mean loss of the last steps. The file records data, seed, settings and
    the starting model so it can be reproduced (see ``src/slicebudget/assets/sli2vol_default.md``).
    """
    from slicebudget.io import open_dataset

    volumes, sources, channels = [], [], set()
    for d in dataset_dirs:
        dataset = open_dataset(d)
        cases = dataset.cases[:cases_per_dataset] if cases_per_dataset else dataset.cases
        if not cases:
            raise UserError("dataset has no training cases", d)
        for c in cases:
            images = dataset.load_case(c, with_label=False).images
            volumes.append(images[0].array)
            channels.add(len(images))
        sources.append(f"{Path(d).name} ({len(cases)} cases)")
    return adapt_and_save(volumes, out, settings, sources, max(channels), config, device, progress, init)


def check_adaptation_input(volumes: Sequence[np.ndarray], where: str | Path | None = None) -> None:
    """Self-supervised training pairs slices within a volume and needs more than one volume to
    generalise: refuse fewer than 2 volumes, or any volume of fewer than 3 slices."""
    if len(volumes) < 2:
        raise UserError(f"adaptation needs at least 2 volumes, got {len(volumes)}", where)
    thin = [i for i, v in enumerate(volumes) if np.ndim(v) != 3 or np.shape(v)[0] < 3]
    if thin:
        raise UserError(f"volume {thin[0] + 1} of {len(volumes)} has fewer than 3 slices; adaptation needs 3 or more",
                        where)


def adapt_and_save(
    volumes: Sequence[np.ndarray],
    out: str | Path,
    settings: TrainingSettings,
    sources: list[str],
    image_channels: int = 1,
    config: Sli2VolConfig | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    init: str | Path | None = None,
) -> float:
    """Train (from ``init`` when given) on ``volumes`` and write the model file; returns the final loss."""
    from slicebudget.propagation.sli2vol.model_io import default_model_path, load_model, save_model

    start = None
    if init is not None:
        init_path = default_model_path() if str(init) == "default" else Path(init)
        check_adaptation_input(volumes)
        start, config = load_model(init_path, "cpu")
    config = config or Sli2VolConfig()
    outcome = train_feature_net(volumes, config, settings, device=device, progress=progress, init=start)
    tail = outcome.losses[-min(20, len(outcome.losses)) :]
    final = float(np.mean(tail))
    record = {
        **asdict(settings), "datasets": sources, "final_loss": final, "first_loss": outcome.losses[0],
        "init": None if init is None else ("default" if str(init) == "default" else Path(init).name),
        "image_channels": int(image_channels), "image_channel_used": 0,
    }
    save_model(outcome.net, config, out, record)
    return final
