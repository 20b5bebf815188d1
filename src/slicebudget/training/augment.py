"""TorchIO augmentation for 2D slices and 3D patches, replayable from torch's seeded RNG.

Arrays are (C, D, H, W) with D the slice axis; TorchIO sees D, H, W as its spatial axes 0, 1, 2.
Spatial changes stay in-plane (flips of H and W, rotation about the slice axis, in-plane scaling)
because slice spacing is usually much coarser than in-plane spacing, and a 2D slice is a one-voxel
slab that an out-of-plane rotation would smear.

Labels travel as one TorchIO label map holding ``class + 1`` on annotated voxels and 0 elsewhere,
so nearest-neighbour resampling keeps classes and the annotated mask together, and voxels that an
affine pulls in from outside the field of view come back as 0: unannotated, ignored by the loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torchio as tio


def build_augmentation() -> tio.Compose:
    """Flips in-plane, a small in-plane affine, Gaussian noise and gamma (the seed study's set)."""
    return tio.Compose(
        [
            tio.RandomFlip(axes=(1, 2), flip_probability=0.5),
            tio.RandomAffine(
                scales=(1.0, 1.0, 0.9, 1.1, 0.9, 1.1),
                degrees=(-10, 10, 0, 0, 0, 0),
                translation=0,
                default_pad_value="minimum",
                p=0.5,
            ),
            tio.RandomNoise(std=(0.0, 0.05), p=0.3),
            tio.RandomGamma(log_gamma=(-0.2, 0.2), p=0.3),
        ]
    )


def encode_labels(labels: np.ndarray, annotated_mask: np.ndarray) -> np.ndarray:
    """``class + 1`` where annotated, 0 where not: one integer map that carries both."""
    return np.where(annotated_mask, labels.astype(np.int64) + 1, 0)


def decode_labels(encoded: np.ndarray | torch.Tensor):
    """Inverse of :func:`encode_labels`: (labels, annotated mask)."""
    mask = encoded > 0
    labels = encoded - 1
    labels = labels.clamp(min=0) if isinstance(labels, torch.Tensor) else np.maximum(labels, 0)
    return labels, mask


def augment_sample(
    image: torch.Tensor, encoded_labels: torch.Tensor, transform: tio.Transform
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to one (C, D, H, W) image and its (D, H, W) encoded label map.

    Randomness comes from torch's global RNG (TorchIO samples its parameters there), which the
    training loop seeds, so a run replays exactly.
    """
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=image.float()),
        labels=tio.LabelMap(tensor=encoded_labels.unsqueeze(0).long()),
    )
    out = transform(subject)
    return out["image"].data.float(), out["labels"].data[0].long()
