"""What the export form starts with, read from the data: case id, channel, class names.

Nothing is invented: a channel that neither the header nor the intensities name, or classes that
no layer, study or dataset names, are left for the annotator to fill in (export refuses them empty).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.io.images import image_suffix, strip_suffix
from slicebudget.volume import Volume

CHANNEL_SUFFIX = re.compile(r"_\d{4}$")  # nnU-Net's per-channel file suffix, e.g. case_0003_0000
MODALITY_KEYS = ("modality", "0008|0060", "descrip")  # NRRD field, DICOM tag kept by converters, NIfTI text
HU_AIR = -500.0  # CT air is about -1000 HU; no MR intensity scale reaches this far below zero


@dataclass(frozen=True)
class Guess:
    value: str  # "" when the data does not say
    reason: str


def case_id_for(name_or_path: str) -> str:
    """``/data/case_0003_0000.nii.gz`` -> ``case_0003``: no image suffix, no channel suffix."""
    stem = strip_suffix(name_or_path) if image_suffix(name_or_path) else Path(name_or_path).name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", CHANNEL_SUFFIX.sub("", stem)).strip("_.-")
    return cleaned or "case"


def _header_modality(path: str | None) -> str | None:
    if not path or image_suffix(path) is None or not Path(path).is_file():
        return None
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    for key in reader.GetMetaDataKeys():
        if key.lower() in MODALITY_KEYS:
            words = set(re.findall(r"[A-Z]+", reader.GetMetaData(key).upper()))
            if "CT" in words:
                return "CT"
            if words & {"MR", "MRI"}:
                return "MR"
    return None


def guess_channel(image: Volume, source: str | None = None, known: str | None = None) -> Guess:
    """CT when the layer, the file header or Hounsfield-like intensities say so; else what the
    header says; else nothing (the annotator chooses)."""
    if known:
        return Guess(known, "from the image layer")
    header = _header_modality(source)
    if header:
        return Guess(header, f"the file header says {header}")
    sample = np.asarray(image.array[:: max(1, image.shape[0] // 16), ::4, ::4], dtype=np.float32)
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if low <= HU_AIR and high > 0:
        return Guess("CT", f"intensities from {low:.0f} to {high:.0f} look like Hounsfield units")
    return Guess("", f"intensities {low:.4g} to {high:.4g} are not CT Hounsfield units: name the channel "
                     "(e.g. T1, T2, FLAIR)")


def layer_class_names(metadata: dict | None, features) -> list[str]:
    """Class names a layer carries: slicebudget metadata ``classes``, or a ``name``/``class`` feature
    column (napari's labels features, first row the background)."""
    names = ((metadata or {}).get("slicebudget") or {}).get("classes")
    if names:
        return [str(n) for n in names]
    for column in ("name", "class"):
        if features is not None and column in getattr(features, "columns", ()):
            values = [str(v) for v in list(features[column])[1:]]
            if values and all(values):
                return values
    return []


def dataset_defaults(root: str | Path) -> tuple[str, list[str]] | None:
    """(channel, class names) of an existing nnU-Net dataset at ``root``, or None."""
    path = Path(root) / "dataset.json"
    try:
        meta = json.loads(path.read_text())
        channel = str(meta["channel_names"]["0"])
        labels = sorted(((int(v), k) for k, v in meta["labels"].items() if k not in ("background", "ignore")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return channel, [name for _, name in labels]
