"""npe2 reader and writer: NIfTI, NRRD and MHA through slicebudget.io, keeping the source header.

Images open in canonical orientation with scale, translate (and an affine for oblique files) from
the header; the header itself rides in ``metadata["slicebudget"]`` so labels are written back with
exactly the source geometry. A file that cannot be read raises a napari notification naming the
file and the problem, and adds no layer.

An image with a saved session beside it (``<image>.slicebudget/``) opens with its working labels,
and the session resumes as soon as the layers are in the viewer, whether or not a widget is docked.
A saved session that cannot be resumed is named in a notification; the image still opens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.io import read_labels, read_volume, write_volume
from slicebudget.io.images import image_suffix, strip_suffix

from napari_slicebudget.logic.autosave import has_session, load_session, session_folder
from napari_slicebudget.logic.geometry import META_KEY, layer_kwargs, volume_from_layer

LABEL_FOLDERS = {"labelsTr", "labelsTs"}
SESSION_LABELS = "labels.nii.gz"
NULL_LAYER = [(None,)]  # napari's "read fine, nothing to add" sentinel


def _single_path(path) -> str | None:
    if isinstance(path, (list, tuple)):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def get_reader(path):
    """The reader for one medical image file, or None when it is not ours."""
    single = _single_path(path)
    if single is None or image_suffix(single) is None:
        return None
    return read_medical


def is_label_file(path: str | Path) -> bool:
    """Label files by convention: nnU-Net/MSD ``labelsTr``/``labelsTs`` folders, or a saved session."""
    path = Path(path)
    return path.parent.name in LABEL_FOLDERS or (path.name == SESSION_LABELS and path.parent.name.endswith(".slicebudget"))


def layer_data(path: str | Path) -> list[tuple]:
    """Layer-data tuples for ``path`` (raises UserError for files that cannot be read)."""
    path = Path(path)
    name = strip_suffix(path)
    if is_label_file(path):
        volume = read_labels(path)
        return [(volume.array, layer_kwargs(volume, name, "labels", source=path), "labels")]
    volume = read_volume(path)
    kwargs = layer_kwargs(volume, name, "image", source=path)
    if np.issubdtype(volume.array.dtype, np.integer) and volume.array.min() >= 0 and volume.array.max() < 256 \
            and np.unique(volume.array[::4, ::4, ::4]).size <= 16:
        # a small set of non-negative integers is a label map whatever folder it sits in
        return [(volume.array, kwargs, "labels")]
    return [(volume.array, kwargs, "image")]


def saved_session_layer(path: str | Path, image_data: tuple) -> tuple | None:
    """The working labels of the session saved beside ``path``, as layer data, or None."""
    folder = session_folder(path)
    if not has_session(folder):
        return None
    array, kwargs, _ = image_data
    image = volume_from_layer(array, kwargs["metadata"], name=str(path))
    restored = load_session(folder, image)
    labels_kwargs = layer_kwargs(image, f"{kwargs['name']} annotation", "labels")
    # the session itself is started once both layers are in the viewer (widgets.sessions.adopt_restored)
    labels_kwargs["metadata"][META_KEY]["restore"] = {
        "image": str(Path(path)), "folder": str(folder), "ledger": restored.ledger, "seq": restored.seq,
        "downgraded": restored.downgraded}
    return restored.labels, labels_kwargs, "labels"


def _prepare_viewer(viewer, resume: bool) -> None:
    from napari_slicebudget.widgets.sessions import adopt_restored, keep_superior_up

    keep_superior_up(viewer)
    if not resume:
        return

    def inserted(event):
        if adopt_restored(viewer):
            viewer.layers.events.inserted.disconnect(inserted)

    viewer.layers.events.inserted.connect(inserted)


def read_medical(path):
    """npe2 reader function; errors become a notification and no layer (never a half-added layer)."""
    from napari import current_viewer
    from napari.utils.notifications import show_error

    single = _single_path(path)
    try:
        layers = layer_data(single)
    except UserError as exc:
        show_error(f"Cannot open: {exc}")
        return NULL_LAYER
    if layers[0][2] == "image":
        try:
            saved = saved_session_layer(single, layers[0])
        except UserError as exc:
            show_error(f"Cannot resume the saved session: {exc}")
            saved = None
        if saved is not None:
            layers.append(saved)
        viewer = current_viewer()
        if viewer is not None:
            _prepare_viewer(viewer, resume=saved is not None)
    return layers


def write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: labels on their source grid, header copied exactly."""
    from napari.utils.notifications import show_error

    try:
        if image_suffix(path) is None:
            raise UserError("save labels as .nii.gz, .nii, .nrrd or .mha", path)
        affine = meta.get("affine")
        like = volume_from_layer(data, meta.get("metadata"), meta.get("scale"), meta.get("translate"),
                                 None if affine is None else np.asarray(getattr(affine, "affine_matrix", affine)),
                                 name=meta.get("name", ""))
        array = np.asarray(data)
        if not np.issubdtype(array.dtype, np.integer):
            raise UserError(f"labels must be integers, got {array.dtype}", path)
        write_volume(array, like, path)
    except UserError as exc:
        show_error(f"Cannot save: {exc}")
        return []
    return [str(path)]
