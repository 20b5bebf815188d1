"""Verification of a propagated mask against the image, and the step's match confidence.

Propagation copies labels by feature similarity; small errors then add up slice after slice, and
beyond the end of an organ the copy lands on whatever tissue is there. Verification asks the image
instead: a pixel keeps class c only if its intensity is better explained by the inside of the source
slice's class-c mask than by a ring just outside that mask. Holes left inside a class are filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Below this separation (in pooled standard deviations) inside and ring look alike, so the image
# cannot arbitrate and the propagated pixels are kept as they are.
MIN_SEPARATION = 1.0
MIN_STD = 0.01  # normalised intensity units: stops a flat phantom region giving a zero variance
# A carry whose argmax keeps under this share of the carried foreground mass counts as diffuse.
DIFFUSE_SHARE = 0.5


@dataclass(frozen=True)
class Verified:
    labels: np.ndarray  # (H, W) class ids
    kept: np.ndarray  # (H, W) bool: proposed foreground that survived
    step_confidence: float  # in [0, 1]


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), max(float(values.std()), MIN_STD)


def _log_likelihood(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std)


def is_diffuse(probs: np.ndarray) -> bool:
    """True when the carried foreground is spread so thin that the per-pixel argmax keeps under
    ``DIFFUSE_SHARE`` of its mass: the features of a small, faint object matched many neighbours."""
    return int((probs.argmax(axis=0) != 0).sum()) < DIFFUSE_SHARE * float(probs[1:].sum())


def decode_proposal(probs: np.ndarray, channel_classes: np.ndarray, keep_area: bool = False) -> np.ndarray:
    """Class ids from carried probabilities ``probs`` (K+1, H, W): the per-pixel argmax.

    With ``keep_area``, a diffuse carry (see :func:`is_diffuse`) is decoded by area instead: the
    ``round(mass)`` pixels most likely to be foreground. The argmax would shrink such an object to
    nothing although the probabilities still say where it went; keeping the carried area and letting
    verification judge the position recovers it.
    """
    proposal = channel_classes[probs.argmax(axis=0)]
    n = int(round(float(probs[1:].sum())))
    if not keep_area or n == 0 or not is_diffuse(probs):
        return proposal
    foreground = 1.0 - probs[0]
    keep = np.zeros(foreground.size, dtype=bool)
    keep[np.argpartition(foreground.ravel(), -n)[-n:]] = True
    keep = keep.reshape(foreground.shape) & (foreground > 0)
    return np.where(keep, channel_classes[1 + probs[1:].argmax(axis=0)], 0).astype(channel_classes.dtype)


def verify_step(
    dst_image: np.ndarray,
    src_image: np.ndarray,
    src_labels: np.ndarray,
    probs: np.ndarray,
    channel_classes: np.ndarray,
    ring_width: int = 3,
    keep_area: bool = False,
) -> Verified:
    """Check the proposal ``probs`` (K+1, H, W; channel 0 background) for the destination slice.

    ``dst_image``/``src_image`` are smoothed, normalised slices; ``channel_classes[k]`` is the class
    id of channel k. The step confidence is the share of proposed foreground that survives times the
    mean probability of the surviving pixels: high when copy and image agree and the copy is sharp.
    """
    proposal = decode_proposal(probs, channel_classes, keep_area)
    region = (proposal != 0) | (src_labels != 0)
    if not region.any():
        return Verified(np.zeros_like(src_labels), np.zeros(src_labels.shape, dtype=bool), 0.0)
    # Work inside the bounding box of source mask and proposal (plus the ring): a small organ in a
    # 512 x 512 slice then costs what its box costs.
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    margin = ring_width + 2
    box = (
        slice(max(0, rows[0] - margin), rows[-1] + margin + 1),
        slice(max(0, cols[0] - margin), cols[-1] + margin + 1),
    )
    inner = _verify_box(
        dst_image[box], src_image[box], src_labels[box], probs[(slice(None), *box)], proposal[box],
        channel_classes, ring_width,
    )
    labels = np.zeros_like(src_labels)
    kept = np.zeros(src_labels.shape, dtype=bool)
    labels[box], kept[box] = inner.labels, inner.kept
    return Verified(labels, kept, inner.step_confidence)


def _verify_box(
    dst_image: np.ndarray,
    src_image: np.ndarray,
    src_labels: np.ndarray,
    probs: np.ndarray,
    proposal: np.ndarray,
    channel_classes: np.ndarray,
    ring_width: int,
) -> Verified:
    out = np.zeros_like(src_labels)
    kept = np.zeros(src_labels.shape, dtype=bool)
    for c in channel_classes[1:]:
        candidate = proposal == c
        if not candidate.any():
            continue
        source = ndimage.binary_fill_holes(src_labels == c)
        inside = src_image[src_labels == c]
        ring = ndimage.binary_dilation(source, iterations=ring_width) & ~source
        keep = candidate
        if inside.size and ring.any():
            mu_in, sd_in = _stats(inside)
            mu_ring, sd_ring = _stats(src_image[ring])
            # Separation is judged on the raw spreads: the MIN_STD floor only keeps the likelihoods
            # finite, and would otherwise hide a faint lesion whose contrast is a small share of a
            # CT volume's air-to-bone range.
            spread = np.sqrt(0.5 * (inside.var() + src_image[ring].var()))
            if abs(mu_in - mu_ring) > MIN_SEPARATION * spread:
                x = dst_image[candidate]
                keep = np.zeros_like(candidate)
                keep[candidate] = _log_likelihood(x, mu_in, sd_in) >= _log_likelihood(x, mu_ring, sd_ring)
        out[keep] = c
        kept |= keep
    for c in channel_classes[1:]:
        holes = ndimage.binary_fill_holes(out == c) & (out == 0)
        out[holes] = c
    proposed = int((proposal != 0).sum())
    if proposed == 0 or not kept.any():
        return Verified(out, kept, 0.0)
    sharpness = float(probs.max(axis=0)[kept].mean())
    return Verified(out, kept, float(kept.sum()) / proposed * sharpness)
