"""Helpers shared by tests (kept out of conftest so they can be imported by name)."""

from __future__ import annotations

import numpy as np

from slicebudget.volume import SourceGeometry, Volume


def world_of(meta: dict, index) -> np.ndarray:
    """World position napari gives a data index: affine(scale * index + translate)."""
    affine = np.asarray(meta["affine"])
    physical = np.asarray(meta["scale"]) * np.asarray(index, dtype=float) + np.asarray(meta["translate"])
    return affine[:3, :3] @ physical + affine[:3, 3]


RAS_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def oblique_direction(degrees: float = 20.0) -> tuple[float, ...]:
    """A rotation about the S axis: an oblique acquisition, as a row-major 3 x 3 tuple."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return tuple(rot.ravel())


def make_volume(shape=(12, 20, 24), spacing_xyz=(0.8, 0.7, 3.0), origin=(12.5, -40.0, 250.0),
                direction=RAS_DIRECTION, seed=0) -> Volume:
    """An image volume in canonical order with the given source header."""
    geometry = SourceGeometry.from_header(spacing_xyz, origin, direction)
    rng = np.random.default_rng(seed)
    return Volume(rng.normal(0, 1, size=shape).astype(np.float32), geometry, name="test")


def wait_for_workers(qtbot, widget, timeout: int = 30000) -> None:
    """Wait until the background runs a widget (or session) started have reported back."""
    qtbot.waitUntil(lambda: not widget.__dict__.get("_slicebudget_workers"), timeout=timeout)


def paint_disk(layer, index: int, row: float, col: float, label: int = 1, size: int = 7) -> None:
    """Paint like a person does with the brush (napari records history and emits ``paint``)."""
    layer.brush_size = size
    layer.paint((index, row, col), label)


def foreground_centre(labels: np.ndarray, index: int) -> tuple[float, float]:
    rows, cols = np.nonzero(labels[index])
    return float(rows.mean()), float(cols.mean())
