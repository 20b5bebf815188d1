"""The "Budget panel" dock widget: the study's planner for the user's budget and volumes, and the pace so far."""

from __future__ import annotations

from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFileDialog, QLineEdit, QPushButton, QSpinBox, QWidget

from slicebudget.errors import UserError

from napari_slicebudget.logic.budget import Study, load_study, pace, recommend, session_costs
from napari_slicebudget.widgets._common import LayerCombo, guarded, stacked, status_label
from napari_slicebudget.widgets.sessions import find_session, session_of

ANY = "any"
WARNING_STYLE = "color: #ffb347; font-weight: bold"


class BudgetWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.study: Study | None = None
        self.summary_edit = QLineEdit()
        self.summary_edit.setPlaceholderText("study folder (or its summary.json) from `budget-study run`")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        load = QPushButton("Load")
        load.clicked.connect(self.load)
        self.budget_spin = QDoubleSpinBox(minimum=0.1, maximum=10_000_000, value=600, decimals=1)
        self.unit_combo = QComboBox()
        self.unit_combo.addItems(["slices", "hours"])
        self.depth_spin = QSpinBox(minimum=1, maximum=100_000, value=100)
        self.depth_spin.setToolTip("slices along the annotation axis of your volumes (set from the open image)")
        self.volumes_spin = QSpinBox(minimum=0, maximum=1_000_000, value=0)
        self.volumes_spin.setSpecialValueText("the study's count")
        self.dims_combo = QComboBox()
        self.model_combo = QComboBox()
        self.labels_combo = LayerCombo(napari_viewer, Labels, prefer=session_of)
        self.warning_label = status_label()
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.advice_label = status_label()
        self.pace_label = status_label()
        refresh = QPushButton("Update")
        refresh.clicked.connect(self.update_view)
        for spin in (self.budget_spin, self.depth_spin, self.volumes_spin):
            spin.valueChanged.connect(self.update_view)
        self.dims_combo.currentTextChanged.connect(self.update_view)
        self.unit_combo.currentTextChanged.connect(self.update_view)
        self.model_combo.currentTextChanged.connect(self.update_view)
        # a session starts right after napari inserts its working layer: look once that is done
        self.labels_combo.currentTextChanged.connect(lambda *_: QTimer.singleShot(0, self._depth_from_session))

        stacked(self, {"study": (self.summary_edit, browse, load), "budget": (self.budget_spin, self.unit_combo),
                       "slices per volume (yours)": self.depth_spin, "volumes you have": self.volumes_spin,
                       "model dims": self.dims_combo, "model": self.model_combo, "session": self.labels_combo},
                self.warning_label, self.advice_label, self.pace_label, refresh)
        self._depth_from_session()

    def _session(self):
        return find_session(self.viewer, labels=self.labels_combo.layer())

    def _depth_from_session(self, *_):
        session = self._session()
        if session is not None:
            self.depth_spin.setValue(session.image.shape[0])
        self.update_view()

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Study summary", filter="JSON (*.json)")
        if path:
            self.summary_edit.setText(path)
            self.load()

    @guarded("Cannot load the study")
    def load(self, *_):
        self.study = None
        self.warning_label.setText("")
        self.study = load_study(self.summary_edit.text().strip())
        self.warning_label.setText(self.study.warning())
        for combo, values in ((self.dims_combo, sorted({f"{d}D" for _, d in self.study.models})),
                              (self.model_combo, sorted({m for m, _ in self.study.models}))):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ANY, *values])
            combo.blockSignals(False)
        self.update_view()

    @guarded("Budget panel")
    def update_view(self, *_):
        unit = self.unit_combo.currentText()
        planned = int(self.budget_spin.value()) if unit == "slices" else 0
        session = self._session()
        if self.study is not None:
            dims, model = self.dims_combo.currentText(), self.model_combo.currentText()
            costs = session_costs(session.ledger, self.study.costs) if session is not None else self.study.costs
            advice = recommend(self.study, self.budget_spin.value(), self.depth_spin.value(),
                               self.volumes_spin.value() or None, None if dims in ("", ANY) else int(dims[0]),
                               None if model in ("", ANY) else model, unit, costs)
            self.advice_label.setText(advice.text())
            planned = advice.total
        if session is None:
            self.pace_label.setText("Time against plan shows once a Slice planner session is running.")
            return
        self.pace_label.setText(pace(session.ledger).against(planned))

    def advice_text(self) -> str:
        if self.study is None:
            raise UserError("load a study first")
        return self.advice_label.text()
