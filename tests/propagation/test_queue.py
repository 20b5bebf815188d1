"""The chain algorithm on its own: two-sided blending and the stop rule, with scripted steps."""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.queue import StopRule, propagate_by_chains
from slicebudget.propagation.sli2vol.verify import Verified
from slicebudget.volume import SparseAnnotation

CLASSES = np.array([0, 1], dtype=np.uint8)


def _copy_step(confidence_by_direction):
    """A step that copies the source mask unchanged, with a fixed step confidence per direction."""

    def step(src, dst, src_labels, keep_area=False):
        probs = np.stack([src_labels == 0, src_labels == 1]).astype(np.float32)
        conf = confidence_by_direction[1 if dst > src else -1]
        return probs, Verified(src_labels.copy(), src_labels != 0, conf)

    return step


def _two_masks():
    labels = np.zeros((11, 8, 8), dtype=np.uint8)
    labels[0, 1:4, 1:4] = 1  # lower annotated slice: square A
    labels[10, 4:7, 4:7] = 1  # upper annotated slice: square B (no overlap with A)
    annotated = np.zeros(11, dtype=bool)
    annotated[[0, 10]] = True
    return SparseAnnotation(labels, annotated)


def test_both_sides_blend_with_distance_at_equal_confidence():
    annotation = _two_masks()
    result = propagate_by_chains(annotation, _copy_step({1: 1.0, -1: 1.0}), CLASSES, StopRule())
    a, b = annotation.labels[0], annotation.labels[10]
    for j in range(1, 5):  # nearer the lower slice: its mask wins
        np.testing.assert_array_equal(result.labels[j], a)
    for j in range(6, 10):  # nearer the upper slice
        np.testing.assert_array_equal(result.labels[j], b)
    assert np.all(result.confidence[1:10] == 1.0)


def test_low_confidence_side_loses_ground():
    annotation = _two_masks()
    # Forward steps are poor matches (0.7 each): after two steps the backward chain outweighs it.
    result = propagate_by_chains(annotation, _copy_step({1: 0.7, -1: 1.0}), CLASSES, StopRule(min_confidence=0.0))
    np.testing.assert_array_equal(result.labels[1], annotation.labels[0])
    np.testing.assert_array_equal(result.labels[4], annotation.labels[10])
    assert 0 < result.confidence[2] < result.confidence[8] <= 1.0


def test_stop_rule_ends_chain_beyond_outermost_slice():
    labels = np.zeros((12, 8, 8), dtype=np.uint8)
    labels[2, 2:6, 2:6] = 1
    annotated = np.zeros(12, dtype=bool)
    annotated[2] = True
    annotation = SparseAnnotation(labels, annotated)
    # Confidence halves each step; min_confidence 0.1 lets 3 steps live (0.5, 0.25, 0.125), not 4.
    result = propagate_by_chains(annotation, _copy_step({1: 0.5, -1: 0.5}), CLASSES, StopRule(min_confidence=0.1))
    assert [bool(result.labels[j].any()) for j in range(12)] == [True] * 6 + [False] * 6
    np.testing.assert_allclose(result.confidence[[3, 4, 5]], [0.5, 0.25, 0.125])
    assert np.all(result.confidence[6:] == 0.0)


def test_stop_rule_collapse_and_area():
    rule = StopRule(min_confidence=0.05, min_area=3, collapse_ratio=0.25)
    assert rule.dies(area=2, previous_area=3, confidence=1.0)  # too small
    assert rule.dies(area=20, previous_area=100, confidence=1.0)  # collapsed in one step
    assert rule.dies(area=90, previous_area=100, confidence=0.01)  # confidence ran out
    assert not rule.dies(area=60, previous_area=100, confidence=0.5)


def _diffuse_step(src, dst, src_labels, keep_area=False):
    """A lost match: the source's foreground mass spread evenly over the slice, so no pixel wins."""
    fg = np.full(src_labels.shape, (src_labels != 0).sum() / src_labels.size, dtype=np.float32)
    probs = np.stack([1.0 - fg, fg])
    return probs, Verified(np.zeros_like(src_labels), np.zeros(src_labels.shape, dtype=bool), 0.0)


def _rejecting_step(src, dst, src_labels, keep_area=False):
    """A sharp copy that verification rejects: the image saw the object end."""
    probs = np.stack([src_labels == 0, src_labels == 1]).astype(np.float32)
    return probs, Verified(np.zeros_like(src_labels), np.zeros(src_labels.shape, dtype=bool), 0.0)


