"""What every propagation method shares: the result type, input checks, and the gaps between slices.

A *gap* is a run of unannotated slices. It is bounded by annotated slices on both sides (an inner
gap), or lies beyond the outermost annotated slice (an outer gap, with one side open).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from slicebudget.errors import UserError
from slicebudget.volume import SparseAnnotation

ProgressCallback = Callable[[int, int], None]

# Where each slice's labels came from (``PropagationResult.provenance``):
HUMAN = "human"  # an annotated slice, returned exactly as given
LEARNED = "learned"  # carried by the learned propagator (sli2vol), verified by the image
INTERPOLATION = "interpolation"  # shape interpolation of the bounding human masks (sdf, mci, or
#                                  sli2vol's fallback where its chains lost the object)
NEAREST = "nearest"  # a copy of the nearer annotated slice
STOPPED = "stopped"  # left empty: sli2vol's stop rule (or max_beyond) ended its chain before this slice
NONE = "none"  # left empty: the method does not fill here (beyond the outermost annotated slice for
#                the interpolators, or between two slices annotated as empty)
PROVENANCES = (HUMAN, LEARNED, INTERPOLATION, NEAREST, STOPPED, NONE)
FILLED = frozenset({LEARNED, INTERPOLATION, NEAREST})  # provenances whose labels a method wrote


@dataclass(frozen=True, eq=False)
class PropagationResult:
    """Dense labels (D, H, W), a per-slice confidence (D,) in [0, 1] and a per-slice provenance (D,).

    ``confidence`` is 1.0 on human-annotated slices only. From :func:`slicebudget.propagation.propagate`
    it is calibrated: the IoU the slice's labels are expected to have against the truth (for an empty
    ``stopped`` or ``none`` slice, the chance that it is truly empty). ``signal`` is the method's raw
    per-slice score the calibration maps from (None where no method set one).
    """

    labels: np.ndarray
    confidence: np.ndarray
    provenance: np.ndarray | None = None
    signal: np.ndarray | None = None

    def __post_init__(self):
        if self.labels.ndim != 3 or self.confidence.shape != (self.labels.shape[0],):
            raise ValueError("labels must be (D, H, W) and confidence (D,)")
        if self.provenance is None:
            object.__setattr__(self, "provenance", np.full(self.labels.shape[0], NONE, dtype=object))
        if self.provenance.shape != self.confidence.shape:
            raise ValueError("provenance must be (D,)")

    def filled(self) -> np.ndarray:
        """(D,) bool: slices a method wrote labels on (not human, not left empty)."""
        return np.isin(self.provenance, list(FILLED))


@runtime_checkable
class Propagator(Protocol):
    """What every propagation method is: built from keyword parameters that ``__init__`` only stores
    (scikit-learn style, so ``type(p)(**p.get_params())`` rebuilds it), then ``propagate``.

    Methods subclass this Protocol to inherit :meth:`get_params`; ``propagate`` returns labels
    (D, H, W) with per-slice confidence and provenance, calls ``progress(done, total)`` as slices are processed, and
    may leave human slices to :func:`slicebudget.propagation.propagate`, which restores them exactly.
    """

    # The provenance of the slices the method itself fills (a fallback may mark some otherwise:
    # sli2vol's chains are ``learned``, its shape-interpolation fallback ``interpolation``).
    fills_as: str = INTERPOLATION

    def propagate(
        self, image: np.ndarray, annotation: SparseAnnotation, progress: ProgressCallback | None = None
    ) -> PropagationResult: ...

    def get_params(self) -> dict:
        """The keyword arguments ``__init__`` stored (scikit-learn convention)."""
        return {k: getattr(self, k) for k in init_parameters(type(self))}


def init_parameters(cls: type) -> tuple[str, ...]:
    """Names of the keyword parameters of ``cls.__init__`` (none for a class without one)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in parameters
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


@dataclass(frozen=True)
class Gap:
    """Unannotated slices ``first..last`` (inclusive); ``before``/``after`` are the bounding
    annotated slices, or None where the gap runs to the end of the volume."""

    first: int
    last: int
    before: int | None
    after: int | None

    @property
    def slices(self) -> range:
        return range(self.first, self.last + 1)


def find_gaps(annotated: np.ndarray) -> list[Gap]:
    """All runs of unannotated slices, in slice order."""
    gaps: list[Gap] = []
    d = annotated.shape[0]
    i = 0
    while i < d:
        if annotated[i]:
            i += 1
            continue
        j = i
        while j + 1 < d and not annotated[j + 1]:
            j += 1
        gaps.append(Gap(i, j, i - 1 if i > 0 else None, j + 1 if j + 1 < d else None))
        i = j + 1
    return gaps


