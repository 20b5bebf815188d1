"""The "Export" dock widget: append the case to an nnU-Net v2 raw dataset, in the background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QCheckBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from slicebudget.errors import UserError
from slicebudget.io.images import strip_suffix

from napari_slicebudget.logic.export import export_case
from napari_slicebudget.logic.geometry import META_KEY
from napari_slicebudget.widgets._common import LayerCombo, guarded, run_in_thread, safe_case_id, status_label
from napari_slicebudget.widgets.session import AnnotationSession, session_of


def default_classes(session: AnnotationSession) -> list[str]:
    """Class names from the image's metadata (sample data, datasets), else one per painted value."""
    for layer in (session.image_layer, session.labels_layer):
        names = ((layer.metadata or {}).get(META_KEY) or {}).get("classes")
        if names:
            return list(names)
    top = int(np.asarray(session.labels_layer.data).max())
    return [f"class_{i}" for i in range(1, max(top, 1) + 1)]


class ExportWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.labels_combo = LayerCombo(napari_viewer, Labels, prefer=session_of)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("nnU-Net raw dataset folder, e.g. .../Dataset501_Liver")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.case_edit = QLineEdit()
        self.classes_edit = QLineEdit()
        self.channel_edit = QLineEdit("CT")
        self.count_accepted = QCheckBox("count accepted propagated slices as annotated")
        self.export_button = QPushButton("Export case")
        self.export_button.clicked.connect(self.export)
        self.status = status_label()
        self.last_result = None

        form = QFormLayout()
        form.addRow("working labels", self.labels_combo)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit)
        row.addWidget(browse)
        form.addRow("dataset folder", row)
        form.addRow("case id", self.case_edit)
        form.addRow("classes (comma separated)", self.classes_edit)
        form.addRow("channel name", self.channel_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.count_accepted)
        layout.addWidget(self.export_button)
        layout.addWidget(self.status)
        self.labels_combo.currentTextChanged.connect(self._fill_defaults)
        self._fill_defaults()

    def session(self) -> AnnotationSession:
        session = session_of(self.labels_combo.layer())
        if session is None:
            session = next((session_of(layer) for layer in self.viewer.layers if session_of(layer) is not None), None)
        if session is None:
            raise UserError("start a session in the Slice planner first (it tracks which slices are annotated)")
        return session

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "nnU-Net raw dataset folder")
        if folder:
            self.folder_edit.setText(folder)

    def _fill_defaults(self, *_, session: AnnotationSession | None = None):
        session = session or session_of(self.labels_combo.layer())
        if session is None:
            return
        if not self.case_edit.text():
            source = ((session.image_layer.metadata or {}).get(META_KEY) or {}).get("source")
            self.case_edit.setText(safe_case_id(strip_suffix(source) if source else session.image_layer.name))
        if not self.classes_edit.text():
            self.classes_edit.setText(", ".join(default_classes(session)))

    @guarded("Cannot export")
    def export(self, *_):
        session = self.session()
        self._fill_defaults(session=session)
        folder = self.folder_edit.text().strip()
        if not folder:
            raise UserError("choose a dataset folder to export into")
        labels = np.array(session.labels_layer.data, copy=True)
        args = (Path(folder), self.case_edit.text().strip(), session.image, labels, session.ledger,
                [c for c in self.classes_edit.text().split(",")], self.channel_edit.text().strip() or "CT",
                self.count_accepted.isChecked())
        self.export_button.setEnabled(False)
        self.status.setText("Exporting...")

        def done(result):
            self.last_result = result
            text = (f"Wrote case {result.case_id} ({result.n_annotated} annotated slices) to {result.root}; "
                    f"the dataset now has {result.n_training} training cases.")
            self.status.setText(text)
            show_info(text)

        def finished():
            self.export_button.setEnabled(True)
            if self.last_result is None or self.last_result.case_id != args[1]:
                self.status.setText("Export failed; the dataset was left as it was.")

        return run_in_thread(self, export_case, *args, on_done=done, what="Export failed", on_finish=finished)