def _faint_blob(upper_empty: bool) -> SparseAnnotation:
    labels = np.zeros((5, 16, 16), dtype=np.uint8)
    labels[0, 5:10, 5:10] = 1
    if not upper_empty:
        labels[4, 6:11, 6:11] = 1
    annotated = np.zeros(5, dtype=bool)
    annotated[[0, 4]] = True
    return SparseAnnotation(labels, annotated)


def test_lost_match_inside_a_gap_falls_back_to_interpolation():
    from slicebudget.propagation.sdf import interpolate_gap

    annotation = _faint_blob(upper_empty=False)
    without = propagate_by_chains(annotation, _diffuse_step, CLASSES, StopRule())
    assert not without.labels[1:4].any()  # both chains die on their first step: the blob is lost
    assert list(without.provenance[1:4]) == ["stopped"] * 3
    result = propagate_by_chains(annotation, _diffuse_step, CLASSES, StopRule(), fallback=True)
    expected = interpolate_gap(annotation.labels[0], annotation.labels[4], 4)
    np.testing.assert_array_equal(result.labels[1:4], expected)
    assert all(result.labels[j].sum() >= 16 for j in (1, 2, 3))  # recovered on every gap slice
    # Marked as the fallback's, with the interpolation's own score: never a human slice's 1.0.
    assert list(result.provenance[1:4]) == ["interpolation"] * 3
    overlap = 16 / 34  # the two bounding squares share 16 of their 34 pixels
    np.testing.assert_allclose(result.confidence[1:4], [overlap + (1 - overlap) / 2, overlap, overlap + (1 - overlap) / 2])


def test_lost_match_towards_an_empty_slice_shrinks_but_a_seen_ending_is_kept():
    annotation = _faint_blob(upper_empty=True)
    lost = propagate_by_chains(annotation, _diffuse_step, CLASSES, StopRule(), fallback=True)
    areas = [int(lost.labels[j].sum()) for j in (1, 2, 3)]
    assert areas[0] > 0 and areas[0] >= areas[1] and areas[2] == 0  # shrinks, vanishes before the empty slice
    assert list(lost.provenance[1:4]) == ["interpolation"] * 3 and lost.confidence[3] < 1.0
    seen = propagate_by_chains(annotation, _rejecting_step, CLASSES, StopRule(), fallback=True)
    assert not seen.labels[1:4].any()  # a sharp proposal the image rejected is believed


def test_a_chain_that_thins_out_before_going_diffuse_is_believed():
    labels = np.zeros((7, 16, 16), dtype=np.uint8)
    labels[0, 4:11, 4:11] = 1
    annotated = np.zeros(7, dtype=bool)
    annotated[[0, 6]] = True
    annotation = SparseAnnotation(labels, annotated)  # the interpolation would still fill slice 2

    def thinning(src, dst, src_labels, keep_area=False):  # carries the blob one slice, then goes diffuse
        return (_copy_step({1: 1.0, -1: 1.0}) if dst == 1 else _diffuse_step)(src, dst, src_labels)

    result = propagate_by_chains(annotation, thinning, CLASSES, StopRule(), fallback=True)
    np.testing.assert_array_equal(result.labels[1], annotation.labels[0])
    assert not result.labels[2:6].any()  # the ending the chain watched is kept, not interpolated


def test_only_chains_in_a_gap_with_the_object_on_both_sides_decode_by_area():
    labels = np.zeros((9, 8, 8), dtype=np.uint8)
    labels[[1, 4], 2:5, 2:5] = 1  # object on both sides of gap 2..3; slice 7 annotated empty
    annotated = np.zeros(9, dtype=bool)
    annotated[[1, 4, 7]] = True
    calls = {}
    copy = _copy_step({1: 1.0, -1: 1.0})

    def recording(src, dst, src_labels, keep_area=False):
        calls[(src, dst)] = keep_area
        return copy(src, dst, src_labels)

    propagate_by_chains(SparseAnnotation(labels, annotated), recording, CLASSES, StopRule())
    assert calls[(1, 2)] and calls[(4, 3)]  # both sides hold the object: a diffuse carry lost it
    assert not calls[(1, 0)] and not calls[(4, 5)]  # beyond, or towards an empty slice: it may end
