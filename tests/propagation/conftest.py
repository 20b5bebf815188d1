"""Propagation tests score with the library's IoU."""

from __future__ import annotations

import pytest

from slicebudget.metrics import iou


@pytest.fixture(scope="session")
def measure_iou():
    return iou
