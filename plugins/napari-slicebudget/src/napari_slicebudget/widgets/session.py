"""An annotation session: one image, its working labels layer, the ledger, marks and autosave.

The session is the only object that listens to the labels layer; the dock widgets read and change
the ledger through it. It is kept in the labels layer's metadata (under a private key the writer
ignores), so every widget docked in the viewer finds the same one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from psygnal import Signal
from qtpy.QtCore import QTimer

from slicebudget.volume import Volume

from napari_slicebudget.logic.autosave import DEBOUNCE_SECONDS, save_session, smallest_label_dtype
from napari_slicebudget.logic.geometry import META_KEY, check_same_grid, layer_transform, volume_from_layer
from napari_slicebudget.logic.ledger import SliceLedger
from napari_slicebudget.logic.planning import outline_colors, overlay_text, slice_outlines
from napari_slicebudget.logic.propagation import Edits
from napari_slicebudget.widgets._common import run_in_thread, text_overlay

SESSION_KEY = "_slicebudget_session"


def layer_volume(layer) -> Volume:
    return volume_from_layer(layer.data, layer.metadata, layer.scale, layer.translate,
                             layer.affine.affine_matrix, name=layer.name)


def session_of(layer) -> AnnotationSession | None:
    return None if layer is None else layer.metadata.get(SESSION_KEY)


def painted_slices(history_item) -> set[int]:
    """Slice indices (axis 0) touched by one napari Labels history item."""
    out: set[int] = set()
    for atom in history_item or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                out.update(range(first.start or 0, first.stop))
            else:
                out.add(int(first))
        else:
            out.update(int(i) for i in np.unique(np.asarray(atom[0][0])))
    return out


class AnnotationSession:
    changed = Signal()

    def __init__(self, viewer, image_layer, labels_layer, ledger: SliceLedger | None = None,
                 autosave_folder: Path | None = None):
        self.viewer, self.image_layer, self.labels_layer = viewer, image_layer, labels_layer
        self.image = layer_volume(image_layer)
        check_same_grid(self.image, layer_volume(labels_layer), image_layer.name, labels_layer.name)
        self.ledger = ledger if ledger is not None else SliceLedger(self.image.shape[0]).with_labels(labels_layer.data)
        self.autosave_folder = autosave_folder
        self.marks_layer = None
        self._programmatic = 0
        self._saving = False
        self._dirty: set[int] = set()
        self._paint_timer = QTimer()
        self._paint_timer.setSingleShot(True)
        self._paint_timer.setInterval(0)
        self._paint_timer.timeout.connect(self._flush_paint)
        self._scan_timer = QTimer()
        self._scan_timer.setSingleShot(True)
        self._scan_timer.setInterval(300)
        self._scan_timer.timeout.connect(self._rescan)
        self._save_timer = QTimer()
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(int(DEBOUNCE_SECONDS * 1000))
        self._save_timer.timeout.connect(self.save_now)
        labels_layer.events.paint.connect(self._on_paint)
        labels_layer.events.data.connect(self._on_data)
        labels_layer.events.set_data.connect(self._on_set_data)
        viewer.dims.events.current_step.connect(self._update_overlay)
        labels_layer.metadata[SESSION_KEY] = self
        self._refresh_marks()

    # ---- the current slice --------------------------------------------------------------------
    def current_slice(self) -> int:
        index = self.image_layer.world_to_data(self.viewer.dims.point)[0]
        return int(np.clip(round(float(index)), 0, self.image.shape[0] - 1))

    def go_to(self, index: int | None) -> None:
        if index is None:
            return
        _, h, w = self.image.shape
        world = self.image_layer.data_to_world((int(index), (h - 1) / 2, (w - 1) / 2))
        self.viewer.dims.set_point(0, float(world[0]))
        self._update_overlay()

    # ---- ledger changes ------------------------------------------------------------------------
    def set_ledger(self, ledger: SliceLedger, save: bool = True) -> None:
        suggested_changed = ledger.suggested != self.ledger.suggested
        self.ledger = ledger
        self._refresh_marks(rebuild=suggested_changed)
        self.changed.emit()
        if save:
            self.schedule_save()

    def apply_edits(self, edits: Edits, layer=None) -> None:
        """Write edits through napari's undoable path, without counting them as human paint."""
        layer = layer or self.labels_layer
        if edits.size == 0:
            return
        self._programmatic += 1
        try:
            layer.data_setitem(edits.indices, edits.values)
        finally:
            self._programmatic -= 1

    def _on_paint(self, event) -> None:
        # napari emits ``paint`` when it records history, before the new values reach the array:
        # note the slices now, read them once control returns to the event loop.
        if self._programmatic:
            return
        self._dirty.update(painted_slices(event.value))
        self._paint_timer.start()

    def _flush_paint(self) -> None:
        if self._dirty:
            slices, self._dirty = sorted(self._dirty), set()
            self.set_ledger(self.ledger.with_painted(self.labels_layer.data, slices))

    def _on_data(self, event=None) -> None:
        if self._programmatic or np.shape(self.labels_layer.data)[0] != self.ledger.depth:
            return
        self.set_ledger(self.ledger.with_labels(self.labels_layer.data))

    def _on_set_data(self, event=None) -> None:
        # Undo and redo emit no public event of their own, only a refresh; rescan once things settle
        # (a scan of which slices hold paint is a few milliseconds even for 512 x 512 x 300).
        if not self._programmatic:
            self._scan_timer.start()

    def _rescan(self) -> None:
        if np.shape(self.labels_layer.data)[0] != self.ledger.depth:
            return
        ledger = self.ledger.with_labels(self.labels_layer.data)
        if not np.array_equal(ledger.has_foreground, self.ledger.has_foreground) or len(ledger.log) != len(self.ledger.log):
            self.set_ledger(ledger)

    # ---- what the annotator sees ---------------------------------------------------------------
    def _refresh_marks(self, rebuild: bool = False) -> None:
        if not self.ledger.suggested:
            self._update_overlay()
            return
        outlines = slice_outlines(self.ledger.suggested, self.image.shape)
        colors = outline_colors(self.ledger)
        if self.marks_layer is None or self.marks_layer not in self.viewer.layers:
            edge = max(1.0, self.image.shape[1] / 96)
            self.marks_layer = self.viewer.add_shapes(
                outlines, shape_type="rectangle", edge_color=colors, face_color="transparent", edge_width=edge,
                name=f"{self.image_layer.name} suggested slices", **layer_transform(self.image),
                metadata={META_KEY: {"role": "marks"}})
            self.viewer.layers.selection.active = self.labels_layer
        elif rebuild or len(self.marks_layer.data) != len(outlines):
            self.marks_layer.data = outlines
            self.marks_layer.shape_type = ["rectangle"] * len(outlines)
            self.marks_layer.edge_color = colors
        else:
            self.marks_layer.edge_color = colors
        self._update_overlay()

    def _update_overlay(self, event=None) -> None:
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.font_size = 10
        overlay.position = "top_left"
        overlay.color = "white"
        overlay.text = overlay_text(self.ledger, self.current_slice())

    # ---- autosave ------------------------------------------------------------------------------
    def schedule_save(self) -> None:
        if self.autosave_folder is not None:
            self._save_timer.start()

    def save_now(self) -> None:
        """Save in a background thread (compressing a large volume takes seconds)."""
        if self.autosave_folder is None:
            return
        if self._saving:
            self._save_timer.start()
            return
        self._saving = True
        labels = np.asarray(self.labels_layer.data)
        snapshot = labels.astype(smallest_label_dtype(labels), copy=True)
        run_in_thread(self, save_session, self.autosave_folder, snapshot, self.image, self.ledger,
                      on_done=lambda _: None, what="Autosave failed", on_finish=self._saved)

    def _saved(self) -> None:
        self._saving = False

    def flush(self) -> None:
        """Save synchronously now (closing, tests)."""
        if self.autosave_folder is not None:
            self._save_timer.stop()
            save_session(self.autosave_folder, np.asarray(self.labels_layer.data), self.image, self.ledger)
