"""Contract every propagation method keeps (one propagation per method, checked many ways)."""

from __future__ import annotations

import numpy as np
import pytest

from slicebudget.errors import UserError
from slicebudget.propagation import PROPAGATORS, PROVENANCES, Propagator, get_propagator, propagate
from slicebudget.volume import SparseAnnotation

# Object on slices 4..15. Annotated: 6 and 12 (both hold classes 1 and 2), 14 annotated as EMPTY
# although the image shows the object there, and 17 (truly empty).
ANNOTATED = [6, 12, 14, 17]


@pytest.fixture(scope="module")
def case(make_blob):
    image, dense = make_blob()
    sparse = SparseAnnotation.from_dense(dense, ANNOTATED)
    labels = sparse.labels.copy()
    labels[14] = 0  # the human says: nothing here
    return image, dense, SparseAnnotation(labels, sparse.annotated)


@pytest.fixture(scope="module", params=sorted(PROPAGATORS))
def outcome(request, case):
    image, dense, annotation = case
    calls = []
    result = propagate(image, annotation, method=request.param, progress=lambda d, t: calls.append((d, t)))
    return request.param, result, calls


def test_shape_dtype_and_confidence_range(case, outcome):
    image, _, annotation = case
    _, result, _ = outcome
    assert result.labels.shape == image.shape
    assert result.labels.dtype == annotation.labels.dtype
    assert result.confidence.shape == (image.shape[0],)
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    assert np.all(result.confidence[annotation.annotated] == 1.0)


def test_human_slices_unchanged(case, outcome):
    _, _, annotation = case
    _, result, _ = outcome
    np.testing.assert_array_equal(result.labels[ANNOTATED], annotation.labels[ANNOTATED])


def test_empty_slice_stays_empty_and_blocks(case, outcome):
    _, _, _ = case
    _, result, _ = outcome
    assert not result.labels[14].any()
    # Slices 15..19 lie behind the empty slice 14 (and 17 is empty too): nothing may reach them,
    # even though the image shows the object on slice 15.
    assert not result.labels[15:].any()
    assert set(result.provenance[[15, 16, 18, 19]]) <= {"none", "stopped"}


def test_fills_between_and_keeps_both_classes(case, outcome):
    _, dense, _ = case
    method, result, _ = outcome
    for j in (8, 9, 10):
        assert result.confidence[j] > 0
        for c in (1, 2):
            truth = dense[j] == c
            got = result.labels[j] == c
            assert got.any(), f"{method}: class {c} missing on slice {j}"
            assert (got & truth).sum() / (got | truth).sum() > 0.25  # sanity: right place, not quality


def test_provenance_names_every_slice(case, outcome):
    _, _, annotation = case
    method, result, _ = outcome
    assert set(result.provenance) <= set(PROVENANCES)
    assert list(result.provenance[ANNOTATED]) == ["human"] * len(ANNOTATED)
    assert not np.any(result.provenance[~annotation.annotated] == "human")
    expected = PROPAGATORS[method].fills_as
    assert list(result.provenance[[8, 9, 10]]) == [expected] * 3
    # Nothing is written behind the empty slice 14: left empty by the method, or by sli2vol's stop rule.
    assert set(result.provenance[[15, 16, 18, 19]]) <= {"none", "stopped"}
    # A slice left empty holds no labels; a machine slice is never as certain as a human one.
    assert not result.labels[np.isin(result.provenance, ["none", "stopped"])].any()
    assert np.all(result.confidence[~annotation.annotated] < 1.0)


def test_progress_reports_reach_total(outcome):
    _, _, calls = outcome
    assert calls, "progress callback never called"
    done, total = calls[-1]
    assert done == total and total > 0
    assert all(0 <= d <= t for d, t in calls)


def test_unknown_method_lists_valid_names(case):
    image, _, annotation = case
    with pytest.raises(UserError, match="valid methods: " + ", ".join(PROPAGATORS)):
        propagate(image, annotation, method="magic")


def test_no_annotated_slice_is_refused(case):
    image, _, annotation = case
    empty = SparseAnnotation(np.zeros_like(annotation.labels), np.zeros(image.shape[0], dtype=bool))
    with pytest.raises(UserError, match="no annotated slice"):
        propagate(image, empty, method="sdf")


def test_shape_mismatch_is_refused(case):
    image, _, annotation = case
    with pytest.raises(UserError, match="differs"):
        propagate(image[:, :-1], annotation, method="nearest")


@pytest.mark.parametrize("name", sorted(PROPAGATORS))
def test_is_a_propagator_rebuilt_from_its_params(name):
    built = get_propagator(name)
    assert isinstance(built, Propagator)
    params = built.get_params()
    assert type(built)(**params).get_params() == params
