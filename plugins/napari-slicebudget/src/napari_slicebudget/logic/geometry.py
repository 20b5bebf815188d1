"""From a slicebudget :class:`Volume` to napari layer transforms, and back.

napari's world axes follow the canonical array axes (slice, row, column), so the physical frame is
written in reversed-LPS order (S, P, L): ``scale`` is the canonical spacing, ``translate`` the
position of voxel (0, 0, 0) in millimetres, and an oblique direction becomes a 3 x 3 rotation about
that voxel, given as the layer ``affine`` (identity for axis-aligned files). The source header rides
in layer metadata so the writer can rebuild the exact ``like=`` volume.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.volume import SourceGeometry, Volume

META_KEY = "slicebudget"
# LPS (x, y, z) <-> (S, P, L): reversing the axis order is its own inverse.
LPS_TO_SPL = np.eye(3)[::-1]
ROTATION_TOLERANCE = 1e-6


def layer_transform(volume: Volume) -> dict:
    """``scale``, ``translate`` and ``affine`` (4 x 4) placing the canonical array in (S, P, L) mm."""
    matrix = volume.affine
    columns = LPS_TO_SPL @ matrix[:3, :3]  # physical step of each canonical axis, in (S, P, L)
    origin = LPS_TO_SPL @ matrix[:3, 3]
    scale = np.asarray(volume.spacing, dtype=float)
    rotation = columns / scale[None, :]
    if np.allclose(rotation, np.eye(3), atol=ROTATION_TOLERANCE):
        rotation = np.eye(3)
    affine = np.eye(4)
    affine[:3, :3] = rotation
    # rotate about voxel (0, 0, 0) so ``translate`` keeps its meaning: the origin voxel's position
    affine[:3, 3] = origin - rotation @ origin
    return {"scale": tuple(scale), "translate": tuple(origin), "affine": affine}


def layer_metadata(volume: Volume, role: str, source: str | Path | None = None, **extra) -> dict:
    """The metadata entry that lets the writer and the widgets rebuild ``volume``'s grid."""
    return {
        META_KEY: {
            "geometry": asdict(volume.geometry),
            "shape": list(volume.shape),
            "role": role,
            "source": None if source is None else str(source),
            **extra,
        }
    }


def layer_kwargs(volume: Volume, name: str, role: str, source: str | Path | None = None, **extra) -> dict:
    """Keyword arguments for ``viewer.add_image`` / ``add_labels`` (or a reader's layer-data meta)."""
    return {"name": name, **layer_transform(volume), "metadata": layer_metadata(volume, role, source, **extra)}


def geometry_from_metadata(metadata: dict | None) -> SourceGeometry | None:
    entry = (metadata or {}).get(META_KEY) or {}
    raw = entry.get("geometry")
    if raw is None:
        return None
    return SourceGeometry(
        spacing=tuple(raw["spacing"]),
        origin=tuple(raw["origin"]),
        direction=tuple(raw["direction"]),
        permutation=tuple(raw["permutation"]),
        flips=tuple(bool(f) for f in raw["flips"]),
    )


def geometry_from_transform(scale, translate, affine=None) -> SourceGeometry:
    """A header for a layer that did not come from slicebudget's reader (e.g. a plain numpy layer).

    The canonical array is taken as the source array: index (x, y, z) runs along (column, row, slice).
    """
    scale = np.asarray(scale, dtype=float)[-3:]
    origin_spl = np.asarray(translate, dtype=float)[-3:]
    rotation = np.eye(3) if affine is None else np.asarray(affine, dtype=float)[-4:-1, -4:-1]
    if affine is not None:
        full = np.asarray(affine, dtype=float)
        origin_spl = rotation @ origin_spl + full[-4:-1, -1]
    direction_spl = rotation  # column a: unit step of canonical axis a in (S, P, L)
    direction_lps = LPS_TO_SPL @ direction_spl @ LPS_TO_SPL  # columns reordered to SimpleITK (x, y, z)
    return SourceGeometry.from_header(scale[::-1], LPS_TO_SPL @ origin_spl, direction_lps.ravel())


def volume_from_layer(data, metadata: dict | None, scale=None, translate=None, affine=None, name: str = "") -> Volume:
    """Rebuild the :class:`Volume` a layer shows (data, plus the source header from metadata)."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise UserError(f"layer {name!r} is {array.ndim}D (shape {array.shape}); slicebudget needs a 3D volume")
    geometry = geometry_from_metadata(metadata)
    if geometry is None:
        geometry = geometry_from_transform(scale if scale is not None else (1, 1, 1),
                                           translate if translate is not None else (0, 0, 0), affine)
    return Volume(array, geometry, name=name)


def check_same_grid(image: Volume, labels: Volume, image_name: str, labels_name: str) -> None:
    """Refuse a labels layer that does not lie on its image's voxel grid, naming both layers."""
    if image.shape != labels.shape:
        raise UserError(f"labels layer {labels_name!r} has shape {labels.shape} but image layer "
                        f"{image_name!r} has shape {image.shape}; they must be on the same grid")
    if not image.same_grid(labels):
        raise UserError(f"labels layer {labels_name!r} has a different spacing, origin or direction "
                        f"than image layer {image_name!r}")
