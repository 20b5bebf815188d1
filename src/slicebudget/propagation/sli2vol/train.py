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
) -> TrainingOutcome:
    """Train a feature network on unlabelled volumes (D, H, W); same seed -> same weights on CPU."""
    config = config or Sli2VolConfig()
    settings = settings or TrainingSettings()
    usable = [normalise_intensity(v) for v in volumes if v.shape[0] >= 2]
    if not usable:
        raise UserError("training needs at least one volume with two or more slices")
    crop = min(settings.crop, *(min(v.shape[1:]) for v in usable))
    from slicebudget.training.fit import Phase, Step, fit

    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    net = FeatureNet(config).to(device)
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
) -> float:
    """Train on the first image channel of each dataset's training cases and write a model file.

    Returns the mean loss of the last steps. The file records data, seed and settings so the
    shipped default can be reproduced (see ``src/slicebudget/assets/README.md``).
    """
    from slicebudget.io import open_dataset
    from slicebudget.propagation.sli2vol.model_io import save_model

    volumes, sources = [], []
    for d in dataset_dirs:
        dataset = open_dataset(d)
        cases = dataset.cases[:cases_per_dataset] if cases_per_dataset else dataset.cases
        if not cases:
            raise UserError("dataset has no training cases", d)
        volumes += [dataset.load_case(c, with_label=False).images[0].array for c in cases]
        sources.append(f"{Path(d).name} ({len(cases)} cases)")
    config = config or Sli2VolConfig()
    outcome = train_feature_net(volumes, config, settings, device=device, progress=progress)
    tail = outcome.losses[-min(20, len(outcome.losses)) :]
    final = float(np.mean(tail))
    record = {**asdict(settings), "datasets": sources, "final_loss": final, "first_loss": outcome.losses[0]}
    save_model(outcome.net, config, out, record)
    return final
