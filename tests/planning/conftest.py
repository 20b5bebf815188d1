from __future__ import annotations

import pytest

from slicebudget.bench.planning import synthetic_runs, write_synthetic_study


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory):
    """A finished 4 x 3 x 3 study folder (store + results.csv) from a known surface."""
    return write_synthetic_study(tmp_path_factory.mktemp("study"), synthetic_runs(seed=7))
