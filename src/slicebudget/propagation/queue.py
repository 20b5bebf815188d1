"""How a learned step (slice i -> slice i +- 1) becomes a dense volume: chains, blending, stopping.

Algorithm 1 of the slice-selection study keeps one queue and lets whichever annotated slice reaches
an unannotated slice first decide it. Here instead:

* every gap between two annotated slices that both hold foreground is propagated from *both* sides,
  and the two proposals are blended per pixel, weighted by each chain's match confidence and by its
  distance (the nearer human slice counts more);
* a gap bounded by an annotated-empty slice is propagated from its non-empty side only, and never
  enters the empty slice: "empty" is a human statement, so nothing crosses it;
* inside either kind of gap the shape is known at both ends (an empty slice is a shape too), so a
  chain that died on a *lost* match need not vote "background": with ``fallback`` it
  votes the signed-distance interpolation of the two bounding human masks (as in ``sdf``) with the
  trust it had when it died. A match is lost when the carried probability is spread so thin that
  the argmax keeps under half its mass (a small faint lesion): the image never got a say. In a gap
  towards an annotated-empty slice only a match lost on the very first step counts (a chain that
  carried the object for a while and then went diffuse watched it thin out), and a chain stopped
  on a sharp proposal that verification rejected saw the object end: both are believed. In a gap
  with the object on both sides any dead chain votes the interpolation, since it cannot end there;
* inside a gap with the object on both sides a chain's diffuse carry lost the object rather than
  saw it end, so it is decoded by area (``keep_area``) and verification judges where it went;
* beyond the outermost annotated slices a chain runs until the image stops it (the stop rule), or
  for at most ``max_beyond`` slices when that is set;
* human-annotated slices are copied unchanged and are never propagated onto.

Every slice gets a provenance: ``learned`` where a live chain's carry outweighs the fallback's vote,
``interpolation`` where the fallback decided it, ``stopped`` where no chain reached it (or both
died without a fallback), ``none`` between two slices annotated as empty. Its raw signal is the
chains' trust for ``learned`` slices and the interpolation's own score
(:func:`~slicebudget.propagation.common.interpolation_confidence`) for fallback slices, so a
fallback slice is calibrated as the interpolation is, never as certain as a human slice.

The stop rule is image-driven, not a fixed count: a chain dies when verification leaves no
foreground, when the foreground collapses (shrinks to under ``collapse_ratio`` of the previous
slice's area in one step, or under ``min_area`` pixels), or when the running product of step
confidences falls below ``min_confidence``. Slices a chain never reaches stay background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from slicebudget.propagation.common import (
    INTERPOLATION,
    LEARNED,
    NONE,
    STOPPED,
    Gap,
    ProgressCallback,
    PropagationResult,
    find_gaps,
    interpolation_confidence,
    is_empty,
    report,
    start_result,
)
from slicebudget.propagation.sdf import interpolate_gap
from slicebudget.propagation.sli2vol.verify import Verified, is_diffuse
from slicebudget.volume import SparseAnnotation

# step(src, dst, src_labels, keep_area) -> (proposal probabilities (K+1, H, W), verified result);
# keep_area: decode a diffuse carry by area (see slicebudget.propagation.sli2vol.verify)
StepFunction = Callable[[int, int, np.ndarray, bool], tuple[np.ndarray, Verified]]


@dataclass(frozen=True)
class StopRule:
    min_confidence: float = 0.05
    min_area: int = 3
    collapse_ratio: float = 0.25
    max_beyond: int | None = None  # at most this many slices beyond the outermost annotated slice

    def dies(self, area: int, previous_area: int, confidence: float) -> bool:
        return (
            area < self.min_area
            or area < self.collapse_ratio * previous_area
            or confidence < self.min_confidence
        )


@dataclass(frozen=True)
class ChainStep:
    """What one chain says about one slice: soft class probabilities, labels, its confidence."""

    probs: np.ndarray | None  # (K+1, H, W); None once the chain has died (all background)
    labels: np.ndarray
    confidence: float
    alive: bool
    # Died on a diffuse match: the argmax decode kept under half of the foreground probability mass
    # the step carried (spread too thin for pixels to win), so the object was carried but its
    # position lost -- a lost match, not an ending the image saw (that leaves a sharp proposal).
    undecided: bool = False


def run_chain(
    step: StepFunction,
    start: int,
    targets: range,
    start_labels: np.ndarray,
    rule: StopRule,
    on_slice: Callable[[], None],
    channel_classes: np.ndarray,
    keep_area: bool = False,
) -> list[ChainStep]:
    """Propagate from annotated slice ``start`` through ``targets`` (in order) until the rule stops it.

    ``keep_area`` (for gaps with the object on both sides): a diffuse carry is decoded by area and
    left to verification instead of fading to nothing under the argmax.
    """
    out: list[ChainStep] = []
    labels, confidence, area, src = start_labels, 1.0, int((start_labels != 0).sum()), start
    for dst in targets:
        probs, verified = step(src, dst, labels, keep_area)
        new_area = int((verified.labels != 0).sum())
        on_slice()
        if rule.dies(new_area, area, confidence * verified.step_confidence):
            # A dead chain keeps voting (background, or the interpolation prior) with the trust it had
            # when it died.
            undecided = is_diffuse(probs)
            out.append(ChainStep(None, np.zeros_like(labels), confidence, False, undecided))
            break
        confidence *= verified.step_confidence
        if keep_area and is_diffuse(probs):
            # The diffuse probabilities said where the object went, not how sure each pixel is:
            # the chain votes its verified mask.
            soft = np.stack([verified.labels == c for c in channel_classes]).astype(np.float32)
        else:
            soft = probs.astype(np.float32, copy=True)
            background = verified.labels == 0
            soft[:, background] = 0.0
            soft[0, background] = 1.0
        out.append(ChainStep(soft, verified.labels, confidence, True))
        labels, area, src = verified.labels, new_area, dst
    return out


def _write_one_sided(
    chain: list[ChainStep],
    slices,
    labels: np.ndarray,
    confidence: np.ndarray,
    provenance: np.ndarray,
    prior: np.ndarray | None = None,
    prior_signal: np.ndarray | None = None,
) -> None:
    """Write a one-sided chain; where it died, ``prior`` (labels per slice of ``slices``) takes over,
    with ``prior_signal`` (the interpolation's own score per slice) as its raw confidence."""
    for j, s in zip(slices, chain):
        if s.alive:
            labels[j] = s.labels
            confidence[j] = s.confidence
            provenance[j] = LEARNED
    if prior is not None and len(chain) == 1 and chain[0].undecided:
        # The match was lost on the very first step from the human slice (not stopped by the
        # image): the interpolation towards the human "empty" slice decides instead (it shrinks the
        # shape and vanishes half-way). A chain that carried the object for a while and then went
        # diffuse watched it thin out: that ending is kept.
        for k in range(len(slices)):
            labels[slices[k]] = prior[k]
            confidence[slices[k]] = prior_signal[k]
            provenance[slices[k]] = INTERPOLATION


def _blend(
    forward: ChainStep | None,
    backward: ChainStep | None,
    d_before: int,
    d_after: int,
    channel_classes: np.ndarray,
    shape: tuple[int, int],
    prior: np.ndarray | None = None,
) -> tuple[np.ndarray, float, bool]:
    """Per-pixel blend of the two chains' probabilities; a dead chain votes background, or the
    interpolation ``prior`` (class ids, (H, W)) when one is given.

    Each chain's weight is its confidence times the distance to the *other* bounding slice, so at
    equal confidence the nearer human slice dominates and the weights match linear interpolation.
    Returns labels, the blended trust, and whether the prior's votes outweighed the live chains'.
    """
    votes = []
    prior_weight = 0.0
    for s, distance_to_other in ((forward, d_after), (backward, d_before)):
        if s is None:
            continue
        p = s.probs
        if p is None:
            fallback = prior if prior is not None else np.zeros(shape, dtype=channel_classes.dtype)
            p = np.stack([fallback == c for c in channel_classes]).astype(np.float32)
            prior_weight += s.confidence * distance_to_other if prior is not None else 0.0
        votes.append((s.confidence * distance_to_other, p, s.confidence))
    total = sum(w for w, _, _ in votes)
    if total <= 0 or (prior is None and all(s.probs is None for s in (forward, backward) if s is not None)):
        return np.zeros(shape, dtype=channel_classes.dtype), 0.0, False
    blended = sum(w * p for w, p, _ in votes) / total
    labels = channel_classes[blended.argmax(axis=0)]
    for c in channel_classes[1:]:
        labels[ndimage.binary_fill_holes(labels == c) & (labels == 0)] = c
    return labels, float(sum(w * c for w, _, c in votes) / total), prior_weight > total - prior_weight


def propagate_by_chains(
    annotation: SparseAnnotation,
    step: StepFunction,
    channel_classes: np.ndarray,
    rule: StopRule,
    progress: ProgressCallback | None = None,
    fallback: bool = False,
) -> PropagationResult:
    """Fill every gap of ``annotation`` with chains of ``step`` calls (see the module docstring).

    ``fallback``: inside a gap bounded by annotated slices, a chain that died on a lost match votes
    the signed-distance interpolation of the two human masks instead of background.
    """
    labels, confidence, provenance = start_result(annotation)
    gaps = find_gaps(annotation.annotated)
    total = sum(len(_targets(g, rule)) * (2 if _two_sided(annotation, g) else 1) for g in gaps)
    done = [0]

    def tick() -> None:
        done[0] += 1
        report(progress, min(done[0], total), total)

    for gap in gaps:
        lower = gap.before is not None and not is_empty(annotation, gap.before)
        upper = gap.after is not None and not is_empty(annotation, gap.after)
        if not (lower or upper):
            continue  # between two empty slices (or an empty slice and the volume's end): "none"
        provenance[list(gap.slices)] = STOPPED  # until a chain or the fallback writes a slice
        prior = prior_signal = None
        if fallback and gap.before is not None and gap.after is not None:
            prior = interpolate_gap(annotation.labels[gap.before], annotation.labels[gap.after], gap.after - gap.before)
            prior_signal = np.array([interpolation_confidence(annotation, gap, j) for j in gap.slices])
        if lower and upper:
            # The object is on both sides, so a chain's diffuse carry lost it rather than saw it end.
            forward = run_chain(
                step, gap.before, gap.slices, annotation.labels[gap.before], rule, tick, channel_classes, True
            )
            backward = run_chain(
                step, gap.after, gap.slices[::-1], annotation.labels[gap.after], rule, tick, channel_classes, True
            )
            backward = backward[::-1]
            n_back_missing = len(gap.slices) - len(backward)
            for offset, j in enumerate(gap.slices):
                f = forward[offset] if offset < len(forward) else (forward[-1] if not forward[-1].alive else None)
                bi = offset - n_back_missing
                b = backward[bi] if bi >= 0 else (backward[0] if not backward[0].alive else None)
                labels[j], confidence[j], by_prior = _blend(
                    f, b, j - gap.before, gap.after - j, channel_classes, labels.shape[1:],
                    None if prior is None else prior[offset],
                )
                if by_prior:
                    provenance[j], confidence[j] = INTERPOLATION, prior_signal[offset]
                elif confidence[j] > 0:
                    provenance[j] = LEARNED
        else:
            # Bounded by an annotated-empty slice on one side, or open on one side.
            targets = _targets(gap, rule)
            start, targets = (gap.before, targets) if lower else (gap.after, targets[::-1])
            chain = run_chain(step, start, targets, annotation.labels[start], rule, tick, channel_classes)
            if prior is not None and not lower:
                prior, prior_signal = prior[::-1], prior_signal[::-1]
            _write_one_sided(chain, targets, labels, confidence, provenance, prior, prior_signal)
    report(progress, total, total)
    confidence = np.clip(confidence, 0.0, 1.0)
    return PropagationResult(labels, confidence, provenance, confidence.copy())


def _targets(gap: Gap, rule: StopRule) -> range:
    """The slices of ``gap`` chains may reach: all of an inner gap; of an outer gap (open on one side),
    the ``rule.max_beyond`` slices next to the annotated side when that is set."""
    if rule.max_beyond is None or (gap.before is not None and gap.after is not None):
        return gap.slices
    n = min(rule.max_beyond, len(gap.slices))
    return gap.slices[:n] if gap.before is not None else gap.slices[len(gap.slices) - n :]


def _two_sided(annotation: SparseAnnotation, gap: Gap) -> bool:
    return (
        gap.before is not None
        and gap.after is not None
        and not is_empty(annotation, gap.before)
        and not is_empty(annotation, gap.after)
    )
