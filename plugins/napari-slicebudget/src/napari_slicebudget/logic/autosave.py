"""Save the annotator's labels and slice statuses as they work, and restore them on reopening.

The session lives in ``<image>.slicebudget/`` beside the image (or a folder the user picks):
``labels.nii.gz`` (exactly the image's header) and ``state.json`` (the ledger). Both are written
atomically, labels first, so a crash leaves the previous consistent pair or the new one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.io import atomic_write, read_labels, write_volume
from slicebudget.volume import Volume

from napari_slicebudget.logic.ledger import SliceLedger, foreground_per_slice

SESSION_SUFFIX = ".slicebudget"
LABELS_FILE = "labels.nii.gz"
STATE_FILE = "state.json"
DEBOUNCE_SECONDS = 2.0  # after the last stroke; long enough not to save mid-gesture


def session_folder(image_path: str | Path) -> Path:
    """``/data/ct.nii.gz`` -> ``/data/ct.nii.gz.slicebudget``."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.name + SESSION_SUFFIX)


def smallest_label_dtype(labels: np.ndarray) -> np.dtype:
    top = int(labels.max()) if labels.size else 0
    return np.dtype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)


def save_session(folder: str | Path, labels: np.ndarray, like: Volume, ledger: SliceLedger) -> Path:
    """Write the labels (on ``like``'s grid) and the ledger; returns the folder."""
    folder = Path(folder)
    labels = np.asarray(labels)
    if labels.shape != like.shape or ledger.depth != like.shape[0]:
        raise UserError(f"labels {labels.shape} and plan ({ledger.depth} slices) do not fit image {like.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(labels.astype(smallest_label_dtype(labels), copy=False), like, folder / LABELS_FILE)
    with atomic_write(folder / STATE_FILE) as tmp:
        tmp.write_text(ledger.to_json())
    return folder


def has_session(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / STATE_FILE).is_file() and (folder / LABELS_FILE).is_file()


def load_session(folder: str | Path, like: Volume) -> tuple[np.ndarray, SliceLedger]:
    """The saved labels (checked against ``like``'s grid) and ledger."""
    folder = Path(folder)
    state_path = folder / STATE_FILE
    try:
        raw = json.loads(state_path.read_text())
    except FileNotFoundError as exc:
        raise UserError("no saved session here", folder) from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON ({exc.msg} at line {exc.lineno})", state_path) from exc
    ledger = SliceLedger.from_dict(raw, str(state_path))
    if ledger.depth != like.shape[0]:
        raise UserError(f"saved session has {ledger.depth} slices, the image {like.shape[0]}", state_path)
    labels = read_labels(folder / LABELS_FILE, like=like).array
    # the saved flags are a cache: the labels on disk are the truth for which slices hold paint
    # (replace, not with_labels: restoring must not log slices as newly annotated now)
    return labels, replace(ledger, has_foreground=foreground_per_slice(labels))
