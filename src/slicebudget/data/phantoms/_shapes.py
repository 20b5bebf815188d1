"""Building blocks shared by the phantom tasks: smooth random fields, deformed blobs, capsules.

Everything works in physical millimetres on the canonical grid (axis 0 = slice axis) and is
evaluated only inside a bounding box, so a 300 x 512 x 512 volume never needs more than a few
full-size float32 arrays. No step loops over voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]

DEFAULT_SHAPE = (32, 96, 96)  # small enough to train on a 2-core CPU in seconds
DEFAULT_SPACING = (2.5, 0.8, 0.8)  # mm, slice axis first: thick slices as in clinical CT


@dataclass(frozen=True)
class Grid:
    """Voxel grid of a phantom: shape and spacing (mm) per canonical axis."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def extent(self) -> np.ndarray:
        """Physical size (mm) along each axis."""
        return np.asarray(self.shape, dtype=float) * np.asarray(self.spacing, dtype=float)

    @property
    def inplane_fov(self) -> float:
        """The smaller in-plane field of view (mm): sizes scale with it so shapes look alike at any size."""
        return float(min(self.extent[1], self.extent[2]))

    @property
    def full(self) -> Box:
        return (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))

    def box_around(self, center_mm, half_size_mm) -> Box:
        """Voxel box covering ``center +- half_size`` (mm), clipped to the grid (may be empty)."""
        center = np.asarray(center_mm, dtype=float)
        half = np.asarray(half_size_mm, dtype=float)
        spacing = np.asarray(self.spacing, dtype=float)
        lo = np.floor((center - half) / spacing).astype(int)
        hi = np.ceil((center + half) / spacing).astype(int) + 1
        return tuple(slice(int(np.clip(lo[a], 0, self.shape[a])), int(np.clip(hi[a], 0, self.shape[a]))) for a in range(3))

    def axes_mm(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates (mm) of ``box`` as open-grid arrays that broadcast to its shape."""
        out = []
        for a, sl in enumerate(box):
            coords = np.arange(sl.start, sl.stop, dtype=np.float32) * np.float32(self.spacing[a])
            shape = [1, 1, 1]
            shape[a] = coords.size
            out.append(coords.reshape(shape))
        return tuple(out)

    def snap(self, point_mm) -> np.ndarray:
        """Nearest voxel centre (mm) inside the grid; blobs centred there always contain that voxel."""
        spacing = np.asarray(self.spacing, dtype=float)
        index = np.clip(np.rint(np.asarray(point_mm, dtype=float) / spacing), 0, np.asarray(self.shape) - 1)
        return index * spacing

    def index_of(self, point_mm) -> tuple[int, int, int]:
        spacing = np.asarray(self.spacing, dtype=float)
        index = np.clip(np.rint(np.asarray(point_mm, dtype=float) / spacing), 0, np.asarray(self.shape) - 1)
        return tuple(int(i) for i in index)


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(max(0, sl.stop - sl.start) for sl in box)


def intersect(a: Box, b: Box) -> Box:
    return tuple(slice(max(x.start, y.start), max(max(x.start, y.start), min(x.stop, y.stop))) for x, y in zip(a, b))


def relative(inner: Box, outer: Box) -> Box:
    """``inner`` expressed in the coordinates of an array that covers ``outer``."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))


def _interpolation_matrix(n_out: int, n_ctrl: int) -> np.ndarray:
    """Rows of Gaussian weights (summing to one) from ``n_ctrl`` control points to ``n_out`` samples.

    Row-normalised weights make every output a convex combination of control values, so a field
    built from control values in [-1, 1] stays in [-1, 1]: the shape code relies on that bound.
    """
    positions = np.linspace(0.0, n_ctrl - 1.0, n_out)[:, None]
    weights = np.exp(-0.5 * ((positions - np.arange(n_ctrl)[None, :]) / 0.8) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape, n_ctrl) -> np.ndarray:
    """A smooth random float32 field in [-1, 1] with about ``n_ctrl`` bumps per axis.

    Built separably (three small matrix products) so the cost is a few passes over the output,
    however large, instead of a full-volume filter.
    """
    shape = tuple(int(s) for s in shape)
    n_ctrl = tuple(int(max(2, min(c, max(s, 2)))) for c, s in zip(n_ctrl, shape))
    field = rng.uniform(-1.0, 1.0, size=n_ctrl).astype(np.float32)
    if min(shape) == 0:
        return np.zeros(shape, dtype=np.float32)
    for axis in (2, 1, 0):  # the largest product comes last and lands contiguous on axis 0
        matrix = _interpolation_matrix(shape[axis], n_ctrl[axis])
        field = np.moveaxis(np.tensordot(matrix, field, axes=(1, axis)), 0, axis)
    return np.ascontiguousarray(field, dtype=np.float32)


def blob_level(grid: Grid, box: Box, center_mm, radii_mm, roughness: float, rng: np.random.Generator,
               bumps: int = 4) -> np.ndarray:
    """Level function of a deformed ellipsoid on ``box``: the blob is where the level is below 1.

    The level is the ellipsoidal radius plus ``roughness`` times a smooth field in [-1, 1]; at the
    centre it is at most ``roughness``, so a blob centred on a voxel centre always holds that voxel
    when ``roughness < 1``.
    """
    z, y, x = grid.axes_mm(box)
    c = np.asarray(center_mm, dtype=np.float32)
    r = np.asarray(radii_mm, dtype=np.float32)
    level = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2
    np.sqrt(level, out=level)
    if roughness > 0:
        level += np.float32(roughness) * smooth_field(rng, box_shape(box), (bumps, bumps, bumps))
    return level


def blob_box(grid: Grid, center_mm, radii_mm, roughness: float) -> Box:
    """Voxel box that holds every point of a blob whose level can drop to ``1 - roughness``."""
    return grid.box_around(center_mm, np.asarray(radii_mm, dtype=float) * (1.0 + roughness))


def soft_edge(level: np.ndarray, radius_mm: float, edge_mm: float) -> np.ndarray:
    """Partial-volume weight in [0, 1] falling from inside (level < 1) to outside over ``edge_mm``."""
    weight = (1.0 - level) * np.float32(radius_mm / max(edge_mm, 1e-6)) + np.float32(0.5)
    return np.clip(weight, 0.0, 1.0, out=weight)


def capsule_distance(grid: Grid, box: Box, start_mm, end_mm) -> np.ndarray:
    """Distance (mm) from every voxel centre in ``box`` to the segment ``start``-``end``."""
    z, y, x = grid.axes_mm(box)
    a = np.asarray(start_mm, dtype=np.float32)
    v = np.asarray(end_mm, dtype=np.float32) - a
    dz, dy, dx = z - a[0], y - a[1], x - a[2]
    length2 = float(v @ v)
    if length2 == 0.0:
        return np.sqrt(dz**2 + dy**2 + dx**2)
    t = np.clip((dz * v[0] + dy * v[1] + dx * v[2]) / np.float32(length2), 0.0, 1.0)
    return np.sqrt((dz - t * v[0]) ** 2 + (dy - t * v[1]) ** 2 + (dx - t * v[2]) ** 2)


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def point_in_ellipsoid(rng: np.random.Generator, center_mm, radii_mm, max_fraction: float) -> np.ndarray:
    """A random point whose ellipsoidal radius is at most ``max_fraction``."""
    return np.asarray(center_mm, dtype=float) + random_unit_vector(rng) * rng.uniform(0.0, max_fraction) * np.asarray(radii_mm)


def add_noise_and_bias(image: np.ndarray, rng: np.random.Generator, noise_hu: float, bias_amplitude: float) -> np.ndarray:
    """Scanner effects, in place on a fresh array: a smooth multiplicative bias and Gaussian noise.

    The bias scales attenuation (HU + 1000) rather than HU, so air stays near -1000 and the bias
    shows as a slow drift of tissue values, as in a real scan.
    """
    bias = smooth_field(rng, image.shape, (3, 3, 3))
    bias *= np.float32(bias_amplitude)
    image += np.float32(1000.0)
    image *= bias + np.float32(1.0)
    image -= np.float32(1000.0)
    del bias
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_hu)
    return image


def body_outline(grid: Grid, rng: np.random.Generator, fat_hu: float, tissue_hu: float) -> np.ndarray:
    """A CT-like body: an elliptical cross-section (soft tissue in a fat ring) in air, on every slice.

    Built in 2D and broadcast, because the body fills every slice while the targets do not.
    """
    _, y, x = grid.axes_mm((slice(0, 1), slice(0, grid.shape[1]), slice(0, grid.shape[2])))
    extent = grid.extent
    cy, cx = extent[1] * rng.uniform(0.47, 0.53), extent[2] * rng.uniform(0.47, 0.53)
    ry, rx = extent[1] * rng.uniform(0.40, 0.47), extent[2] * rng.uniform(0.42, 0.48)
    radius = np.sqrt(((y[0] - cy) / ry) ** 2 + ((x[0] - cx) / rx) ** 2)
    fat_ring = rng.uniform(0.84, 0.92)
    plane = np.where(radius < fat_ring, np.float32(tissue_hu), np.float32(fat_hu))
    plane = np.where(radius < 1.0, plane, np.float32(-1000.0)).astype(np.float32)
    image = np.empty(grid.shape, dtype=np.float32)
    image[...] = plane
    return image
