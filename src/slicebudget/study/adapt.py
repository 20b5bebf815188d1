"""`interpolation: [{name: sli2vol, model: adapt}]`: the learned propagator adapted to the study's
own training images, once per study, and shared by every run.

Adaptation fine-tunes the shipped model self-supervised (slice i+k reconstructed from slice i) on
the first image channel of ALL training volumes, labels unused, so it is fair whichever volumes a
run annotates; test volumes are never seen. The model lands in ``STUDY_DIR/adapted/`` under a name
keyed by the dataset fingerprint; a file lock makes concurrent runs (Dask workers) wait for the
first one instead of adapting twice.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from slicebudget.propagation.sli2vol.train import ADAPTATION

ADAPT = "adapt"
ADAPT_SETTINGS = ADAPTATION


def adapted_model(study_dir: Path, volumes_of, train_ids, fingerprint: str, image_channels: int,
                  device=None) -> Path:
    """Path of the study's adapted model, adapting it first if no run has yet. ``volumes_of(case_id)``
    returns a training case's channel-0 volume (D, H, W)."""
    from slicebudget.propagation.sli2vol.train import adapt_and_save

    folder = Path(study_dir) / "adapted"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sli2vol-{fingerprint[:16]}.pt"
    with open(folder / f"{path.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            volumes = [volumes_of(c) for c in train_ids]
            adapt_and_save(volumes, path, ADAPT_SETTINGS, [f"study training images ({len(volumes)} volumes)"],
                           image_channels, device=device or "cpu", init="default")
    return path
