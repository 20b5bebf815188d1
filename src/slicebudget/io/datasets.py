"""Dataset layouts: nnU-Net v2 raw, Medical Segmentation Decathlon, and one folder per patient.

All three open into the same :class:`Dataset` description; :class:`NnUNetWriter` writes the nnU-Net v2
raw layout, which is what slicebudget produces (phantoms, sparse datasets, plugin exports).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from slicebudget.errors import UserError
from slicebudget.io.atomic import atomic_write
from slicebudget.io.images import IMAGE_SUFFIXES, read_labels, read_volume, strip_suffix, write_volume
from slicebudget.io.json_file import read_json
from slicebudget.volume import SourceGeometry, Volume

CT_NAMES = {"ct", "computed tomography"}


@dataclass(frozen=True)
class Case:
    case_id: str
    images: tuple[Path, ...]  # one file per channel; an MSD 4D file appears once per channel
    label: Path | None = None
    channel_index: tuple[int, ...] | None = None  # MSD: which 4D component each entry is


@dataclass(frozen=True)
class LoadedCase:
    case_id: str
    images: list[Volume]
    label: Volume | None


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str
    channel_names: dict[str, str]
    labels: dict[str, int]
    file_ending: str
    cases: tuple[Case, ...]
    test_cases: tuple[Case, ...] = field(default=())

    @property
    def ignore_label(self) -> int | None:
        return self.labels.get("ignore")

    @property
    def classes(self) -> dict[str, int]:
        """Foreground classes: name -> id, without background and ignore."""
        return {k: v for k, v in self.labels.items() if v != 0 and k != "ignore"}

    @property
    def modality(self) -> str:
        first = self.channel_names.get("0", next(iter(self.channel_names.values()), ""))
        return "ct" if first.strip().lower() in CT_NAMES else "mr"

    def case(self, case_id: str) -> Case:
        for c in (*self.cases, *self.test_cases):
            if c.case_id == case_id:
                return c
        raise UserError(f"no case named {case_id!r}", self.root)

    def load_case(self, case: Case | str, with_label: bool = True) -> LoadedCase:
        """Read a case's channels and label; the label's grid must match the first channel's."""
        case = self.case(case) if isinstance(case, str) else case
        if case.channel_index is None:
            images = [read_volume(p) for p in case.images]
        else:
            images = [_read_component(p, i) for p, i in zip(case.images, case.channel_index)]
        for other in images[1:]:
            if not images[0].same_grid(other):
                raise UserError(f"channel geometry differs from channel 0 of case {case.case_id}", other.name)
        label = None
        if with_label and case.label is not None:
            label = read_labels(case.label, like=images[0])
        return LoadedCase(case.case_id, images, label)


