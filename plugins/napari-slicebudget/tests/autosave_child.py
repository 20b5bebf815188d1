"""Child process of the SIGKILL test: a real napari viewer that opens an image with the plugin's reader,
suggests slices and paints one stroke per slice, logging when each stroke finished, until it is killed.

    python autosave_child.py IMAGE LOG
"""

from __future__ import annotations

import os
import sys
import time

import napari
from qtpy.QtWidgets import QApplication

STROKE_EVERY = 0.25  # seconds; a fast annotator
ROW, COL, RADIUS = 20, 20, 7


def spin(seconds: float) -> None:
    app, end = QApplication.instance(), time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def main(image_path: str, log_path: str) -> None:
    viewer = napari.Viewer(show=False)
    viewer.open(image_path, plugin="napari-slicebudget")
    _, planner = viewer.window.add_plugin_dock_widget("napari-slicebudget", "Slice planner")
    planner.suggest()
    while planner.session() is None or not planner.session().ledger.suggested:
        spin(0.05)
    labels = planner.session().labels_layer
    labels.brush_size = 2 * RADIUS
    with open(log_path, "a") as log:
        for s in range(labels.data.shape[0]):
            labels.paint((s, ROW, COL), 1 + s % 2)
            log.write(f"{s} {time.time():.3f}\n")  # the stroke finished now
            log.flush()
            os.fsync(log.fileno())
            spin(STROKE_EVERY)
    spin(3600)  # wait to be killed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
