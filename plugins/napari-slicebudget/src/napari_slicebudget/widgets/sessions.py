"""Finding, starting and restoring sessions: the one place every widget and the reader go through.

A session is identified by its layers' unique ids (napari hands plugins proxies, so a layer looked up
twice is two different objects: identity means nothing). There is at most one session per
(image, working labels) pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning

from slicebudget.errors import UserError

from napari_slicebudget.logic.autosave import has_session, load_session, session_folder
from napari_slicebudget.logic.geometry import META_KEY, layer_kwargs
from napari_slicebudget.logic.ledger import SliceLedger, foreground_per_slice
from napari_slicebudget.widgets.session import SESSION_KEY, AnnotationSession, layer_volume

RESTORE_KEY = "restore"  # in a labels layer's slicebudget metadata: the saved session it came from


def session_of(layer) -> AnnotationSession | None:
    """The live session whose working labels ``layer`` is."""
    if layer is None or not isinstance(layer, Labels):
        return None
    session = layer.metadata.get(SESSION_KEY)
    # a duplicated layer copies its metadata: only the layer the session was made for counts
    if session is None or session.closed or session.key[1] != layer.unique_id:
        return None
    return session


def sessions(viewer) -> list[AnnotationSession]:
    return [s for s in (session_of(layer) for layer in viewer.layers) if s is not None]


def find_session(viewer, labels=None, image=None) -> AnnotationSession | None:
    """The session of the working layer ``labels``; without it, the first session of ``image``;
    with neither, the first session in the viewer."""
    if labels is not None:
        return session_of(labels)
    return next((s for s in sessions(viewer) if image is None or s.key[0] == image.unique_id), None)


def require_session(viewer, labels=None) -> AnnotationSession:
    session = find_session(viewer, labels=labels)
    if session is None:
        raise UserError("start a session in the Slice planner first (it tracks which slices are annotated)"
                        if labels is None else f"labels layer {labels.name!r} is not a session's working layer")
    return session


def source_path(image_layer) -> str | None:
    entry = (image_layer.metadata or {}).get(META_KEY) or {}
    return entry.get("source") or image_layer.source.path


def default_folder(image_layer) -> Path | None:
    source = source_path(image_layer)
    return session_folder(source) if source else None


def start_session(viewer, image_layer, labels_layer=None, folder: Path | None = None) -> AnnotationSession:
    """The session of (image, labels), started if there is none; ``labels_layer`` None means the
    image's existing session, else a new working layer. Labels already on a chosen layer count as
    not annotated: only the annotator's strokes and marks make a slice theirs."""
    if image_layer is None:
        raise UserError("open an image first (File > Open, or File > Open Sample > slicebudget)")
    if image_layer.ndim != 3:
        raise UserError(f"image layer {image_layer.name!r} is {image_layer.ndim}D; the slice planner needs a 3D volume")
    existing = find_session(viewer, labels=labels_layer, image=image_layer)
    if existing is not None and existing.key[0] == image_layer.unique_id:
        return existing
    if existing is not None:
        raise UserError(f"labels layer {labels_layer.name!r} is the working layer of image "
                        f"{existing.image_layer.name!r}; choose another (or a new) labels layer")
    image = layer_volume(image_layer)  # refuse odd data before adding any layer
    folder = folder or default_folder(image_layer)
    _check_folder_free(viewer, folder)
    if folder is not None and has_session(folder):
        load_session(folder, image)  # a saved session that cannot be resumed is refused, never overwritten
        if labels_layer is None:
            return open_saved(viewer, image_layer, folder)
        raise UserError(f"{folder} holds a saved session for this image; open the image again to resume it, "
                        "or choose another autosave folder")
    added = labels_layer is None
    if added:
        labels_layer = viewer.add_labels(np.zeros(image.shape, dtype=np.uint8),
                                         **layer_kwargs(image, f"{image_layer.name} annotation", "labels"))
    try:
        session = AnnotationSession(viewer, image_layer, labels_layer, autosave_folder=folder)
    except UserError:
        if added:
            viewer.layers.remove(labels_layer)
        raise
    held = 0 if added else int(foreground_per_slice(labels_layer.data).sum())
    if held:
        show_info(f"{held} slices of {labels_layer.name!r} already hold labels; they count as not annotated "
                  "until you paint on them or mark them")
    keep_superior_up(viewer)
    if folder is None:
        show_info("No autosave folder: this image has no file; choose one to keep your work")
    return session


