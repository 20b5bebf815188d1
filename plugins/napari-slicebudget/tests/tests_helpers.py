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


class ArrayStore:
    """A numpy label store with an undo history like napari's Labels layer: one item per write or
    stroke; ``paint`` is a human stroke (the caller then tells the work, as napari's event does)."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self._undo: list = []
        self._redo: list = []

    def write(self, indices, values) -> None:
        self._undo.append((indices, self.data[indices].copy(), np.asarray(values).copy()))
        self._redo.clear()
        self.data[indices] = values

    def paint(self, slices, rows=slice(2, 5), cols=slice(2, 5), value: int = 1) -> list[int]:
        """Set a block of ``slices`` to ``value`` (0 erases) as one stroke; returns the slices."""
        slices = list(np.atleast_1d(slices))
        box = np.zeros(self.data.shape, bool)
        box[slices, rows, cols] = True
        self.write(np.nonzero(box), value)
        return slices

    def undo(self) -> None:
        if self._undo:
            item = self._undo.pop()
            self.data[item[0]] = item[1]
            self._redo.append(item)

    def redo(self) -> None:
        if self._redo:
            item = self._redo.pop()
            self.data[item[0]] = item[2]
            self._undo.append(item)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
