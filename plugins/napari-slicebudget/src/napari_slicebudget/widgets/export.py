"""The "Export" dock widget: append the case to an nnU-Net v2 raw dataset, in the background.

The form starts from the data (see :mod:`napari_slicebudget.logic.export_defaults`): an existing
dataset in the chosen folder sets channel and classes; otherwise the layers, the file header and the
intensities do, and what they do not say is left for the annotator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QPushButton,
    QWidget,
)

from slicebudget.errors import UserError

from napari_slicebudget.logic.export import export_case
from napari_slicebudget.logic.export_defaults import case_id_for, dataset_defaults, guess_channel, layer_class_names
from napari_slicebudget.logic.geometry import META_KEY
from napari_slicebudget.widgets._common import LayerCombo, guarded, run_in_thread, stacked, status_label
from napari_slicebudget.widgets.session import AnnotationSession
from napari_slicebudget.widgets.sessions import find_session, require_session, session_of, source_path

CHANNELS = ("CT", "T1", "T1c", "T2", "FLAIR", "ADC", "DWI", "PD", "MR")


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
        self.classes_edit.setPlaceholderText("names for label values 1, 2, ... (comma separated)")
        self.channel_combo = QComboBox()
        self.channel_combo.setEditable(True)
        self.channel_combo.addItems(["", *CHANNELS])
        self.channel_combo.lineEdit().setPlaceholderText("choose: CT, T1, T2, ...")
        self.channel_note = status_label()
        self.count_accepted = QCheckBox("count accepted machine slices as annotated")
        self.export_button = QPushButton("Export case")
        self.export_button.clicked.connect(self.export)
        self.status = status_label()
        self.last_result = None

        stacked(self, {"working labels": self.labels_combo, "dataset folder": (self.folder_edit, browse),
                       "case id": self.case_edit, "classes": self.classes_edit, "channel name": self.channel_combo},
                self.channel_note, self.count_accepted, self.export_button, self.status)
        # a session starts right after napari inserts its working layer: look once that is done
        self.labels_combo.currentTextChanged.connect(lambda *_: QTimer.singleShot(0, self.fill_defaults))
        self.folder_edit.editingFinished.connect(self.fill_defaults)
        self.fill_defaults()

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "nnU-Net raw dataset folder")
        if folder:
            self.folder_edit.setText(folder)
            self.fill_defaults()

    def fill_defaults(self, session: AnnotationSession | None = None) -> None:
        """Fill empty fields from the data; a dataset already in the folder decides channel and classes."""
        session = session or find_session(self.viewer, labels=self.labels_combo.layer())
        if session is None:
            return
        image_layer = session.image_layer
        source = source_path(image_layer)
        if not self.case_edit.text():
            self.case_edit.setText(case_id_for(source or image_layer.name))
        existing = dataset_defaults(self.folder_edit.text().strip()) if self.folder_edit.text().strip() else None
        if existing is not None:
            channel, classes = existing
            self.channel_combo.setCurrentText(channel)
            self.channel_note.setText(f"channel and classes from the dataset's dataset.json ({channel})")
            self.classes_edit.setText(", ".join(classes))
            return
        if not self.channel_combo.currentText():
            known = ((image_layer.metadata or {}).get(META_KEY) or {}).get("channel")
            guess = guess_channel(session.image, source, known)
            self.channel_combo.setCurrentText(guess.value)
            self.channel_note.setText(f"channel: {guess.reason}")
        if not self.classes_edit.text():
            for layer in (session.labels_layer, image_layer):
                names = layer_class_names(layer.metadata, getattr(layer, "features", None))
                if names:
                    self.classes_edit.setText(", ".join(names))
                    break

    @guarded("Cannot export")
    def export(self, *_):
        session = require_session(self.viewer, self.labels_combo.layer())
        self.fill_defaults(session)
        folder = self.folder_edit.text().strip()
        if not folder:
            raise UserError("choose a dataset folder to export into")
        classes = [c for c in self.classes_edit.text().split(",") if c.strip()]
        if not classes:
            top = int(np.asarray(session.labels_layer.data).max())
            raise UserError(f"name the classes (comma separated) for label values 1..{max(top, 1)}")
        session.read_strokes()  # a stroke napari has not reported yet belongs to this export
        args = (Path(folder), self.case_edit.text().strip(), session.image,
                np.array(session.labels_layer.data, copy=True), session.ledger, classes,
                self.channel_combo.currentText().strip(), self.count_accepted.isChecked())
        self.export_button.setEnabled(False)
        self.status.setText("Exporting...")

        def done(result):
            self.last_result = result
            text = (f"Wrote case {result.case_id} ({result.n_annotated} annotated slices) to {result.root}; "
                    f"the dataset now has {result.n_training} training cases.")
            self.status.setText(text)
            show_info(text)

        return run_in_thread(self, export_case, *args, on_done=done, what="Export failed",
                             on_finish=lambda: self.export_button.setEnabled(True),
                             on_error=lambda exc: self.status.setText(f"Export failed, the dataset was left as it "
                                                                      f"was: {exc}"))
