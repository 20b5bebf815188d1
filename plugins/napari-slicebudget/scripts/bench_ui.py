"""How long each slice-planner action keeps the annotator waiting, on a 300 x 512 x 512 volume.

Run under a display: ``xvfb-run -a python3 scripts/bench_ui.py``. A real viewer docks the real
planner (autosave on, into a temporary folder). Each action is timed twice: until the call returns
(the plugin's own work on the GUI thread; choosing slices and writing to disk run in worker
threads), and until Qt has handled every event the action queued, napari's redraw of the canvas
and layer list included. The same redraw measured for napari alone (moving to a slice, a brush
stroke on a labels layer without a session) shows what the plugin adds. Actions are repeated after
one warm-up round; the median and the worst repeat are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_MS = 100.0


def _volume(shape, seed: int):
    from slicebudget.volume import SourceGeometry, Volume

    rng = np.random.default_rng(seed)
    array = rng.normal(40.0, 20.0, size=shape).astype(np.float32)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    organ = ((z - shape[0] / 2) / (shape[0] / 3)) ** 2 + ((y - shape[1] / 2) / (shape[1] / 4)) ** 2 \
        + ((x - shape[2] / 2) / (shape[2] / 4)) ** 2 < 1
    array[organ] += 80.0
    geometry = SourceGeometry.from_header((0.8, 0.8, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return Volume(array, geometry, "bench")


class Timer:
    def __init__(self, app):
        self.app = app
        self.rows: dict[str, tuple[list[float], list[float]]] = {}

    def settle(self) -> None:
        self.app.processEvents()
        self.app.processEvents()

    def wait(self, condition, timeout: float = 600.0) -> float:
        start, end = time.perf_counter(), time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("the planner did not finish in time")
            self.app.processEvents()
            time.sleep(0.002)
        return 1000 * (time.perf_counter() - start)

    def __call__(self, name: str, action, keep: bool = True) -> None:
        start = time.perf_counter()
        action()
        returned = time.perf_counter()
        self.settle()
        if keep:
            calls, idles = self.rows.setdefault(name, ([], []))
            calls.append(1000 * (returned - start))
            idles.append(1000 * (time.perf_counter() - start))

    def report(self) -> None:
        print(f"{'action':46s} {'call returns ms':>17s} {'until idle ms':>15s}  call < {TARGET_MS:.0f} ms")
        print(f"{'':46s} {'median':>8s} {'worst':>8s} {'median':>7s} {'worst':>7s}")
        for name, (calls, idles) in self.rows.items():
            verdict = "yes" if max(calls) < TARGET_MS else "NO"
            print(f"{name:46s} {statistics.median(calls):8.1f} {max(calls):8.1f} "
                  f"{statistics.median(idles):7.1f} {max(idles):7.1f}  {verdict}")


def main(shape=(300, 512, 512), repeats: int = 10, seed: int = 0) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_slicebudget.logic.geometry import layer_kwargs
    from napari_slicebudget.widgets.planner import SlicePlannerWidget

    image = _volume(shape, seed)
    viewer = napari.Viewer(show=True)
    timer = Timer(QApplication.instance())
    viewer.add_image(image.array, **layer_kwargs(image, "bench", "image"))
    planner = SlicePlannerWidget(viewer)
    planner.folder_edit.setText(str(Path(tempfile.mkdtemp()) / "bench.slicebudget"))
    planner.density_spin.setValue(0.1)
    timer.wait(lambda: not planner.__dict__.get("_slicebudget_workers"))  # the warm-up run at docking
    timer("first Suggest (starts the session)", planner.suggest)
    timer.wait(lambda: planner.session() is not None and planner.session().ledger.suggested)
    session = planner.session()
    layer, centre = session.labels_layer, (shape[1] // 2, shape[2] // 2)
    plain = viewer.add_labels(np.zeros(shape, np.uint8), name="napari alone", **{
        k: v for k, v in layer_kwargs(image, "x", "labels").items() if k in ("scale", "translate", "affine")})
    viewer.layers.selection.active = layer
    layer.brush_size = plain.brush_size = 20
    chosen_in_worker, on_disk = [], []
    for i in range(repeats + 1):
        keep = i > 0  # round 0 warms up every path
        planner.policy_combo.setCurrentText(("fixed", "random", "coreset")[i % 3])
        planner.seed_spin.setValue(i + 1)
        timer("Suggest slices (again)", planner.suggest, keep)
        waited = timer.wait(lambda: session.ledger.plan.seed == i + 1)
        chosen_in_worker += [waited] if keep else []
        timer("Next suggested slice (Alt-N)", planner.next_slice, keep)
        s = session.current_slice()
        timer("napari alone: move to the next slice", lambda: viewer.dims.set_point(0, float(s + 1)), keep)
        timer("napari alone: brush stroke, no session", lambda: plain.paint((s + 1, *centre), 1), keep)
        timer("Next slice to annotate (Alt-U)", planner.next_todo, keep)
        s = session.current_slice()
        timer("brush stroke (read into the ledger, journaled)",
              lambda: (layer.paint((s, *centre), 1), session.read_strokes()), keep)
        start = time.perf_counter()
        session.autosaver.drain()
        on_disk += [1000 * (time.perf_counter() - start)] if keep else []
        timer("Mark empty, slice has labels: 1st press", planner.mark_empty, keep)
        timer("Mark empty, second press: erases, marks", planner.mark_empty, keep)
        timer("Undo (Ctrl+Z)", planner.undo, keep)
        session.go_to(s + 2)
        timer.settle()
        timer("Mark empty, slice without labels", planner.mark_empty, keep)
    start = time.perf_counter()
    session.checkpoint()
    session.autosaver.drain()
    checkpoint = 1000 * (time.perf_counter() - start)
    print(f"volume {shape[0]} x {shape[1]} x {shape[2]}, {repeats} repeats after a warm-up round")
    timer.report()
    print(f"in worker threads: slices chosen {statistics.median(chosen_in_worker):.0f} ms median "
          f"({max(chosen_in_worker):.0f} worst); a stroke's journal record on disk {max(on_disk):.0f} ms after its "
          f"call returned (worst); a full checkpoint {checkpoint:.0f} ms")
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512))
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    main(tuple(args.shape), args.repeats)
