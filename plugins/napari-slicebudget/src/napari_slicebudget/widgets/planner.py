"""The "Slice planner" dock widget: suggest slices, show every slice's state, move between them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QWidget,
)

from slicebudget.errors import UserError

from napari_slicebudget.logic.autosave import has_session
from napari_slicebudget.logic.ledger import Plan
from napari_slicebudget.logic.propagation import suggest_adaptive
from napari_slicebudget.logic.planning import (
    ADAPTIVE,
    POLICY_NAMES,
    STATUS_COLORS,
    resolve_slice_count,
    slice_list_rows,
    suggest_slices,
    warm_up,
)
from napari_slicebudget.widgets._common import LayerCombo, guarded, run_in_thread, stacked, status_label
from napari_slicebudget.widgets.session import AnnotationSession
from napari_slicebudget.widgets.sessions import (
    adopt_restored,
    default_folder,
    find_session,
    keep_superior_up,
    session_of,
    start_session,
)

SHORTCUTS = {"next": "Alt-N", "previous": "Alt-P", "todo": "Alt-U", "empty": "Alt-E"}
DENSITY, COUNT = "density", "slice count"


class SlicePlannerWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.image_combo = LayerCombo(napari_viewer, Image)
        self.labels_combo = LayerCombo(napari_viewer, Labels, allow_new=True, prefer=session_of)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("beside the image file (none for in-memory images)")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.policy_combo = QComboBox()
        self.policy_combo.addItems(POLICY_NAMES)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([DENSITY, COUNT])
        self.density_spin = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=0.1, decimals=2)
        self.count_spin = QSpinBox(minimum=1, maximum=100000, value=5)
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.suggest_button = QPushButton("Suggest slices")
        self.suggest_button.clicked.connect(self.suggest)
        self.progress_label = status_label()
        self.message_label = status_label()
        self.slice_list = QListWidget()
        self.slice_list.itemActivated.connect(self._jump_to_item)
        self.slice_list.itemDoubleClicked.connect(self._jump_to_item)
        self._shown_plan = None
        self._watched: set = set()

        buttons = {
            f"Previous ({SHORTCUTS['previous']})": self.previous_slice,
            f"Next ({SHORTCUTS['next']})": self.next_slice,
            f"Next to annotate ({SHORTCUTS['todo']})": self.next_todo,
            f"Mark slice empty ({SHORTCUTS['empty']})": self.mark_empty,
            "Undo (Ctrl+Z)": self.undo,
            "Redo (Ctrl+Shift+Z)": self.redo,
        }
        rows = [QHBoxLayout(), QHBoxLayout()]
        self.nav_buttons = {}
        for i, (text, handler) in enumerate(buttons.items()):
            button = QPushButton(text)
            button.clicked.connect(handler)
            rows[i // 4].addWidget(button)
            self.nav_buttons[text.split(" (")[0]] = button

        stacked(self, {"image": self.image_combo, "working labels": self.labels_combo,
                       "autosave folder": (self.folder_edit, browse), "policy": self.policy_combo,
                       "amount": self.mode_combo, DENSITY: self.density_spin, COUNT: self.count_spin,
                       "seed": self.seed_spin},
                self.suggest_button, self.progress_label, self.message_label, self.slice_list, *rows)

        self.image_combo.currentTextChanged.connect(self._image_changed)
        self.labels_combo.currentTextChanged.connect(lambda *_: self._show(self.session()))
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        self._bind_keys()
        keep_superior_up(napari_viewer)
        adopt_restored(napari_viewer)
        self._image_changed()
        run_in_thread(self, warm_up, on_done=lambda _: None, what="Slice planner start-up")

    # ---- the session ---------------------------------------------------------------------------
    def session(self) -> AnnotationSession | None:
        """The session of the chosen image: with the chosen working labels if they are its own."""
        image, session = self.image_combo.layer(), find_session(self.viewer, labels=self.labels_combo.layer())
        if session is not None and (image is None or session.key[0] == image.unique_id):
            return session
        return None if image is None else find_session(self.viewer, image=image)

    def _autosave_folder(self, image_layer) -> Path | None:
        text = self.folder_edit.text().strip()
        return Path(text) if text else default_folder(image_layer)

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder")
        if folder:
            self.folder_edit.setText(folder)

    def _layers_changed(self, *_):
        adopt_restored(self.viewer)
        self._show(self.session())

    def _image_changed(self, *_):
        session, image_layer = self.session(), self.image_combo.layer()
        folder = None if session is not None or image_layer is None else self._autosave_folder(image_layer)
        if folder is not None and has_session(folder):
            self.message_label.setText("A saved session waits for this image: press Suggest slices to resume it "
                                       "(or open the image file again).")
        self._show(session)

    def start_session(self) -> AnnotationSession:
        image_layer = self.image_combo.layer()
        session = start_session(self.viewer, image_layer, self.labels_combo.layer(),
                                self._autosave_folder(image_layer) if image_layer is not None else None)
        return self._attach(session)

    def _attach(self, session: AnnotationSession) -> AnnotationSession:
        if session.key not in self._watched:
            self._watched.add(session.key)
            session.changed.connect(lambda: self._show(self.session()))
        self.labels_combo.select(session.labels_layer)
        self.viewer.layers.selection.active = session.labels_layer
        session.labels_layer.mode = "paint"
        self._show(session)
        return session

    # ---- planning ------------------------------------------------------------------------------
    @guarded("Cannot suggest slices")
    def suggest(self, *_):
        """Suggest slices into the (image, working labels) session: the same session and marks layer
        every time; slices already annotated keep their state."""
        session = self.start_session()
        depth = session.image.shape[0]
        if self.mode_combo.currentText() == DENSITY:
            n = resolve_slice_count(depth, density=self.density_spin.value())
        else:
            n = resolve_slice_count(depth, count=self.count_spin.value())
        policy, seed = self.policy_combo.currentText(), self.seed_spin.value()
        if policy == ADAPTIVE:
            return self._suggest_adaptive(session, seed)
        self.suggest_button.setEnabled(False)
        self.message_label.setText(f"{policy}: choosing {n} of {depth} slices...")

        def done(slices):
            plan = Plan(policy, seed, n, round(n / depth, 4), tuple(int(s) for s in slices), time.time())
            change = session.act("replan", plan)
            self.message_label.setText(change.message)
            session.go_to(session.ledger.next_unannotated(-1))

        return run_in_thread(self, suggest_slices, session.image.array, policy, n, seed, on_done=done,
                             what="Cannot suggest slices", on_finish=lambda: self.suggest_button.setEnabled(True))

    def _suggest_adaptive(self, session: AnnotationSession, seed: int):
        """Add the next best slice to the plan: propagate from what is annotated (in a worker thread)
        and suggest where the result is least certain."""
        labels = np.array(session.labels_layer.data, copy=True)
        depth = session.image.shape[0]
        self.suggest_button.setEnabled(False)
        self.message_label.setText("adaptive: propagating to find the least certain slice...")

        def done(slices):
            plan = Plan(ADAPTIVE, seed, len(slices), round(len(slices) / depth, 4), slices, time.time())
            change = session.act("replan", plan)
            self.message_label.setText(change.message)
            session.go_to(session.ledger.next_unannotated(-1))

        return run_in_thread(self, suggest_adaptive, session.image.array, labels, session.ledger, on_done=done,
                             what="Cannot suggest slices", on_finish=lambda: self.suggest_button.setEnabled(True))

    # ---- navigation and marking ----------------------------------------------------------------
    def _require(self, planned: bool = True) -> AnnotationSession:
        session = self.session()
        if session is None or (planned and not session.ledger.suggested):
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
        session = self._require(planned=False)
        change = session.act("mark_empty", session.current_slice())
        self.message_label.setText(change.message)

    @guarded("Cannot undo")
    def undo(self, *_):
        self.message_label.setText(self._require(planned=False).undo().message)

    @guarded("Cannot redo")
    def redo(self, *_):
        self.message_label.setText(self._require(planned=False).redo().message)

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
        ledger = session.ledger
        if ledger.plan is not None and ledger.plan != self._shown_plan:
            self._show_settings(ledger.plan)
        head = f"{ledger.plan.describe()}: " if ledger.plan is not None else ""
        self.progress_label.setText(head + ledger.progress_text())
        for index, status, text in slice_list_rows(ledger):
            item = QListWidgetItem(f"slice {index:4d}   {text}" + ("   (suggested)" if index in ledger.suggested
                                                                     and status != "to do" else ""))
            r, g, b, _ = STATUS_COLORS[status]
            item.setForeground(QColor.fromRgbF(r, g, b))
            item.setData(256, index)
            self.slice_list.addItem(item)

    def _show_settings(self, plan: Plan) -> None:
        """The controls show how the current plan was made (after a restore too)."""
        self._shown_plan = plan
        self.policy_combo.setCurrentText(plan.policy)
        self.seed_spin.setValue(plan.seed)
        self.count_spin.setValue(plan.n_slices)
        self.density_spin.setValue(plan.density)

    def _jump_to_item(self, item):
        session = self.session()
        if session is not None:
            session.go_to(int(item.data(256)))
