"""The chain algorithm on its own: two-sided blending and the stop rule, with scripted steps."""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.queue import StopRule, propagate_by_chains
from slicebudget.propagation.sli2vol.verify import Verified
from slicebudget.volume import SparseAnnotation

CLASSES = np.array([0, 1], dtype=np.uint8)


def _copy_step(confidence_by_direction):
    """A step that copies the source mask unchanged, with a fixed step confidence per direction."""

    def step(src, dst, src_labels):
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