def _read_component(path: Path, index: int) -> Volume:
    """One channel of an MSD 4D image (channels along the fourth axis)."""
    if not path.exists():
        raise UserError("file not found", path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise UserError("cannot read image", path) from exc
    if image.GetDimension() == 4:
        size = list(image.GetSize())
        size[3] = 0
        image = sitk.Extract(image, size, [0, 0, 0, index])
    geometry = SourceGeometry.from_header(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    return Volume(geometry.to_canonical(sitk.GetArrayFromImage(image)), geometry, name=f"{path}[{index}]")


def _load_json(path: Path) -> dict:
    return read_json(path, missing="dataset.json not found")


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset folder (or its JSON description), detecting the layout."""
    path = Path(path)
    if not path.exists():
        raise UserError("dataset folder not found", path)
    json_path = path if path.is_file() else path / "dataset.json"
    meta = _load_json(json_path)
    root = json_path.parent
    if "channel_names" in meta:
        return _open_nnunet(root, meta, json_path)
    if "modality" in meta and "training" in meta:
        return _open_msd(root, meta, json_path)
    if "images" in meta and "mask" in meta:
        return _open_per_patient(root, meta, json_path)
    raise UserError("not an nnU-Net v2, MSD or per-patient dataset description", json_path)


def _require(meta: dict, key: str, json_path: Path):
    if key not in meta:
        raise UserError(f"missing key {key!r}", json_path)
    return meta[key]


def _nnunet_labels(raw: dict, json_path: Path) -> dict[str, int]:
    labels = {}
    for name, value in raw.items():
        if isinstance(value, (list, tuple)):  # region-based training; slicebudget uses the first id
            value = value[0]
        if not isinstance(value, int) or value < 0:
            raise UserError(f"label {name!r} has invalid value {value!r}", json_path)
        labels[name] = value
    if labels.get("background") != 0:
        raise UserError("labels must map 'background' to 0", json_path)
    if "ignore" in labels and labels["ignore"] != max(labels.values()):
        raise UserError("the 'ignore' label must be the highest label value", json_path)
    return labels


def _open_nnunet(root: Path, meta: dict, json_path: Path) -> Dataset:
    channels = {str(k): str(v) for k, v in _require(meta, "channel_names", json_path).items()}
    labels = _nnunet_labels(_require(meta, "labels", json_path), json_path)
    ending = _require(meta, "file_ending", json_path)
    n_channels = len(channels)

    def collect(images_dir: Path, labels_dir: Path, need_labels: bool) -> tuple[Case, ...]:
        if not images_dir.is_dir():
            if need_labels:
                raise UserError("imagesTr folder not found", images_dir)
            return ()
        ids = sorted({f.name[: -len(ending) - 5] for f in images_dir.glob(f"*_0000{ending}")})
        cases = []
        for cid in ids:
            files = tuple(images_dir / f"{cid}_{c:04d}{ending}" for c in range(n_channels))
            missing = [f for f in files if not f.exists()]
            if missing:
                raise UserError(f"case {cid} is missing channel file {missing[0].name}", images_dir)
            label = labels_dir / f"{cid}{ending}"
            if not label.exists():
                if need_labels:
                    raise UserError(f"case {cid} has no label file", label)
                label = None
            cases.append(Case(cid, files, label))
        return tuple(cases)

    cases = collect(root / "imagesTr", root / "labelsTr", need_labels=True)
    if not cases:
        raise UserError(f"no training images matching *_0000{ending} in imagesTr", root)
    test_cases = collect(root / "imagesTs", root / "labelsTs", need_labels=False)
    return Dataset(root, "nnunetv2", channels, labels, ending, cases, test_cases)


def _open_msd(root: Path, meta: dict, json_path: Path) -> Dataset:
    channels = {str(k): str(v) for k, v in meta["modality"].items()}
    labels = {str(v): int(k) for k, v in _require(meta, "labels", json_path).items()}
    multi = len(channels) > 1

    def case_of(image_rel: str, label_rel: str | None) -> Case:
        image = (root / image_rel).resolve()
        cid = strip_suffix(image)
        if multi:
            return Case(cid, (image,) * len(channels), _maybe(root, label_rel), tuple(range(len(channels))))
        return Case(cid, (image,), _maybe(root, label_rel))

    cases = tuple(case_of(e["image"], e.get("label")) for e in meta["training"])
    tests = tuple(case_of(e if isinstance(e, str) else e["image"], None) for e in meta.get("test", []))
    ending = next((s for s in IMAGE_SUFFIXES if str(cases[0].images[0]).endswith(s)), ".nii.gz") if cases else ".nii.gz"
    return Dataset(root, "msd", channels, labels, ending, cases, tests)


def _maybe(root: Path, rel: str | None) -> Path | None:
    return None if rel is None else (root / rel).resolve()


def _open_per_patient(root: Path, meta: dict, json_path: Path) -> Dataset:
    """MIST/BraTS style: one folder per patient, file names given as patterns in the JSON.

    Example: ``{"modality": "mr", "train-data": "train", "images": {"t1": ["*t1.nii.gz"]},
    "mask": ["*seg.nii.gz"], "labels": [0, 1, 2, 4]}``.
    """
    images = meta["images"]
    channels = {str(i): name for i, name in enumerate(images)}
    if str(meta.get("modality", "")).lower() == "ct":
        channels["0"] = "CT"
    raw_labels = meta.get("labels", [0, 1])
    if isinstance(raw_labels, dict):
        labels = {str(k): int(v) for k, v in raw_labels.items()}
    else:
        labels = {("background" if v == 0 else f"label_{v}"): int(v) for v in raw_labels}

    def match(folder: Path, patterns: list[str]) -> Path | None:
        for f in sorted(folder.iterdir()):
            if any(fnmatch.fnmatch(f.name, p) or f.name.endswith(p) for p in patterns):
                return f
        return None

    def collect(data_dir: Path, need_labels: bool) -> tuple[Case, ...]:
        cases = []
        for patient in sorted(p for p in data_dir.iterdir() if p.is_dir()):
            files = [match(patient, pats) for pats in images.values()]
            if any(f is None for f in files):
                raise UserError(f"patient {patient.name} lacks an image for every channel", patient)
            label = match(patient, meta["mask"])
            if label is None and need_labels:
                raise UserError(f"patient {patient.name} has no mask file", patient)
            cases.append(Case(patient.name, tuple(files), label))
        return tuple(cases)

    train_dir = root / meta.get("train-data", ".")
    if not train_dir.is_dir():
        raise UserError("train-data folder not found", train_dir)
    cases = collect(train_dir, need_labels=True)
    tests = collect(root / meta["test-data"], need_labels=False) if meta.get("test-data") else ()
    ending = next((s for s in IMAGE_SUFFIXES if str(cases[0].images[0]).endswith(s)), ".nii.gz") if cases else ".nii.gz"
    return Dataset(root, "per-patient", channels, labels, ending, cases, tests)


class NnUNetWriter:
    """Writes an nnU-Net v2 raw dataset into a folder (use it inside ``atomic_dir``)."""

    def __init__(self, root: str | Path, channel_names: dict[str, str], labels: dict[str, int], file_ending: str = ".nii.gz"):
        self.root = Path(root)
        self.channel_names = {str(k): v for k, v in channel_names.items()}
        self.labels = dict(labels)
        self.file_ending = file_ending
        self.n_training_ = 0

    def write_case(self, case_id: str, images: list[Volume], label: np.ndarray | None, like: Volume | None = None, split: str = "Tr") -> None:
        if split not in ("Tr", "Ts"):
            raise ValueError("split must be 'Tr' or 'Ts'")
        if len(images) != len(self.channel_names):
            raise ValueError(f"expected {len(self.channel_names)} channels, got {len(images)}")
        like = like or images[0]
        for c, image in enumerate(images):
            write_volume(image.array, like, self.root / f"images{split}" / f"{case_id}_{c:04d}{self.file_ending}")
        if label is not None:
            write_volume(np.asarray(label).astype(np.uint8 if label.max() < 256 else np.uint16), like,
                         self.root / f"labels{split}" / f"{case_id}{self.file_ending}")
        if split == "Tr":
            self.n_training_ += 1

    def finish(self, num_training: int | None = None, **extra) -> Path:
        meta = {
            "channel_names": self.channel_names,
            "labels": self.labels,
            "numTraining": self.n_training_ if num_training is None else num_training,
            "file_ending": self.file_ending,
            **extra,
        }
        path = self.root / "dataset.json"
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return path
