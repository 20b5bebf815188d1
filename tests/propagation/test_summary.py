"""What a study records about its propagated labels: provenance shares and confidence vs measured IoU."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.propagation.common import PropagationResult
from slicebudget.propagation.summary import provenance_summary


def _volume():
    # 5 slices of 4 x 4: slice 0 human, 1 learned (4 px), 2 fallback interpolation (2 px), 3 stopped, 4 human
    truth = np.zeros((5, 4, 4), np.uint8)
    truth[:3, :2, :2] = 1  # 4 px on slices 0-2
    labels = np.zeros_like(truth)
    labels[0, :2, :2] = 1
    labels[1, :2, :2] = 1  # exact: IoU 1
    labels[2, 0, :2] = 1  # 2 of the 4 true px: IoU 0.5
    provenance = np.array(["human", "learned", "interpolation", "stopped", "human"], dtype=object)
    confidence = np.array([1.0, 0.9, 0.4, 0.8, 1.0])
    annotated = np.array([True, False, False, False, True])
    return PropagationResult(labels, confidence, provenance), truth, annotated


def test_shares_pool_unannotated_voxels_and_slices_and_compare_confidence_with_iou():
    summary = provenance_summary([_volume(), _volume()])
    assert summary["foreground"] == {"learned": pytest.approx(4 / 6), "interpolation": pytest.approx(2 / 6),
                                     "nearest": 0.0}
    assert summary["slices"] == {"learned": pytest.approx(1 / 3), "interpolation": pytest.approx(1 / 3),
                                 "nearest": 0.0, "stopped": pytest.approx(1 / 3), "none": 0.0}
    # filled slices only (the stopped slice's confidence is the chance it is empty, another quantity)
    assert summary["confidence"] == pytest.approx((0.9 + 0.4) / 2)
    assert summary["slice_iou"] == pytest.approx((1.0 + 0.5) / 2)
    assert summary["filled_slices"] == 4


def test_nothing_propagated_gives_none():
    result, truth, _ = _volume()
    assert provenance_summary([(result, truth, np.ones(5, bool))]) is None
