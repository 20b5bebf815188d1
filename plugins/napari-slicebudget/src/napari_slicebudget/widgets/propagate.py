"""The "Propagate masks" dock widget: run a method in the background, then review its proposals.

Proposals go into the working labels as machine-proposed slices (undoable with the rest), or into a
separate preview layer that changes nothing until the annotator accepts slices from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QWidget,
)

from slicebudget.errors import UserError
from slicebudget.propagation.sli2vol.train import ADAPTATION

from napari_slicebudget.logic.geometry import layer_kwargs
from napari_slicebudget.logic.planning import describe_slice
from napari_slicebudget.logic.propagation import (
    METHODS,
    REVIEW_ORDERS,
    adapt_to_images,
    proposal,
    review_order,
    run_propagation,
)
from napari_slicebudget.widgets._common import (
    LayerCombo,
    ProgressRelay,
    guarded,
    layer_with_id,
    run_in_thread,
    stacked,
    status_label,
)
from napari_slicebudget.widgets.session import AnnotationSession
from napari_slicebudget.widgets.sessions import require_session, session_of

INTO_WORKING, INTO_SEPARATE = "working labels (undo with Ctrl+Z)", "separate preview layer"


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
        self.adapt_button = QPushButton("Adapt to these images")
        self.adapt_button.setToolTip("Fine-tune sli2vol on the open 3D images (no labels used); "
                                     "propagation uses the adapted model from then on.")
        self.adapt_button.clicked.connect(self.adapt)
        self.model_path = None  # the adapted sli2vol model, once adapted
        self.adaptation = ADAPTATION  # training settings of "Adapt to these images"
        self._adapt_dir = None
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status = status_label()
        self.order_combo = QComboBox()
        self.order_combo.addItems(REVIEW_ORDERS)
        self.order_combo.currentTextChanged.connect(lambda *_: self._refresh_if_session())
        self.review_list = QListWidget()
        self.review_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.review_list.itemDoubleClicked.connect(self._jump)
        self.relay = ProgressRelay()
        self.relay.progressed.connect(self._progress)
        self.preview_id = None
        self.preview: dict = {}  # slice -> MachineLabel, for slices shown in the preview layer
        self._watched: set = set()

        review = QHBoxLayout()
        for text, handler in (("Accept selected", lambda: self.review(True, selected=True)),
                              ("Reject selected", lambda: self.review(False, selected=True)),
                              ("Accept all", lambda: self.review(True)), ("Reject all", lambda: self.review(False))):
            button = QPushButton(text)
            button.clicked.connect(handler)
            review.addWidget(button)
        stacked(self, {"working labels": self.labels_combo, "method": self.method_combo, "write into": self.target_combo},
                self.run_button, self.adapt_button, self.progress_bar, self.status,
                {"review": self.order_combo}, self.review_list, review)
        # the review list shows the chosen session's pending proposals from the start, e.g. those
        # restored from yesterday's autosave, not only after this widget propagates
        self.labels_combo.currentTextChanged.connect(lambda *_: self._refresh_if_session())
        self._refresh_if_session()

    def session(self) -> AnnotationSession:
        return self._watch(require_session(self.viewer, self.labels_combo.layer()))

    def _watch(self, session: AnnotationSession) -> AnnotationSession:
        if session.key not in self._watched:  # the review list follows undo, redo and strokes
            self._watched.add(session.key)
            session.changed.connect(lambda: self._refresh_list(session))
        return session

    def _progress(self, done: int, total: int):
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    @guarded("Cannot propagate")
    def propagate(self, *_):
        session = self.session()
        method, into_working = self.method_combo.currentText(), self.target_combo.currentText() == INTO_WORKING
        image, labels, ledger = session.image.array, np.array(session.labels_layer.data, copy=True), session.ledger
        if not ledger.human.any():
            raise UserError("annotate at least one slice (paint it, or mark it empty) before propagating")
        self.run_button.setEnabled(False)
        self.progress_bar.setRange(0, 0)  # busy until the method reports its first step
        self.status.setText(f"{method}: propagating from {int(ledger.annotated(True).sum())} slices...")

        def finished():
            self.run_button.setEnabled(True)
            if self.progress_bar.maximum() == 0:
                self._progress(0, 1)

        return run_in_thread(self, run_propagation, image, labels, ledger, method, self.relay, self.model_path,
                             on_done=lambda result: self._apply(session, result, method, into_working),
                             what="Propagation failed", on_finish=finished,
                             on_error=lambda _: self.status.setText("Propagation failed; nothing was written."))

    @guarded("Cannot adapt")
    def adapt(self, *_):
        """Fine-tune the shipped sli2vol model on every open 3D image (a worker thread, with progress)."""
        import tempfile

        from napari.layers import Image

        volumes = [np.asarray(layer.data) for layer in self.viewer.layers
                   if isinstance(layer, Image) and np.ndim(layer.data) == 3 and not layer.rgb]
        if len(volumes) < 2:
            raise UserError(f"adaptation needs at least 2 open 3D images, {len(volumes)} open")
        if self._adapt_dir is None:
            self._adapt_dir = tempfile.TemporaryDirectory(prefix="slicebudget-adapted-")
        out = Path(self._adapt_dir.name) / f"sli2vol-adapted-{len(volumes)}.pt"
        self.adapt_button.setEnabled(False)
        self.progress_bar.setRange(0, 0)
        self.status.setText(f"adapting sli2vol to {len(volumes)} images...")

        def done(path):
            self.model_path = path
            self._progress(1, 1)
            self.status.setText(f"sli2vol adapted to {len(volumes)} images; propagation uses it from now on.")

        return run_in_thread(self, adapt_to_images, volumes, out, self.relay, self.adaptation, on_done=done, what="Adaptation failed",
                             on_finish=lambda: self.adapt_button.setEnabled(True),
                             on_error=lambda _: self.status.setText("Adaptation failed; the shipped model stays."))

    def _apply(self, session: AnnotationSession, result, method: str, into_working: bool):
        self._progress(1, 1)
        if into_working:
            self.status.setText(session.act("propose", result, method).message + "; review them below.")
            return
        plan = proposal(result, session.ledger, method)
        data = np.zeros(result.labels.shape, dtype=np.asarray(session.labels_layer.data).dtype)
        data[plan.slices] = result.labels[plan.slices]
        self._show_preview(session, data)
        self.preview = plan.details
        self.status.setText(f"{method}: {plan.slices.size} slices in the preview layer; accept the ones to keep.")
        self._refresh_list(session)

    def preview_layer(self):
        return layer_with_id(self.viewer, self.preview_id)

    def _show_preview(self, session: AnnotationSession, data: np.ndarray):
        layer = self.preview_layer()
        if layer is not None:
            layer.data = data
        else:
            layer = self.viewer.add_labels(
                data, opacity=0.5, **layer_kwargs(session.image, f"{session.labels_layer.name} preview", "preview"))
            self.preview_id = layer.unique_id
        self.viewer.layers.selection.active = session.labels_layer

    def pending(self, session: AnnotationSession) -> list[int]:
        return sorted(self.preview) if self.preview else session.ledger.pending_review.tolist()

    def _refresh_if_session(self):
        session = session_of(self.labels_combo.layer())
        if session is None:
            self.review_list.clear()
        else:
            self._refresh_list(self._watch(session))

    def _refresh_list(self, session: AnnotationSession):
        """The slices to review, in the chosen order (e.g. the fallback's interpolated slices first)."""
        self.review_list.clear()
        details = self.preview or session.ledger.machine
        for s in review_order(self.pending(session), details, self.order_combo.currentText()):
            if self.preview:
                text = f"preview, {self.preview[s].source}, confidence {self.preview[s].confidence:.2f}"
            else:
                text = describe_slice(session.ledger, s)
            item = QListWidgetItem(f"slice {s:4d}  {text}")
            item.setData(256, s)
            self.review_list.addItem(item)

    @guarded("Cannot review proposed slices")
    def review(self, accept: bool, selected: bool = False, slices=None):
        """Accept or reject proposed slices (the selected ones, the given ones, or all)."""
        session = self.session()
        if slices is None:
            slices = [int(i.data(256)) for i in self.review_list.selectedItems()] if selected else self.pending(session)
        slices = [s for s in slices if s in self.pending(session)]
        if not slices:
            raise UserError("no proposed slice to review" + (" is selected" if selected else ""))
        if not self.preview:
            self.status.setText(session.act("review", slices, accept).message)
            return
        layer = self.preview_layer()
        if layer is None:
            self.preview = {}
            raise UserError("the preview layer was removed; propagate again")
        if accept:
            self.status.setText(session.act("accept_from", layer.data, {s: self.preview[s] for s in slices}).message)
        data = np.array(layer.data, copy=True)
        data[slices] = 0
        layer.data = data
        self.preview = {s: m for s, m in self.preview.items() if s not in slices}
        self._refresh_list(session)

    def _jump(self, item):
        self.session().go_to(int(item.data(256)))