def check_inputs(image: np.ndarray, annotation: SparseAnnotation) -> None:
    """Refuse inputs no method can work with, with one clear line each."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise UserError(f"image must be 3D (D, H, W), got shape {image.shape}")
    if tuple(image.shape) != tuple(annotation.labels.shape):
        raise UserError(f"image shape {image.shape} differs from annotation shape {annotation.labels.shape}")
    if not annotation.annotated.any():
        raise UserError("the annotation holds no annotated slice; annotate at least one slice to propagate from")
    if not np.issubdtype(annotation.labels.dtype, np.integer):
        raise UserError(f"annotation labels must be integers, got {annotation.labels.dtype}")
    if annotation.labels.size and int(annotation.labels.min()) < 0:
        raise UserError("annotation labels must not be negative")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise UserError("image holds NaN or infinite voxels")


def class_ids(annotation: SparseAnnotation) -> np.ndarray:
    """Foreground class ids present on annotated slices, sorted."""
    values = np.unique(annotation.labels[annotation.annotated])
    return values[values != 0]


def start_result(annotation: SparseAnnotation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels holding only the human slices, their confidence (1 there, 0 elsewhere) and provenance
    (``human`` there, ``none`` elsewhere)."""
    labels = np.where(annotation.annotated[:, None, None], annotation.labels, 0).astype(annotation.labels.dtype)
    confidence = annotation.annotated.astype(np.float64)
    provenance = np.where(annotation.annotated, HUMAN, NONE).astype(object)
    return labels, confidence, provenance


def is_empty(annotation: SparseAnnotation, index: int) -> bool:
    return not annotation.labels[index].any()


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    if progress is not None:
        progress(int(done), int(total))


def fill_inner_gaps(
    annotation: SparseAnnotation,
    fill_gap: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    progress: ProgressCallback | None = None,
    provenance: str = INTERPOLATION,
) -> PropagationResult:
    """The classical interpolators' shared loop: fill each gap bounded by annotated slices.

    ``fill_gap(lower, upper, width)`` returns labels for the ``width - 1`` slices strictly between the
    bounding slices ``lower`` and ``upper``; those slices get ``provenance``. Beyond the outermost
    annotated slices, and between two slices annotated as empty, nothing is filled (``none``).
    """
    labels, confidence, sources = start_result(annotation)
    gaps = inner_gaps(annotation)
    for done, gap in enumerate(gaps):
        filled = fill_gap(annotation.labels[gap.before], annotation.labels[gap.after], gap.after - gap.before)
        labels[gap.first : gap.last + 1] = filled
        report(progress, done + 1, len(gaps))
    return interpolated_result(annotation, labels, confidence, sources, provenance)


def inner_gaps(annotation: SparseAnnotation) -> list[Gap]:
    """The gaps bounded by annotated slices on both sides, in slice order."""
    return [g for g in find_gaps(annotation.annotated) if g.before is not None and g.after is not None]


def interpolated_result(annotation: SparseAnnotation, labels: np.ndarray, confidence: np.ndarray,
                        sources: np.ndarray, provenance: str = INTERPOLATION) -> PropagationResult:
    """An interpolator's result once its labels are written: every inner gap's slices get
    :func:`interpolation_confidence` and ``provenance`` (``none`` between two slices annotated as empty)."""
    for gap in inner_gaps(annotation):
        both_empty = is_empty(annotation, gap.before) and is_empty(annotation, gap.after)
        for j in gap.slices:
            confidence[j] = interpolation_confidence(annotation, gap, j)
            sources[j] = NONE if both_empty else provenance
    return PropagationResult(labels, confidence, sources, confidence.copy())


def interpolation_confidence(annotation: SparseAnnotation, gap: Gap, index: int) -> float:
    """Raw score the classical methods give slice ``index`` of ``gap`` (calibrated later).

    Interpolating between two masks is exact at either end and worst half-way, and how bad it gets
    there depends on how much the shape changes across the gap. So the score runs from 1 at a bounding
    slice down to the bounding masks' overlap (foreground IoU) half-way:
    ``overlap + (1 - overlap) * (1 - 2 * distance_to_nearer_bounding_slice / gap_width)``.
    0 beyond the outermost annotated slices and between two empty slices, where nothing is propagated.
    """
    if gap.before is None or gap.after is None:
        return 0.0
    if is_empty(annotation, gap.before) and is_empty(annotation, gap.after):
        return 0.0
    lower, upper = annotation.labels[gap.before] != 0, annotation.labels[gap.after] != 0
    overlap = float((lower & upper).sum() / (lower | upper).sum())
    near = min(index - gap.before, gap.after - index) / (gap.after - gap.before)
    return overlap + (1.0 - overlap) * (1.0 - 2.0 * near)
