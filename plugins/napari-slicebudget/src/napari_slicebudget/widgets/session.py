"""An annotation session: one image and its working labels layer, their work, marks and autosave.

The session is the only object that listens to the labels layer. It turns napari's events into the
work's actions (a finished stroke, an undo pressed on the layer, a labels change it did not make),
journals every change to disk as it happens, and shows the plan as marks and a canvas overlay.
It is kept in the labels layer's metadata under a private key the writer ignores; widgets find it
through :mod:`napari_slicebudget.widgets.sessions`, by the layers' unique ids, never by identity.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_warning
from psygnal import Signal
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from slicebudget.volume import Volume

from napari_slicebudget.logic.autosave import CHECKPOINT_EVERY, Autosaver
from napari_slicebudget.logic.geometry import META_KEY, check_same_grid, layer_transform, volume_from_layer
from napari_slicebudget.logic.ledger import SliceLedger
from napari_slicebudget.logic.planning import marked_slices, outline_colors, overlay_text, slice_outlines
from napari_slicebudget.logic.work import Change, VolumeWork
from napari_slicebudget.widgets._common import Relay, layer_with_id, report, text_overlay

SESSION_KEY = "_slicebudget_session"
UNDO_KEYS = {"Control-Z": "undo", "Control-Shift-Z": "redo"}
POINTER_ACTIVITY_SECONDS = 1.0  # pointer moves count as activity at most this often


def layer_volume(layer) -> Volume:
    return volume_from_layer(layer.data, layer.metadata, layer.scale, layer.translate,
                             layer.affine.affine_matrix, name=layer.name)


def painted_slices(history_item) -> set[int]:
    """Slice indices (axis 0) touched by one napari Labels history item."""
    out: set[int] = set()
    for atom in history_item or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            out.update(range(first.start or 0, first.stop) if isinstance(first, slice) else [int(first)])
        else:
            out.update(int(i) for i in np.unique(np.asarray(atom[0][0])))
    return out


class LayerStore:
    """The working labels layer as the work's label store: writes and undo use napari's own history."""

    def __init__(self, layer):
        self.layer = layer
        self.busy = 0  # > 0 while the plugin itself changes the layer

    @property
    def data(self) -> np.ndarray:
        return self.layer.data

    @contextmanager
    def _own(self):
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1

    def write(self, indices, values) -> None:
        with self._own():
            self.layer.data_setitem(indices, values)

    def undo(self) -> None:
        with self._own():
            self.layer.undo()

    def redo(self) -> None:
        with self._own():
            self.layer.redo()


class AnnotationSession:
    changed = Signal()

    def __init__(self, viewer, image_layer, labels_layer, ledger: SliceLedger | None = None,
                 autosave_folder: Path | None = None, seq: int = 0, clock=time.time):
        self.viewer, self.image_layer, self.labels_layer = viewer, image_layer, labels_layer
        self.image = layer_volume(image_layer)
        check_same_grid(self.image, layer_volume(labels_layer), image_layer.name, labels_layer.name)
        self.key = (image_layer.unique_id, labels_layer.unique_id)
        self.store = LayerStore(labels_layer)
        self.work = VolumeWork(self.store, ledger or SliceLedger(self.image.shape[0]), clock=clock)
        self.autosave_folder = autosave_folder
        self.closed = False
        self.last_message = ""
        self._marks_id = None
        self._marked: list[int] = []  # the slices the marks layer frames, in its shapes' order
        self._pending: list[set[int]] = []
        self._last_pointer = 0.0
        self._errors = Relay()
        self._errors.fired.connect(lambda exc: report(exc, "Autosave failed"))
        self.autosaver = None if autosave_folder is None else Autosaver(autosave_folder, self.image, seq,
                                                                        on_error=self._errors)
        self._last_view = self._view()
        self._paint_timer = self._timer(0, self.read_strokes)
        self._reconcile_timer = self._timer(50, self._reconcile)
        self._connect()
        labels_layer.metadata[SESSION_KEY] = self
        self.work.activity()
        self.checkpoint()
        self._refresh_marks()

    @staticmethod
    def _timer(ms: int, slot) -> QTimer:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    def _connect(self) -> None:
        layer, viewer = self.labels_layer, self.viewer
        self._connections = [
            (layer.events.paint, self._on_paint), (layer.events.set_data, self._on_set_data),
            (layer.events.labels_update, self._on_labels_update), (layer.events.data, self._on_data),
            (viewer.dims.events.current_step, self._on_step), (viewer.layers.events.removed, self._on_removed),
        ]
        for emitter, slot in self._connections:
            emitter.connect(slot)
        viewer.mouse_move_callbacks.append(self._on_pointer)
        for key, action in UNDO_KEYS.items():
            # instance bindings take precedence over the Labels class bindings of the same keys
            layer.bind_key(key, lambda _layer, act=action: getattr(self, act)(), overwrite=True)
        QApplication.instance().aboutToQuit.connect(self.close)

    @property
    def ledger(self) -> SliceLedger:
        return self.work.ledger

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

    # ---- actions (every change goes through apply) ----------------------------------------------
    def apply(self, change: Change) -> Change:
        """Show and journal what an action of the work did."""
        self.last_message = change.message
        if change.confirm:
            show_warning(change.message)
        else:
            self._journal(change)
        self._refresh_marks()
        self.changed.emit()
        return change

    def act(self, action: str, *args) -> Change:
        """Run one of the work's actions (strokes not yet read are taken in first)."""
        self.read_strokes()
        return self.apply(getattr(self.work, action)(*args))

    def undo(self) -> Change:
        return self.act("undo")

    def redo(self) -> Change:
        return self.act("redo")

    def _journal(self, change: Change) -> None:
        if self.autosaver is None:
            return
        slices = list(change.slices)
        self.autosaver.record(self.ledger, slices, np.array(self.labels_layer.data[slices], copy=True))
        if self.autosaver.records_since_checkpoint >= CHECKPOINT_EVERY:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Have the autosave thread write labels and ledger in full (see ``Autosaver.checkpoint``)."""
        if self.autosaver is not None:
            self.autosaver.checkpoint(np.asarray(self.labels_layer.data), self.ledger)

    def flush(self) -> None:
        """Everything on disk now (strokes not yet read included)."""
        self.read_strokes()
        self.checkpoint()
        if self.autosaver is not None:
            self.autosaver.drain()

    # ---- napari events -------------------------------------------------------------------------
    def _on_paint(self, event) -> None:
        # napari may emit ``paint`` before the new values reach the array: note the slices now, read
        # them once control returns to the event loop (or before the next action, whichever is first)
        if not self.store.busy:
            self._pending.append(painted_slices(event.value))  # one napari history item, one step
            self._paint_timer.start()

    def read_strokes(self) -> None:
        """Take in strokes napari reported but the session has not read yet."""
        self._paint_timer.stop()
        strokes, self._pending = self._pending, []
        for slices in strokes:
            self.apply(self.work.stroke_done(slices))

    def _view(self) -> tuple:
        dims = self.viewer.dims
        return tuple(dims.point), tuple(dims.order), dims.ndisplay

    def _on_set_data(self, event=None) -> None:
        # an undo or redo made outside the plugin refreshes the layer with no other event; painting
        # refreshes it too, but always with ``labels_update`` right after, which cancels the check;
        # moving to another slice or view refreshes it as well, and changes the view
        view = self._view()
        if not self.store.busy and view == self._last_view:
            self._reconcile_timer.start()
        self._last_view = view

    def _on_labels_update(self, event=None) -> None:
        if not self.store.busy:
            self._reconcile_timer.stop()

    def _on_data(self, event=None) -> None:
        if self.store.busy:
            return
        if np.shape(self.labels_layer.data) != self.image.shape:
            report(ValueError(f"labels layer {self.labels_layer.name!r} no longer fits its image"), "Session closed")
            self.close()
            return
        self._reconcile()

    def _reconcile(self) -> None:
        self.read_strokes()
        change = self.work.reconcile()
        if change.slices:
            show_warning(change.message)
            self.apply(change)
        # the change may also touch slices nobody had annotated, which no record would carry
        self.checkpoint()

    def _on_step(self, event=None) -> None:
        self.work.arrived()
        self._update_overlay()

    def _on_pointer(self, viewer, event) -> None:
        now = time.monotonic()
        if now - self._last_pointer >= POINTER_ACTIVITY_SECONDS:
            self._last_pointer = now
            self.work.activity()

    def _on_removed(self, event) -> None:
        ids = {layer.unique_id for layer in self.viewer.layers}
        if not set(self.key) <= ids:
            self.close()

    def close(self) -> None:
        """Save everything and let go of the layers (layer removed, viewer closed, app quitting)."""
        if self.closed:
            return
        self.closed = True
        self.work.pause()
        try:
            self.flush()
        finally:
            for emitter, slot in self._connections:
                emitter.disconnect(slot)
            if self._on_pointer in self.viewer.mouse_move_callbacks:
                self.viewer.mouse_move_callbacks.remove(self._on_pointer)
            self.labels_layer.metadata.pop(SESSION_KEY, None)
            QApplication.instance().aboutToQuit.disconnect(self.close)

    # ---- what the annotator sees ---------------------------------------------------------------
    def marks_layer(self):
        return layer_with_id(self.viewer, self._marks_id)

    def _refresh_marks(self) -> None:
        if self.closed:
            return
        wanted, marks = marked_slices(self.ledger), self.marks_layer()
        edge = max(1.0, self.image.shape[1] / 96)
        if marks is None and not wanted:
            self._update_overlay()
            return
        if marks is None or len(marks.data) != len(self._marked):  # new, or edited by hand: rebuild
            if marks is not None:
                self.viewer.layers.remove(marks)
            self._marked = list(wanted)
            marks = self.viewer.add_shapes(
                slice_outlines(wanted, self.image.shape), shape_type="rectangle", face_color="transparent",
                edge_width=edge, name=f"{self.image_layer.name} slice marks", **layer_transform(self.image),
                metadata={META_KEY: {"role": "marks"}})
            self._marks_id = marks.unique_id
            self.viewer.layers.selection.active = self.labels_layer
        # change only the frames that come and go: setting all of a Shapes layer's data costs ~0.1 s
        gone = [i for i, s in enumerate(self._marked) if s not in wanted]
        if gone:
            marks.selected_data = set(gone)
            marks.remove_selected()
            self._marked = [s for s in self._marked if s in wanted]
        new = [s for s in wanted if s not in self._marked]
        if new:
            marks.add_rectangles(slice_outlines(new, self.image.shape), edge_width=edge)
            self._marked += new
        if self._marked:
            marks.edge_color = outline_colors(self.ledger, self._marked)
        self._update_overlay()

    def _update_overlay(self, event=None) -> None:
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.font_size = 10
        overlay.position = "top_left"
        overlay.color = "white"
        overlay.text = overlay_text(self.ledger, self.current_slice())
