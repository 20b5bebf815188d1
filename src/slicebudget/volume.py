"""The plain data that flows through slicebudget: a volume with its geometry, and a sparse annotation.

Canonical orientation: axis 0 of every array is the slice axis and runs from inferior to superior;
axis 1 runs anterior to posterior and axis 2 from patient right to patient left (ITK's LPS index
order, read as numpy's (z, y, x)). Reorienting only permutes and flips axes, never resamples, so the
source header is kept exactly and anything written back lands on the original voxel grid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from slicebudget.errors import UserError


@dataclass(frozen=True)
class SourceGeometry:
    """The header of the file a volume came from, and how its array was reoriented.

    ``spacing``, ``origin`` and ``direction`` are in SimpleITK's (x, y, z) index order;
    ``direction`` is the 3 x 3 matrix, row-major, as SimpleITK stores it.
    ``permutation[a]`` is the source numpy axis that became canonical axis ``a``;
    ``flips[a]`` says whether canonical axis ``a`` was then reversed.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    permutation: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @classmethod
    def from_header(cls, spacing, origin, direction) -> SourceGeometry:
        """Work out the permutation and flips that bring a source array to canonical order."""
        spacing = tuple(float(s) for s in spacing)
        origin = tuple(float(o) for o in origin)
        direction = tuple(float(d) for d in direction)
        d = np.asarray(direction, dtype=float).reshape(3, 3)  # columns: physical direction of index axes
        # Canonical numpy axis a looks along physical LPS axis 2 - a (S, then P, then L).
        # Source numpy axis n is SimpleITK index axis 2 - n. Pick the assignment that best aligns
        # them (an exhaustive search over 6 permutations is robust for oblique matrices too).
        best = max(
            itertools.permutations(range(3)),
            key=lambda perm: sum(abs(d[2 - a, 2 - perm[a]]) for a in range(3)),
        )
        flips = tuple(bool(d[2 - a, 2 - best[a]] < 0) for a in range(3))
        return cls(spacing, origin, direction, tuple(best), flips)

    def to_canonical(self, source_array: np.ndarray) -> np.ndarray:
        """Source numpy array (z, y, x as SimpleITK gives it) to canonical order."""
        out = np.transpose(source_array, self.permutation)
        flip_axes = tuple(a for a in range(3) if self.flips[a])
        return np.ascontiguousarray(np.flip(out, flip_axes) if flip_axes else out)

    def to_source(self, canonical_array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`: exactly the source voxel grid again."""
        flip_axes = tuple(a for a in range(3) if self.flips[a])
        out = np.flip(canonical_array, flip_axes) if flip_axes else canonical_array
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.permutation)))

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        # numpy axis n of the source has SimpleITK spacing index 2 - n
        return tuple(self.spacing[2 - self.permutation[a]] for a in range(3))

    def canonical_affine(self, canonical_shape: tuple[int, int, int]) -> np.ndarray:
        """4 x 4 matrix from canonical voxel indices (axis 0, 1, 2) to LPS millimetres."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        src_shape = np.empty(3, dtype=int)
        src_shape[list(self.permutation)] = canonical_shape
        affine = np.eye(4)
        corner = np.zeros(3)  # source numpy index of canonical voxel (0, 0, 0)
        for a in range(3):
            n = self.permutation[a]
            sitk_axis = 2 - n
            step = d[:, sitk_axis] * self.spacing[sitk_axis]
            if self.flips[a]:
                corner[n] = src_shape[n] - 1
                step = -step
            affine[:3, a] = step
        corner_xyz = corner[::-1]  # numpy (z, y, x) -> SimpleITK (x, y, z)
        affine[:3, 3] = np.asarray(self.origin) + d @ (corner_xyz * np.asarray(self.spacing))
        return affine


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image in canonical orientation, with the source geometry kept.

    ``spacing`` is in millimetres per canonical axis (slice axis first).
    """

    array: np.ndarray
    geometry: SourceGeometry
    name: str = ""

    def __post_init__(self):
        if self.array.ndim != 3:
            raise UserError(f"expected a 3D volume, got an array of shape {self.array.shape}", self.name or None)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.canonical_spacing

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    @property
    def n_slices(self) -> int:
        return int(self.array.shape[0])

    @property
    def affine(self) -> np.ndarray:
        return self.geometry.canonical_affine(self.shape)

    def with_array(self, array: np.ndarray, name: str | None = None) -> Volume:
        """A new volume on the same grid (labels, probabilities, propagated masks)."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.shape}")
        return replace(self, array=array, name=self.name if name is None else name)

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """Same shape, spacing, origin and direction (what nnU-Net requires of image and label)."""
        a, b = self.geometry, other.geometry
        return (
            self.shape == other.shape
            and np.allclose(a.spacing, b.spacing, atol=atol)
            and np.allclose(a.origin, b.origin, atol=atol)
            and np.allclose(a.direction, b.direction, atol=atol)
        )


@dataclass(frozen=True, eq=False)
class SparseAnnotation:
    """Labels on some slices of a volume.

    ``labels`` holds class ids (0 = background) on the slices where ``annotated`` is True; its values
    on other slices mean nothing and are kept at 0. A slice that is annotated and holds only
    background is "annotated as empty", which is not the same as "not annotated".
    """

    labels: np.ndarray
    annotated: np.ndarray = field(repr=False)

    def __post_init__(self):
        if self.labels.ndim != 3:
            raise ValueError(f"labels must be 3D, got shape {self.labels.shape}")
        if self.annotated.shape != (self.labels.shape[0],) or self.annotated.dtype != bool:
            raise ValueError("annotated must be a boolean vector with one entry per slice")

    @classmethod
    def from_dense(cls, dense: np.ndarray, slices) -> SparseAnnotation:
        """Keep the given slices of a dense label array (how a study simulates an annotator)."""
        annotated = np.zeros(dense.shape[0], dtype=bool)
        annotated[np.asarray(list(slices), dtype=int)] = True
        labels = np.where(annotated[:, None, None], dense, 0).astype(dense.dtype, copy=False)
        return cls(labels, annotated)

    @classmethod
    def decode(cls, encoded: np.ndarray, ignore_label: int, name: str | None = None) -> SparseAnnotation:
        """Read the nnU-Net v2 encoding: unannotated voxels carry ``ignore_label``.

        slicebudget annotates whole slices, so a slice is either all ignore or holds no ignore voxel.
        """
        ignored = encoded == ignore_label
        per_slice = ignored.reshape(encoded.shape[0], -1)
        all_ignored = per_slice.all(axis=1)
        partial = np.flatnonzero(per_slice.any(axis=1) & ~all_ignored)
        if partial.size:
            raise UserError(
                f"slice {int(partial[0])} is only partly marked with ignore label {ignore_label}; "
                "slicebudget expects whole slices annotated or not",
                name,
            )
        labels = np.where(ignored, 0, encoded).astype(encoded.dtype, copy=False)
        return cls(labels, ~all_ignored)

    def encode(self, ignore_label: int) -> np.ndarray:
        """The nnU-Net v2 encoding: unannotated slices set to ``ignore_label``."""
        if self.labels.size and int(self.labels.max()) >= ignore_label:
            raise UserError(f"ignore label {ignore_label} collides with class {int(self.labels.max())}")
        dtype = np.uint8 if ignore_label < 256 else np.uint16
        out = self.labels.astype(dtype, copy=True)
        out[~self.annotated] = ignore_label
        return out

    @property
    def annotated_slices(self) -> np.ndarray:
        return np.flatnonzero(self.annotated)

    @property
    def empty_slices(self) -> np.ndarray:
        """Slices annotated as holding no foreground."""
        has_fg = self.labels.reshape(self.labels.shape[0], -1).any(axis=1)
        return np.flatnonzero(self.annotated & ~has_fg)

    def voxel_mask(self) -> np.ndarray:
        """Boolean mask of annotated voxels, for masked losses."""
        return np.broadcast_to(self.annotated[:, None, None], self.labels.shape)