def _check_folder_free(viewer, folder: Path | None) -> None:
    """Two sessions saving into one folder would overwrite each other's work."""
    if folder is not None and any(s.autosave_folder == Path(folder) for s in sessions(viewer)):
        raise UserError("another session in this viewer saves into this folder; choose another autosave folder",
                        folder)


def open_saved(viewer, image_layer, folder: Path) -> AnnotationSession:
    """Resume the session saved in ``folder``: its labels as the working layer, its ledger."""
    image = layer_volume(image_layer)
    restored = load_session(folder, image)
    labels_layer = viewer.add_labels(restored.labels, **layer_kwargs(image, f"{image_layer.name} annotation", "labels"))
    return _resume(viewer, image_layer, labels_layer, restored.ledger, folder, restored.seq, restored.downgraded)


def _resume(viewer, image_layer, labels_layer, ledger: SliceLedger, folder: Path, seq: int, downgraded) -> AnnotationSession:
    session = AnnotationSession(viewer, image_layer, labels_layer, ledger, Path(folder), seq)
    keep_superior_up(viewer)
    if downgraded:
        show_warning(f"Slices {list(downgraded)} did not match their saved state and count as not annotated")
    show_info(f"Restored {ledger.progress_text()} from {folder}")
    return session


def adopt_restored(viewer) -> list[AnnotationSession]:
    """Start the sessions for working layers the reader restored (see ``io_hooks``)."""
    started = []
    for labels_layer in [layer for layer in viewer.layers if isinstance(layer, Labels)]:
        entry = ((labels_layer.metadata or {}).get(META_KEY) or {}).get(RESTORE_KEY)
        if not entry or session_of(labels_layer) is not None:
            continue
        image_layer = next((layer for layer in viewer.layers if isinstance(layer, Image)
                            and ((layer.metadata or {}).get(META_KEY) or {}).get("source") == entry["image"]), None)
        if image_layer is None:
            continue
        labels_layer.metadata[META_KEY] = {k: v for k, v in labels_layer.metadata[META_KEY].items() if k != RESTORE_KEY}
        try:
            _check_folder_free(viewer, Path(entry["folder"]))
        except UserError as exc:
            show_warning(f"Session not resumed: {exc}")
            continue
        started.append(_resume(viewer, image_layer, labels_layer, entry["ledger"], Path(entry["folder"]),
                               entry["seq"], entry["downgraded"]))
    return started


def viewer_camera(viewer):
    """The viewer's camera: ``viewer.scene.camera`` since napari 0.9 (``viewer.camera`` is deprecated
    there), ``viewer.camera`` on the older napari versions the plugin still supports."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


class SuperiorUp:
    """Keeps the slice axis pointing up on screen when it is drawn vertically (sagittal and coronal
    views): napari draws the first displayed axis downwards, which would put slice 0 (inferior) on top."""

    def __init__(self, viewer):
        self.viewer = viewer

    def __call__(self, event=None) -> None:
        dims, camera = self.viewer.dims, viewer_camera(self.viewer)
        if dims.ndisplay != 2 or dims.ndim < 3:
            return
        vertical = "up" if dims.order[-2] == dims.ndim - 3 else "down"
        if camera.orientation2d[0] != vertical:
            camera.orientation2d = (vertical, camera.orientation2d[1])


def keep_superior_up(viewer) -> None:
    """Install :class:`SuperiorUp` on ``viewer`` once."""
    emitter = viewer.dims.events.order
    if any(isinstance(callback, SuperiorUp) for callback in emitter.callbacks):
        return
    callback = SuperiorUp(viewer)
    emitter.connect(callback)
    viewer.dims.events.ndisplay.connect(callback)
    callback()
