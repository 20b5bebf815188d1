"""The "Slice planner" dock widget: suggest slices, show their status, move between them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from slicebudget.errors import UserError

from napari_slicebudget.logic.autosave import has_session, load_session, session_folder
from napari_slicebudget.logic.geometry import META_KEY, layer_kwargs
from napari_slicebudget.logic.ledger import SliceLedger
from napari_slicebudget.logic.planning import (
    POLICY_NAMES,
    STATUS_COLORS,
    resolve_slice_count,
    slice_list_rows,
    suggest_slices,
    warm_up,
)
from napari_slicebudget.widgets._common import LayerCombo, guarded, run_in_thread, status_label
from napari_slicebudget.widgets.session import AnnotationSession, layer_volume, session_of

SHORTCUTS = {"next": "Alt-N", "previous": "Alt-P", "todo": "Alt-U", "empty": "Alt-E"}


def default_autosave_folder(image_layer) -> Path | None:
    source = ((image_layer.metadata or {}).get(META_KEY) or {}).get("source") or image_layer.source.path
    return session_folder(source) if source else None


class SlicePlannerWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.image_combo = LayerCombo(napari_viewer, Image)
        self.labels_combo = LayerCombo(napari_viewer, Labels, allow_new=True)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("beside the image file (none for in-memory images)")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.policy_combo = QComboBox()
        self.policy_combo.addItems(POLICY_NAMES)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["density", "slice count"])
        self.density_spin = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=0.1, decimals=2)
        self.count_spin = QSpinBox(minimum=1, maximum=100000, value=5)
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.suggest_button = QPushButton("Suggest slices")
        self.suggest_button.clicked.connect(self.suggest)
        self.progress_label = status_label()
        self.slice_list = QListWidget()
        self.slice_list.itemActivated.connect(self._jump_to_item)
        self.slice_list.itemDoubleClicked.connect(self._jump_to_item)

        buttons = {
            f"Previous ({SHORTCUTS['previous']})": self.previous_slice,
            f"Next ({SHORTCUTS['next']})": self.next_slice,
            f"Next to annotate ({SHORTCUTS['todo']})": self.next_todo,
            f"Mark slice empty ({SHORTCUTS['empty']})": self.mark_empty,
        }
        nav = QHBoxLayout()
        self.nav_buttons = {}
        for text, handler in buttons.items():
            button = QPushButton(text)
            button.clicked.connect(handler)
            nav.addWidget(button)
            self.nav_buttons[text.split(" (")[0]] = button

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("working labels", self.labels_combo)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(browse)
        form.addRow("autosave folder", folder_row)
        form.addRow("policy", self.policy_combo)
        form.addRow("amount", self.mode_combo)
        form.addRow("density", self.density_spin)
        form.addRow("slice count", self.count_spin)
        form.addRow("seed", self.seed_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.slice_list)
        layout.addLayout(nav)

        self.image_combo.currentTextChanged.connect(self._image_changed)
        self._bind_keys()
        self._image_changed()
        run_in_thread(self, warm_up, on_done=lambda _: None, what="Slice planner start-up")

    # ---- the session ---------------------------------------------------------------------------
    def session(self) -> AnnotationSession | None:
        session = session_of(self.labels_combo.layer())
        if session is None:
            image = self.image_combo.layer()
            session = next((session_of(layer) for layer in self.viewer.layers if isinstance(layer, Labels)
                            and session_of(layer) is not None and session_of(layer).image_layer is image), None)
        return session

    def _autosave_folder(self, image_layer) -> Path | None:
        text = self.folder_edit.text().strip()
        return Path(text) if text else default_autosave_folder(image_layer)

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder")
        if folder:
            self.folder_edit.setText(folder)

    def _image_changed(self, *_):
        image_layer = self.image_combo.layer()
        if image_layer is None or self.session() is not None:
            self._show(self.session())
            return
        folder = self._autosave_folder(image_layer)
        if folder is not None and has_session(folder):
            self.restore(image_layer, folder)

    @guarded("Cannot restore the saved session")
    def restore(self, image_layer, folder: Path) -> AnnotationSession:
        """Reopen a saved session: its labels as the working layer, its slice statuses."""
        image = layer_volume(image_layer)
        labels, ledger = load_session(folder, image)
        labels_layer = self.viewer.add_labels(labels, **layer_kwargs(image, f"{image_layer.name} annotation", "labels"))
        session = self._attach(AnnotationSession(self.viewer, image_layer, labels_layer, ledger, folder))
        show_info(f"Restored {ledger.progress_text()} from {folder}")
        return session

    def _working_layer(self, image_layer) -> Labels:
        labels_layer = self.labels_combo.layer()
        if labels_layer is not None:
            return labels_layer
        image = layer_volume(image_layer)
        data = np.zeros(image.shape, dtype=np.uint8)
        labels_layer = self.viewer.add_labels(data, **layer_kwargs(image, f"{image_layer.name} annotation", "labels"))
        return labels_layer

    def start_session(self) -> AnnotationSession:
        image_layer = self.image_combo.layer()
        if image_layer is None:
            raise UserError("open an image first (File > Open, or File > Open Sample > slicebudget)")
        if image_layer.ndim != 3:
            raise UserError(f"image layer {image_layer.name!r} is {image_layer.ndim}D; the slice planner needs a 3D volume")
        existing = self.session()
        if existing is not None and existing.image_layer is image_layer:
            return existing
        layer_volume(image_layer)  # refuse odd data before adding any layer
        labels_layer = self._working_layer(image_layer)
        try:
            session = AnnotationSession(self.viewer, image_layer, labels_layer,
                                        autosave_folder=self._autosave_folder(image_layer))
        except UserError:
            if self.labels_combo.layer() is None:  # the layer we just added: take it back
                self.viewer.layers.remove(labels_layer)
            raise
        if session.autosave_folder is None:
            show_info("No autosave folder: this image has no file; choose one to keep your work")
        return self._attach(session)

    def _attach(self, session: AnnotationSession) -> AnnotationSession:
        session.changed.connect(lambda: self._show(session))
        self.labels_combo.select(session.labels_layer)
        self.viewer.layers.selection.active = session.labels_layer
        session.labels_layer.mode = "paint"
        self._show(session)
        return session

    # ---- planning ------------------------------------------------------------------------------
    @guarded("Cannot suggest slices")
    def suggest(self, *_):
        session = self.start_session()
        depth = session.image.shape[0]
        if self.mode_combo.currentText() == "density":
            n = resolve_slice_count(depth, density=self.density_spin.value())
        else:
            n = resolve_slice_count(depth, count=self.count_spin.value())
        policy, seed = self.policy_combo.currentText(), self.seed_spin.value()
        self.suggest_button.setEnabled(False)
        self.progress_label.setText(f"{policy}: choosing {n} of {depth} slices...")

        def done(slices):
            plan = {"policy": policy, "seed": seed, "n_slices": n, "density": round(n / depth, 4)}
            session.set_ledger(session.ledger.with_plan(slices.tolist(), **plan))
            session.go_to(session.ledger.next_unannotated(-1))

        return run_in_thread(self, suggest_slices, session.image.array, policy, n, seed, on_done=done,
                             what="Cannot suggest slices", on_finish=lambda: self.suggest_button.setEnabled(True))

    # ---- navigation ----------------------------------------------------------------------------
    def _require(self) -> AnnotationSession:
        session = self.session()
        if session is None or not session.ledger.suggested:
            raise UserError("suggest slices first")
        return session

    @guarded("Slice planner")
    def next_slice(self, *_):
        session = self._require()
        session.go_to(session.ledger.next_suggested(session.current_slice(), +1))

    @guarded("Slice planner")
    def previous_slice(self, *_):
        session = self._require()
        session.go_to(session.ledger.next_suggested(session.current_slice(), -1))

    @guarded("Slice planner")
    def next_todo(self, *_):
        session = self._require()
        target = session.ledger.next_unannotated(session.current_slice())
        if target is None:
            show_info("Every suggested slice is annotated")
        session.go_to(target)

    @guarded("Cannot mark the slice empty")
    def mark_empty(self, *_):
        session = self.session()
        if session is None:
            raise UserError("start a session first (Suggest slices)")
        session.set_ledger(session.ledger.with_empty(session.current_slice()))

    def _bind_keys(self):
        actions = {"next": self.next_slice, "previous": self.previous_slice, "todo": self.next_todo,
                   "empty": self.mark_empty}
        for name, action in actions.items():
            self.viewer.bind_key(SHORTCUTS[name], lambda viewer, act=action: act(), overwrite=True)

    # ---- display -------------------------------------------------------------------------------
    def _show(self, session: AnnotationSession | None):
        self.slice_list.clear()
        if session is None:
            self.progress_label.setText("No plan yet: choose an image and press Suggest slices.")
            return
        ledger: SliceLedger = session.ledger
        plan = ledger.plan
        head = f"{plan.get('policy', '?')} policy, seed {plan.get('seed', '?')}: " if plan else ""
        self.progress_label.setText(head + ledger.progress_text())
        for index, status in slice_list_rows(ledger):
            item = QListWidgetItem(f"slice {index:4d}   {status}")
            r, g, b, _ = STATUS_COLORS[status]
            item.setForeground(QColor.fromRgbF(r, g, b))
            item.setData(256, index)
            self.slice_list.addItem(item)

    def _jump_to_item(self, item):
        session = self.session()
        if session is not None:
            session.go_to(int(item.data(256)))
