"""Sample data: an organ phantom with its labels, anisotropic and off-origin like a real CT."""

from __future__ import annotations

import numpy as np

from slicebudget.data.phantoms import TASK_LABELS, generate_phantom, phantom_geometry
from slicebudget.volume import Volume

from napari_slicebudget.logic.geometry import layer_kwargs

SAMPLE_SHAPE = (40, 96, 96)
SAMPLE_SPACING = (2.5, 0.9, 0.9)  # mm: thick slices, fine in-plane, as in clinical CT
SAMPLE_SEED = 7


def phantom_volumes(shape=SAMPLE_SHAPE, spacing=SAMPLE_SPACING, seed: int = SAMPLE_SEED) -> tuple[Volume, Volume]:
    """The phantom image and labels as volumes sharing one scanner-like header."""
    rng = np.random.default_rng(seed)
    geometry = phantom_geometry(shape, spacing, rng)
    image, labels = generate_phantom("organ", shape, spacing, rng)
    return Volume(image, geometry, "organ phantom"), Volume(labels, geometry, "organ phantom labels")


def organ_phantom() -> list[tuple]:
    """npe2 sample: image (CT window) and its reference labels."""
    image, labels = phantom_volumes()
    classes = [name for name, value in sorted(TASK_LABELS["organ"].items(), key=lambda kv: kv[1]) if value]
    image_kwargs = layer_kwargs(image, "organ phantom", "image", classes=classes, channel="CT")
    image_kwargs.update(colormap="gray", contrast_limits=(-160.0, 240.0))
    label_kwargs = layer_kwargs(labels, "organ phantom reference", "labels", classes=classes)
    label_kwargs.update(opacity=0.35, visible=False)
    return [(image.array, image_kwargs, "image"), (labels.array, label_kwargs, "labels")]
