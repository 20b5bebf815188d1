"""Autosave against SIGKILL: a child napari process paints and is killed mid-work; the parent reopens
the image and finds every stroke that finished more than a second before the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from slicebudget.io import write_volume

from napari_slicebudget.widgets.sessions import sessions
from autosave_child import COL, ROW

PLUGIN = "napari-slicebudget"
CHILD = Path(__file__).with_name("autosave_child.py")
MARGIN_SECONDS = 1.0  # the target: strokes older than this at the kill are never lost


def _strokes(log: Path) -> dict[int, float]:
    lines = log.read_text().splitlines() if log.exists() else []
    return {int(s): float(t) for s, t in (line.split() for line in lines if len(line.split()) == 2)}


def test_strokes_survive_sigkill(make_napari_viewer, tmp_path, phantom):
    image, _ = phantom
    path = tmp_path / "ct.nii.gz"
    write_volume(image.array, image, path)
    log = tmp_path / "strokes.log"
    child = subprocess.Popen([sys.executable, str(CHILD), str(path), str(log)], env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while len(_strokes(log)) < 12:  # kill in the middle of a run of strokes
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never painted"
            time.sleep(0.05)
        time.sleep(0.13)  # between two strokes, at no particular phase
    finally:
        os.kill(child.pid, signal.SIGKILL)
        killed_at = time.time()
        child.wait()
    strokes = _strokes(log)
    old = [s for s, t in strokes.items() if t < killed_at - MARGIN_SECONDS]
    assert len(old) >= 8

    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    session, = sessions(viewer)
    labels = session.labels_layer.data
    for s in old:
        assert labels[s, ROW, COL] == 1 + s % 2, f"stroke on slice {s} lost"
        assert session.ledger.provenance[s] == "human-painted"
    never = [s for s in range(labels.shape[0]) if s not in strokes]
    assert not labels[never].any() and not session.ledger.human[never].any()
    kept = [s for s in strokes if labels[s, ROW, COL]]
    print(f"{len(strokes)} strokes, killed {killed_at - max(strokes.values()):.2f} s after the last; "
          f"{len(kept)} restored, including {len(kept) - len(old)} of the last second")
