"""The "Propagate masks" dock widget: run a method in the background, then review its slices."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from slicebudget.errors import UserError

from napari_slicebudget.logic.geometry import layer_kwargs
from napari_slicebudget.logic.propagation import (
    METHODS,
    clear_edits,
    copy_edits,
    drop_protected,
    run_propagation,
    separate_layer_data,
    target_slices,
    working_layer_edits,
)
from napari_slicebudget.widgets._common import LayerCombo, ProgressRelay, guarded, run_in_thread, status_label
from napari_slicebudget.widgets.session import AnnotationSession, session_of

INTO_WORKING, INTO_SEPARATE = "working labels (undo with Ctrl+Z)", "separate 'propagated' layer"


class PropagateWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.labels_combo = LayerCombo(napari_viewer, Labels, prefer=session_of)
        self.method_combo = QComboBox()
        self.method_combo.addItems(METHODS)
        self.target_combo = QComboBox()
        self.target_combo.addItems([INTO_WORKING, INTO_SEPARATE])
        self.run_button = QPushButton("Propagate")
        self.run_button.clicked.connect(self.propagate)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.status = status_label()
        self.review_list = QListWidget()
        self.review_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.review_list.itemDoubleClicked.connect(self._jump)
        self.relay = ProgressRelay()
        self.relay.progressed.connect(self._progress)
        self.separate_layer = None
        self.confidence = None
        self._pending_separate: list[int] = []

        review = QHBoxLayout()
        for text, handler in (("Accept selected", lambda: self.review(True, selected=True)),
                              ("Reject selected", lambda: self.review(False, selected=True)),
                              ("Accept all", lambda: self.review(True)), ("Reject all", lambda: self.review(False))):
            button = QPushButton(text)
            button.clicked.connect(handler)
            review.addWidget(button)
        form = QFormLayout()
        form.addRow("working labels", self.labels_combo)
        form.addRow("method", self.method_combo)
        form.addRow("write into", self.target_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.review_list)
        layout.addLayout(review)

    def session(self) -> AnnotationSession:
        session = session_of(self.labels_combo.layer())
        if session is None:
            session = next((session_of(layer) for layer in self.viewer.layers if session_of(layer) is not None), None)
        if session is None:
            raise UserError("start a session in the Slice planner first (it tracks which slices are annotated)")
        return session

    def _progress(self, done: int, total: int):
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    @guarded("Cannot propagate")
    def propagate(self, *_):
        session = self.session()
        method, into_working = self.method_combo.currentText(), self.target_combo.currentText() == INTO_WORKING
        image, labels, ledger = session.image.array, np.array(session.labels_layer.data, copy=True), session.ledger
        if not ledger.human_annotated.any():
            raise UserError("annotate at least one slice (paint it, or mark it empty) before propagating")

        def work():
            result = run_propagation(image, labels, ledger, method, progress=self.relay)
            if into_working:
                return result, working_layer_edits(labels, result, ledger)
            return result, separate_layer_data(result, ledger, dtype=labels.dtype)

        self.run_button.setEnabled(False)
        self.status.setText(f"{method}: propagating from {int(ledger.human_annotated.sum())} annotated slices...")
        return run_in_thread(self, work, on_done=lambda out: self._apply(session, out, into_working),
                             what="Propagation failed", on_finish=lambda: self.run_button.setEnabled(True))

    def _apply(self, session: AnnotationSession, out, into_working: bool):
        result, payload = out
        self.confidence = result.confidence
        if into_working:
            edits = drop_protected(payload, session.ledger)  # the annotator may have painted meanwhile
            session.apply_edits(edits)
            # flag first, then refresh: machine-made slices must never be logged as annotated by a person
            ledger = session.ledger.with_propagated(edits.slices).with_labels(session.labels_layer.data)
            session.set_ledger(ledger)
            written = edits.slices
        else:
            written = target_slices(result, session.ledger)
            self._show_separate(session, payload)
            self._pending_separate = [int(s) for s in written]
        self.status.setText(f"Propagated into {len(written)} slices; review them below "
                            "(human-annotated slices were left as they were).")
        self._refresh_list(session)

    def _show_separate(self, session: AnnotationSession, data: np.ndarray):
        name = f"{session.labels_layer.name} propagated"
        if self.separate_layer is not None and self.separate_layer in self.viewer.layers:
            self.separate_layer.data = data
        else:
            self.separate_layer = self.viewer.add_labels(data, opacity=0.5,
                                                         **layer_kwargs(session.image, name, "propagated"))
        self.viewer.layers.selection.active = session.labels_layer

    def pending(self, session: AnnotationSession) -> list[int]:
        if self._pending_separate:
            return list(self._pending_separate)
        return [int(s) for s in session.ledger.pending_review]

    def _refresh_list(self, session: AnnotationSession):
        self.review_list.clear()
        for s in self.pending(session):
            conf = "" if self.confidence is None else f"  confidence {self.confidence[s]:.2f}"
            item = QListWidgetItem(f"slice {s:4d}{conf}")
            item.setData(256, s)
            self.review_list.addItem(item)

    @guarded("Cannot review propagated slices")
    def review(self, accept: bool, selected: bool = False, slices=None):
        """Accept or reject propagated slices (the selected ones, the given ones, or all)."""
        session = self.session()
        pending = self.pending(session)
        if slices is None:
            slices = [int(i.data(256)) for i in self.review_list.selectedItems()] if selected else pending
        slices = [s for s in slices if s in pending]
        if not slices:
            raise UserError("no propagated slice to review" + (" is selected" if selected else ""))
        if self._pending_separate:
            if accept:
                session.apply_edits(copy_edits(session.labels_layer.data, self.separate_layer.data, slices))
                ledger = session.ledger.with_propagated(slices).with_labels(session.labels_layer.data)
                session.set_ledger(ledger.with_reviewed(slices, accept=True))
            data = np.array(self.separate_layer.data, copy=True)
            data[slices] = 0
            self.separate_layer.data = data
            self._pending_separate = [s for s in self._pending_separate if s not in slices]
        else:
            if not accept:
                session.apply_edits(clear_edits(session.labels_layer.data, slices))
            ledger = session.ledger.with_labels(session.labels_layer.data).with_reviewed(slices, accept=accept)
            session.set_ledger(ledger)
        show_info(f"{'Accepted' if accept else 'Rejected'} {len(slices)} propagated slices")
        self._refresh_list(session)

    def _jump(self, item):
        self.session().go_to(int(item.data(256)))
