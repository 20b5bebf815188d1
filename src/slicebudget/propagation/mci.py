"""ITK morphological contour interpolation (Zukić et al.), from the optional ``mci`` extra."""

from __future__ import annotations

import numpy as np

from slicebudget.errors import UserError
from slicebudget.propagation.common import (
    Propagator,
    ProgressCallback,
    PropagationResult,
    interpolated_result,
    report,
    start_result,
)
from slicebudget.volume import SparseAnnotation

ITK_SLICE_AXIS = 2  # canonical numpy axis 0 is ITK's index axis 2


def _load_itk():
    try:
        import itk

        itk.MorphologicalContourInterpolator  # noqa: B018 -- the lazy module loads the filter here
    except (ImportError, AttributeError) as exc:
        raise UserError(
            "method 'mci' needs ITK's morphological contour interpolation: pip install slicebudget[mci]"
        ) from exc
    return itk


class MorphologicalContourPropagator(Propagator):
    """Interpolate each class between annotated slices with ITK's MorphologicalContourInterpolator.

    Each class is interpolated on its own, inside runs of annotated slices that hold the class:
    an annotated slice without the class (for instance one annotated as empty) splits the run, so the
    class never crosses it. ITK fills only between slices that hold the class, never beyond the
    outermost ones, so slices beyond the outermost annotated slice stay background (confidence 0).
    Where classes overlap the higher class id wins (a tumour inside its organ). Human slices are
    restored exactly afterwards. Confidence inside a gap is
    ``1 - distance_to_nearer_annotated_slice / gap_width``, as for ``sdf``.
    """

    def propagate(self, image: np.ndarray, annotation: SparseAnnotation,
                  progress: ProgressCallback | None = None) -> PropagationResult:
        itk = _load_itk()
        labels, confidence, provenance = start_result(annotation)
        annotated = annotation.annotated_slices
        present = annotation.labels.reshape(annotation.labels.shape[0], -1)
        classes = [int(c) for c in np.unique(annotation.labels[annotation.annotated]) if c != 0]
        runs = [(c, run) for c in classes for run in _runs_with_class(annotated, present, c)]
        for done, (c, (lo, hi)) in enumerate(runs):
            block = (annotation.labels[lo : hi + 1] == c).astype(np.uint8)
            block[~annotation.annotated[lo : hi + 1]] = 0
            filled = _interpolate(itk, block)
            target = labels[lo : hi + 1]
            target[(filled > 0) & ~annotation.annotated[lo : hi + 1, None, None]] = c
            report(progress, done + 1, len(runs))
        return interpolated_result(annotation, labels, confidence, provenance)


def _runs_with_class(annotated: np.ndarray, present: np.ndarray, c: int) -> list[tuple[int, int]]:
    """Maximal runs of consecutive annotated slices (in annotated order) that all hold class ``c``,
    as (first slice, last slice) pairs; only runs of two or more slices leave something to fill."""
    runs, current = [], []
    for s in annotated:
        if (present[s] == c).any():
            current.append(int(s))
        else:
            if len(current) >= 2:
                runs.append((current[0], current[-1]))
            current = []
    if len(current) >= 2:
        runs.append((current[0], current[-1]))
    return runs


def _interpolate(itk, block: np.ndarray) -> np.ndarray:
    image = itk.image_from_array(np.ascontiguousarray(block))
    interpolator = itk.MorphologicalContourInterpolator.New(image)
    interpolator.SetAxis(ITK_SLICE_AXIS)
    # The filter's threads race when writing its output (ITKContourInterpolation issue #33): with
    # several threads some inputs corrupt the heap, and the process aborts later, often at exit
    # after all results were written. One thread for this filter only (its own multithreader, not
    # ITK's global default) keeps results identical and the heap intact.
    interpolator.GetMultiThreader().SetMaximumNumberOfThreads(1)
    interpolator.SetNumberOfWorkUnits(1)
    interpolator.Update()
    return np.asarray(itk.array_from_image(interpolator.GetOutput()))
