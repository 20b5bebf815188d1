"""Time what the slice planner does for a 512 x 512 x 300 volume (run: python3 scripts/bench_planner.py).

Prints seconds for: coreset suggestions (runs in a worker thread in the widget), and the
main-thread work per paint/undo (which slices hold paint), which must stay well under 100 ms.
"""

from __future__ import annotations

import time

import numpy as np

from napari_slicebudget.logic.ledger import SliceLedger
from napari_slicebudget.logic.planning import resolve_slice_count, suggest_slices, warm_up


def main(shape=(300, 512, 512), density=0.1, seed=0) -> None:
    rng = np.random.default_rng(seed)
    volume = rng.normal(40, 20, size=shape).astype(np.float32)
    n = resolve_slice_count(shape[0], density=density)
    start = time.perf_counter()
    warm_up()  # the planner widget does this in a thread as soon as it is docked
    print(f"one-time warm-up (background, at docking): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    slices = suggest_slices(volume, "coreset", n, seed)
    print(f"coreset: {n} of {shape[0]} slices of {shape[1]}x{shape[2]} in {time.perf_counter() - start:.2f} s")
    labels = np.zeros(shape, dtype=np.uint8)
    labels[slices[0], 100:200, 100:200] = 1
    ledger = SliceLedger(shape[0]).with_plan(slices)
    start = time.perf_counter()
    ledger = ledger.with_labels(labels)
    print(f"rescan after undo/redo (main thread): {1000 * (time.perf_counter() - start):.0f} ms")
    start = time.perf_counter()
    ledger.with_painted(labels, [int(slices[0])])
    print(f"update after one paint stroke (main thread): {1000 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    main()
