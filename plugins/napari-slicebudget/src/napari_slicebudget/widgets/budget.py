"""The "Budget panel" dock widget: a study's recommendation for the user's budget, and the pace so far."""

from __future__ import annotations

from napari.layers import Labels
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from slicebudget.errors import UserError
from slicebudget.report import read_recommendations

from napari_slicebudget.logic.budget import pace, recommend
from napari_slicebudget.widgets._common import LayerCombo, guarded, status_label
from napari_slicebudget.widgets.session import session_of

ANY = "any"


class BudgetWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.recommendations = []
        self.summary_edit = QLineEdit()
        self.summary_edit.setPlaceholderText("summary.json from `budget-study report`")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        load = QPushButton("Load")
        load.clicked.connect(self.load)
        self.budget_spin = QSpinBox(minimum=1, maximum=10_000_000, value=600)
        self.dims_combo = QComboBox()
        self.model_combo = QComboBox()
        self.labels_combo = LayerCombo(napari_viewer, Labels, prefer=session_of)
        self.advice_label = status_label()
        self.pace_label = status_label()
        refresh = QPushButton("Update")
        refresh.clicked.connect(self.update_view)
        for widget in (self.budget_spin,):
            widget.valueChanged.connect(self.update_view)
        self.dims_combo.currentTextChanged.connect(self.update_view)
        self.model_combo.currentTextChanged.connect(self.update_view)

        row = QHBoxLayout()
        row.addWidget(self.summary_edit)
        row.addWidget(browse)
        row.addWidget(load)
        form = QFormLayout()
        form.addRow("study summary", row)
        form.addRow("budget (slices)", self.budget_spin)
        form.addRow("model dims", self.dims_combo)
        form.addRow("model", self.model_combo)
        form.addRow("session", self.labels_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.advice_label)
        layout.addWidget(self.pace_label)
        layout.addWidget(refresh)

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Study summary", filter="JSON (*.json)")
        if path:
            self.summary_edit.setText(path)
            self.load()

    @guarded("Cannot load the study summary")
    def load(self, *_):
        self.recommendations = read_recommendations(self.summary_edit.text().strip())
        for combo, values in ((self.dims_combo, sorted({f"{r.dims}D" for r in self.recommendations})),
                              (self.model_combo, sorted({r.model for r in self.recommendations}))):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ANY, *values])
            combo.blockSignals(False)
        self.update_view()

    @guarded("Budget panel")
    def update_view(self, *_):
        planned = self.budget_spin.value()
        if self.recommendations:
            dims = self.dims_combo.currentText()
            model = self.model_combo.currentText()
            advice = recommend(self.recommendations, planned, None if dims in ("", ANY) else int(dims[0]),
                               None if model in ("", ANY) else model)
            self.advice_label.setText(advice.text())
            planned = advice.n_volumes * advice.slices_per_volume
        session = session_of(self.labels_combo.layer()) or next(
            (session_of(layer) for layer in self.viewer.layers if session_of(layer) is not None), None)
        if session is None:
            self.pace_label.setText("Time against plan shows once a Slice planner session is running.")
            return
        self.pace_label.setText(pace(session.ledger.log).against(planned))

    def advice_text(self) -> str:
        if not self.recommendations:
            raise UserError("load a summary.json first")
        return self.advice_label.text()
