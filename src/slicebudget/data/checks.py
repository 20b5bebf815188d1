"""MIST-style data checks: read every case once and report what training would trip over.

Per case: shape, spacing, orientation code, image/label header agreement, label values against
dataset.json, foreground bounding box. Per dataset: target spacing and intensity normalisation
(computed by :mod:`slicebudget.data.preprocess` over the cases that passed).

Severity: a header disagreement is a *warning* naming the case, and the case is excluded (as MIST
warns with the patient id); unreadable files, NaNs, undeclared label values, a missing
dataset.json or no usable training case are *fatal*.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, computed_field

from slicebudget.data.preprocess import (
    ForegroundSample,
    Normalization,
    foreground_sample,
    normalization_from_samples,
    target_spacing,
)
from slicebudget.errors import UserError


class Issue(BaseModel):
    severity: Literal["warning", "fatal"]
    path: str
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


class CaseCheck(BaseModel):
    case_id: str
    split: Literal["Tr", "Ts"]
    shape: tuple[int, int, int] | None = None  # canonical (slices, rows, columns)
    spacing: tuple[float, float, float] | None = None  # mm, canonical order
    orientation: str | None = None  # e.g. "LPS", "RAS": where the source index axes point
    header_agrees: bool | None = None  # None when there is no label to compare with
    label_values: list[int] = []
    foreground_bbox: list[tuple[int, int]] | None = None  # [start, stop) per canonical axis
    foreground_slices: int = 0  # slices holding any foreground: what slice selection works with
    excluded: bool = False


class CheckReport(BaseModel):
    root: str
    layout: str | None = None
    modality: str | None = None
    labels: dict[str, int] = {}
    cases: list[CaseCheck] = []
    issues: list[Issue] = []
    target_spacing: tuple[float, float, float] | None = None
    normalization: Normalization | None = None

    @property
    def fatal(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "fatal"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @computed_field
    @property
    def ok(self) -> bool:
        return not any(i.severity == "fatal" for i in self.issues)

    @property
    def usable_cases(self) -> list[str]:
        return [c.case_id for c in self.cases if c.split == "Tr" and not c.excluded]


def orientation_code(direction) -> str:
    """Three-letter code of where the index axes point (ITK convention: identity is "LPS")."""
    import SimpleITK as sitk

    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines([float(d) for d in direction])


def _grid_difference(a, b) -> str:
    """Which header fields of two volumes disagree, in words."""
    ga, gb = a.geometry, b.geometry
    parts = []
    if a.shape != b.shape:
        parts.append(f"shape {a.shape} vs {b.shape}")
    if not np.allclose(ga.spacing, gb.spacing, atol=1e-4):
        parts.append(f"spacing {tuple(round(s, 4) for s in ga.spacing)} vs {tuple(round(s, 4) for s in gb.spacing)}")
    if not np.allclose(ga.origin, gb.origin, atol=1e-4):
        parts.append(f"origin {tuple(round(o, 2) for o in ga.origin)} vs {tuple(round(o, 2) for o in gb.origin)}")
    if not np.allclose(ga.direction, gb.direction, atol=1e-4):
        parts.append("direction")
    return ", ".join(parts) or "header"


def _foreground_box(labels: np.ndarray, ignore_label: int | None) -> tuple[list[tuple[int, int]] | None, int]:
    mask = labels != 0
    if ignore_label is not None:
        mask &= labels != ignore_label
    if not mask.any():
        return None, 0
    box = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return box, int(mask.any(axis=(1, 2)).sum())


def _read_images(dataset, case):
    from slicebudget.io import read_volume

    if case.channel_index is not None:  # MSD 4D file: the dataset knows how to split it
        return dataset.load_case(case, with_label=False).images
    return [read_volume(p) for p in case.images]


def _check_case(dataset, case, split: str) -> tuple[CaseCheck, list[Issue], object | None, object | None]:
    """Check one case: its check, its issues and, when usable, its first image and label volumes."""
    from slicebudget.io import read_labels

    check = CaseCheck(case_id=case.case_id, split=split)
    issues: list[Issue] = []
    try:
        images = _read_images(dataset, case)
    except UserError as exc:
        issues.append(Issue(severity="fatal", path=exc.path or str(case.images[0]), message=exc.message))
        return check.model_copy(update={"excluded": True}), issues, None, None
    first = images[0]
    check = check.model_copy(update={
        "shape": first.shape,
        "spacing": tuple(float(s) for s in first.spacing),
        "orientation": orientation_code(first.geometry.direction),
    })
    excluded = False
    for other in images[1:]:
        if not first.same_grid(other):
            issues.append(Issue(severity="warning", path=other.name,
                                message=f"case {case.case_id}: channel header differs from channel 0 "
                                        f"({_grid_difference(first, other)}); case excluded"))
            excluded = True
    if case.label is None:
        return check.model_copy(update={"excluded": excluded}), issues, (None if excluded else first), None
    try:
        label = read_labels(case.label)
    except UserError as exc:
        issues.append(Issue(severity="fatal", path=exc.path or str(case.label), message=exc.message))
        return check.model_copy(update={"excluded": True}), issues, None, None

    values = [int(v) for v in np.unique(label.array)]
    undeclared = sorted(set(values) - set(dataset.labels.values()))
    if undeclared:
        issues.append(Issue(severity="fatal", path=str(case.label),
                            message=f"label values {undeclared} are not declared in dataset.json "
                                    f"(declared: {sorted(dataset.labels.values())})"))
        excluded = True
    agrees = first.same_grid(label)
    if not agrees:
        issues.append(Issue(severity="warning", path=str(case.label),
                            message=f"case {case.case_id}: label header does not match its image "
                                    f"({_grid_difference(first, label)}); case excluded"))
        excluded = True
    box, n_slices = _foreground_box(label.array, dataset.ignore_label)
    check = check.model_copy(update={"header_agrees": agrees, "label_values": values, "foreground_bbox": box,
                                      "foreground_slices": n_slices, "excluded": excluded})
    if excluded:
        return check, issues, None, None
    return check, issues, first, label


def _declared_training_count(dataset) -> int | None:
    if dataset.layout != "nnunetv2":
        return None
    try:
        value = json.loads((dataset.root / "dataset.json").read_text()).get("numTraining")
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, int) else None


def check_dataset(path: str | Path, on_case: Callable[[str, int, int], None] | None = None) -> CheckReport:
    """Check every training and test case of a dataset folder.

    ``on_case(case_id, done, total)`` is called after each case (for a progress bar).
    """
    from slicebudget.io import open_dataset

    path = Path(path)
    try:
        dataset = open_dataset(path)
    except UserError as exc:
        return CheckReport(root=str(path), issues=[Issue(severity="fatal", path=exc.path or str(path), message=exc.message)])

    issues: list[Issue] = []
    checks: list[CaseCheck] = []
    spacings, shapes, samples = [], [], []
    jobs = [(c, "Tr") for c in dataset.cases] + [(c, "Ts") for c in dataset.test_cases]
    for done, (case, split) in enumerate(jobs, start=1):
        check, case_issues, image, label = _check_case(dataset, case, split)
        checks.append(check)
        issues.extend(case_issues)
        if split == "Tr" and image is not None and label is not None:
            spacings.append(check.spacing)
            shapes.append(check.shape)
            samples.append(foreground_sample(image.array, label.array, dataset.ignore_label))
        if on_case is not None:
            on_case(case.case_id, done, len(jobs))

    declared = _declared_training_count(dataset)
    if declared is not None and declared != len(dataset.cases):
        issues.append(Issue(severity="warning", path=str(dataset.root / "dataset.json"),
                            message=f"numTraining is {declared} but imagesTr holds {len(dataset.cases)} cases"))
    spacing, normalization = None, None
    if not spacings:
        issues.append(Issue(severity="fatal", path=str(dataset.root), message="no readable training case with a usable label"))
    else:
        spacing = target_spacing(spacings, shapes)
        normalization = _normalization(dataset.modality, samples, dataset.root, issues)
    return CheckReport(root=str(dataset.root), layout=dataset.layout, modality=dataset.modality,
                       labels=dict(dataset.labels), cases=checks, issues=issues,
                       target_spacing=spacing, normalization=normalization)


def _normalization(modality: str, samples: list[ForegroundSample], root: Path, issues: list[Issue]) -> Normalization | None:
    if modality != "ct":
        return Normalization(modality="mr")
    try:
        return normalization_from_samples(samples)
    except ValueError as exc:
        issues.append(Issue(severity="warning", path=str(root), message=str(exc)))
        return None
