"""Append an annotated case to an nnU-Net v2 raw dataset, with a manifest and a cost file.

Which slices are annotated is read from the ledger only: every slice that is not human (painted or
marked empty) carries the dataset's ignore label, so nnU-Net v2 trains on the human slices only,
unless the annotator asks to count accepted machine slices too. The case's files are written by
:class:`slicebudget.io.NnUNetWriter` into a staging folder inside the dataset, then renamed into
place, and ``dataset.json`` is replaced atomically last: an export that fails leaves the dataset as
it was. Beside the case go ``slicebudget_manifests/<case>.json`` (the ledger) and
``slicebudget_costs/<case>.costs.json`` (the annotation times, see :mod:`.costs`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.io import NnUNetWriter, atomic_write, open_dataset, read_json
from slicebudget.volume import Volume

from napari_slicebudget.logic.costs import COST_SUFFIX, volume_costs, write_costs
from napari_slicebudget.logic.ledger import SliceLedger

MANIFEST_FOLDER, COSTS_FOLDER = "slicebudget_manifests", "slicebudget_costs"
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STANDARD_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


@dataclass(frozen=True)
class ExportResult:
    root: Path
    case_id: str
    image: Path
    label: Path
    manifest: Path
    costs: Path
    n_annotated: int
    n_training: int


def class_labels(class_names: list[str]) -> dict[str, int]:
    """nnU-Net labels for the classes, in order, plus ``ignore`` as the highest value."""
    names = [n.strip() for n in class_names if n.strip()]
    if not names:
        raise UserError("give at least one class name")
    if len(set(names)) != len(names) or {"background", "ignore"} & set(names):
        raise UserError(f"class names must be unique and not 'background' or 'ignore': {names}")
    labels = {"background": 0, **{n: i + 1 for i, n in enumerate(names)}}
    labels["ignore"] = len(names) + 1
    return labels


def _existing_meta(root: Path) -> dict | None:
    path = root / "dataset.json"
    if not path.exists():
        if root.exists() and any(p.name in ("imagesTr", "labelsTr") for p in root.iterdir()):
            raise UserError("folder holds imagesTr/labelsTr but no dataset.json; choose an empty folder or a dataset", root)
        return None
    return read_json(path)


def _check_compatible(root: Path, meta: dict, channel_names: dict, labels: dict) -> dict:
    """The dataset's labels with ours merged in; refuse other channels or other classes."""
    dataset = open_dataset(root)
    if dataset.channel_names != channel_names:
        raise UserError(f"dataset has channels {dataset.channel_names}, this case {channel_names}", root / "dataset.json")
    ours = {k: v for k, v in labels.items() if k != "ignore"}
    theirs = {k: v for k, v in dataset.labels.items() if k != "ignore"}
    if ours != theirs:
        raise UserError(f"dataset has labels {theirs}, this case {ours}; export to another folder", root / "dataset.json")
    return labels


def export_case(root: str | Path, case_id: str, image: Volume, labels: np.ndarray, ledger: SliceLedger,
                class_names: list[str], channel_name: str, count_accepted: bool = False,
                file_ending: str = ".nii.gz", overwrite: bool = False) -> ExportResult:
    """Write ``image`` and its sparse ``labels`` as case ``case_id`` of the dataset at ``root``."""
    root = Path(root)
    if not (channel_name or "").strip():
        raise UserError("choose the image's channel name (CT, or an MRI sequence such as T2): nnU-Net normalises "
                        "CT by its intensity window and every other channel per image")
    if not CASE_ID.match(case_id or ""):
        raise UserError(f"case id {case_id!r} must be letters, digits, '_', '-' or '.'")
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise UserError(f"labels shape {labels.shape} differs from image shape {image.shape}")
    channel_names = {"0": channel_name.strip()}
    wanted = class_labels(class_names)
    meta = _existing_meta(root)
    if meta is not None:
        wanted = _check_compatible(root, meta, channel_names, wanted)
        file_ending = meta.get("file_ending", file_ending)
    ignore = wanted["ignore"]
    annotation = ledger.sparse_annotation(labels, count_accepted=count_accepted)
    if not annotation.annotated.any():
        raise UserError("no slice is annotated by a person yet; paint or mark slices empty before exporting")
    present = np.unique(annotation.labels[annotation.annotated])
    unknown = [int(v) for v in present if v != 0 and v >= ignore]
    if unknown:
        raise UserError(f"labels hold value {unknown[0]} but only classes 1..{ignore - 1} are named")
    encoded = annotation.encode(ignore)

    image_path = root / "imagesTr" / f"{case_id}_0000{file_ending}"
    label_path = root / "labelsTr" / f"{case_id}{file_ending}"
    if (image_path.exists() or label_path.exists()) and not overwrite:
        raise UserError(f"case {case_id} already exists in the dataset; choose another case id", root)

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        writer = NnUNetWriter(staging, channel_names, wanted, file_ending)
        writer.write_case(case_id, [image], encoded, like=image)
        manifest = staging / MANIFEST_FOLDER / f"{case_id}.json"
        manifest.parent.mkdir()
        manifest.write_text(json.dumps(_manifest(case_id, ledger, annotation.annotated, ignore, count_accepted), indent=2) + "\n")
        costs = staging / COSTS_FOLDER / f"{case_id}{COST_SUFFIX}"
        write_costs(costs, [volume_costs(ledger, case_id)])
        for sub in ("imagesTr", "labelsTr", MANIFEST_FOLDER, COSTS_FOLDER):
            (root / sub).mkdir(exist_ok=True)
        # Label first: a case is only seen by nnU-Net through its image, so a crash between the
        # renames leaves at worst an orphan label, never an image without its label.
        for staged, final in ((staging / "labelsTr" / label_path.name, label_path),
                              (manifest, root / MANIFEST_FOLDER / manifest.name),
                              (costs, root / COSTS_FOLDER / costs.name),
                              (staging / "imagesTr" / image_path.name, image_path)):
            os.replace(staged, final)
        n_training = len(list((root / "imagesTr").glob(f"*_0000{file_ending}")))
        extra = {k: v for k, v in (meta or {}).items() if k not in STANDARD_KEYS}
        with atomic_write(root / "dataset.json") as tmp:
            tmp.write_text(json.dumps({"channel_names": channel_names, "labels": wanted, "numTraining": n_training,
                                       "file_ending": file_ending, **extra}, indent=2) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(root, case_id, image_path, label_path, root / MANIFEST_FOLDER / f"{case_id}.json",
                        root / COSTS_FOLDER / costs.name, int(annotation.annotated.sum()), n_training)


def _manifest(case_id: str, ledger: SliceLedger, annotated: np.ndarray, ignore: int, count_accepted: bool) -> dict:
    return {
        "case_id": case_id,
        "ignore_label": ignore,
        "accepted_machine_slices_counted": count_accepted,
        "annotated_slices": np.flatnonzero(annotated).tolist(),
        **ledger.to_dict(),
    }
