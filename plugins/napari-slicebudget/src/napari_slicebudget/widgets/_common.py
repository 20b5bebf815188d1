"""Small Qt helpers shared by the dock widgets: layer pickers, error reporting, background runs."""

from __future__ import annotations

from collections.abc import Callable

from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLayout, QVBoxLayout

from slicebudget.errors import UserError

NEW_LAYER = "(new labels layer)"


class LayerCombo(QComboBox):
    """A combo box listing the viewer's layers of one type, kept in sync with the layer list."""

    def __init__(self, viewer, layer_type: type, allow_new: bool = False, prefer: Callable | None = None,
                 parent=None):
        super().__init__(parent)
        self.viewer, self.layer_type, self.allow_new, self.prefer = viewer, layer_type, allow_new, prefer
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved,
                      viewer.layers.selection.events.active):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_):
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, self.layer_type)]
        if self.allow_new:
            # first, so a reference or ground-truth labels layer is never painted on by default
            names.insert(0, NEW_LAYER)
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        if self.prefer is not None and not self._preferred(self.layer()):
            # e.g. the working layer of a running session rather than a reference labels layer
            first = next((layer for layer in self.viewer.layers if self._preferred(layer)), None)
            if first is not None:
                self.setCurrentText(first.name)
        self.blockSignals(False)
        if self.currentText() != current:
            self.currentTextChanged.emit(self.currentText())

    def _preferred(self, layer) -> bool:
        return layer is not None and isinstance(layer, self.layer_type) and bool(self.prefer(layer))

    def layer(self):
        """The chosen layer, or None (nothing chosen, or "new layer")."""
        name = self.currentText()
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], self.layer_type):
            return self.viewer.layers[name]
        return None

    def select(self, layer) -> None:
        self.refresh()
        self.setCurrentText(layer.name)


def layer_with_id(viewer, unique_id):
    """The viewer's layer with ``unique_id``, or None (layers are proxies: never compare with ``is``)."""
    return next((layer for layer in viewer.layers if layer.unique_id == unique_id), None)


def report(exc: BaseException, what: str) -> None:
    """A notification that says what went wrong, in one line."""
    message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    show_error(f"{what}: {message}")


def guarded(what: str):
    """Decorator for button handlers: a UserError becomes a notification instead of a traceback."""
    def wrap(fn: Callable):
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                report(exc, what)
                return None
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run
    return wrap


class _Failure:
    def __init__(self, error: UserError):
        self.error = error


def text_overlay(viewer):
    """The canvas text overlay (``viewer.text_overlay`` is deprecated from napari 0.9)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays["text"] if overlays is not None and "text" in overlays else viewer.text_overlay


class ProgressRelay(QObject):
    """Carries ``progress(done, total)`` calls from a worker thread to the GUI thread (queued)."""

    progressed = Signal(int, int)

    def __call__(self, done: int, total: int) -> None:
        self.progressed.emit(int(done), int(total))


class Relay(QObject):
    """Carries one value from any thread to the GUI thread (queued): ``relay(value)``."""

    fired = Signal(object)

    def __call__(self, value) -> None:
        self.fired.emit(value)


def run_in_thread(owner, fn: Callable, *args, on_done: Callable, what: str, on_finish: Callable | None = None,
                  on_error: Callable | None = None):
    """Run ``fn(*args)`` in napari's thread pool; ``on_done(result)`` back in the GUI thread, or
    ``on_error(exception)`` after the error was reported.

    ``owner`` keeps a reference to the worker while it runs (a collected worker would never report).
    """
    def shielded(*a):
        # A UserError is the user's input, not a crash: bring it back as a value so it becomes one
        # notification, not a traceback from the thread.
        try:
            return fn(*a)
        except UserError as exc:
            return _Failure(exc)

    def failed(exc: BaseException):
        report(exc, what)
        if on_error is not None:
            on_error(exc)

    def returned(result):
        if isinstance(result, _Failure):
            failed(result.error)
        else:
            on_done(result)

    worker = create_worker(shielded, *args, _start_thread=False)
    workers = owner.__dict__.setdefault("_slicebudget_workers", set())
    workers.add(worker)
    worker.returned.connect(returned)
    worker.errored.connect(failed)
    worker.finished.connect(lambda: workers.discard(worker))
    if on_finish is not None:
        worker.finished.connect(on_finish)
    worker.start()
    return worker


def stacked(owner, *items) -> QVBoxLayout:
    """Lay ``owner`` out top to bottom, one item under the other. An item is a widget, a layout, a
    tuple of widgets (one row, side by side) or a dict of labelled form rows, each row any of those."""
    layout = QVBoxLayout(owner)
    for item in items:
        part = _part(item)
        if isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    return layout


def _part(item):
    if isinstance(item, dict):
        form = QFormLayout()
        for label, field in item.items():
            form.addRow(label, _part(field))
        return form
    if isinstance(item, tuple):
        row = QHBoxLayout()
        for widget in item:
            row.addWidget(widget)
        return row
    return item


def status_label() -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    return label


__all__ = ["NEW_LAYER", "Image", "LayerCombo", "Labels", "ProgressRelay", "Relay", "guarded", "layer_with_id",
           "report", "run_in_thread", "stacked", "status_label"]
