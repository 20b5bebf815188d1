"""Write a sparsely annotated nnU-Net v2 dataset from a densely labelled one, following a plan.

Unchosen volumes are left out; on chosen volumes the unchosen slices carry nnU-Net v2's ignore
label (the highest label value, named "ignore"). Images and labels keep the source grid: images are
written with their own header, labels with the image's (nnU-Net requires the two to agree).
``selection.json`` beside ``dataset.json`` records the plan and every case's annotated slices, so
the dataset can be rebuilt or audited without rerunning the selection.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.selection.allocator import SCOPES, SelectionPlan, plan_selection
from slicebudget.selection.base import SlicePolicy, check_density
from slicebudget.volume import SparseAnnotation

MANIFEST = "selection.json"


class _FirstChannelVolumes(Mapping):
    """case id -> channel-0 image array of a dataset, read from disk on access (never cached)."""

    def __init__(self, dataset):
        self._dataset = dataset
        self._cases = {c.case_id: c for c in dataset.cases}

    def __getitem__(self, case_id: str) -> np.ndarray:
        case = self._cases[case_id]
        if case.channel_index is None:
            from slicebudget.io import read_volume

            return read_volume(case.images[0]).array
        return self._dataset.load_case(case, with_label=False).images[0].array

    def __iter__(self) -> Iterator[str]:
        return iter(self._cases)

    def __len__(self) -> int:
        return len(self._cases)


def write_sparse_dataset(
    dataset_dir: str | Path,
    out: str | Path,
    policy: str | SlicePolicy,
    density: float,
    volume_fraction: float,
    seed: int,
    scope: str = "volume",
    overwrite: bool = False,
    on_step: Callable[[str, str], None] | None = None,
) -> SelectionPlan:
    """Plan a selection on ``dataset_dir`` and write the sparse dataset to ``out`` (all or nothing).

    ``on_step(stage, case_id)`` is called as each volume is planned ("select") and written ("write").
    """
    from slicebudget.io import NnUNetWriter, atomic_dir, open_dataset

    check_density(density)
    check_density(volume_fraction, "volume fraction")
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    out = Path(out)
    # Fail before the (possibly long) selection rather than after it.
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError("output folder already exists and is not empty; choose another or remove it", out)
    dataset = open_dataset(dataset_dir)
    json_path = dataset.root / "dataset.json"
    if dataset.ignore_label is not None:
        raise UserError("dataset already has an 'ignore' label; sparsify a densely labelled dataset", json_path)
    ignore = max(dataset.labels.values()) + 1

    plan = plan_selection(
        _FirstChannelVolumes(dataset), policy, density, volume_fraction, seed, scope,
        progress=None if on_step is None else (lambda case_id: on_step("select", case_id)),
    )
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = NnUNetWriter(tmp, dataset.channel_names, {**dataset.labels, "ignore": ignore}, dataset.file_ending)
        cases = {}
        for case_id in sorted(plan.chosen):
            cases[case_id] = _write_sparse_case(dataset, writer, case_id, plan.chosen[case_id], ignore)
            if on_step is not None:
                on_step("write", case_id)
        _copy_test_cases(dataset, writer, tmp)
        writer.finish(
            num_training=len(plan.chosen),
            description=f"sparse annotation of {dataset.root.name}: {plan.policy} slices, "
                        f"density {plan.density:g}, volume fraction {plan.volume_fraction:g}, seed {plan.seed}",
        )
        manifest = {
            "source": str(dataset.root.resolve()),
            "source_layout": dataset.layout,
            "ignore_label": ignore,
            "axis": 0,
            "plan": plan.to_json(),
            "cases": cases,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return plan


def _write_sparse_case(dataset, writer, case_id: str, slices: list[int], ignore: int) -> dict:
    loaded = dataset.load_case(case_id)
    case = dataset.case(case_id)
    if loaded.label is None:
        raise UserError(f"case {case_id} has no label file", dataset.root)
    dense = loaded.label.array
    undeclared = sorted(set(np.unique(dense).tolist()) - set(dataset.labels.values()))
    if undeclared:
        raise UserError(f"label values {undeclared} are not declared in dataset.json", case.label)
    sparse = SparseAnnotation.from_dense(dense, slices)
    writer.write_case(case_id, loaded.images, sparse.encode(ignore), like=loaded.images[0])
    return {
        "n_slices": int(dense.shape[0]),
        "annotated_slices": sparse.annotated_slices.tolist(),
        "empty_slices": sparse.empty_slices.tolist(),
    }


def _copy_test_cases(dataset, writer, root: Path) -> None:
    """imagesTs/labelsTs: byte copies when the source is nnU-Net v2, rewritten otherwise."""
    for case in dataset.test_cases:
        if dataset.layout == "nnunetv2":
            for path in case.images:
                _copy(path, root / "imagesTs" / path.name)
            if case.label is not None:
                _copy(case.label, root / "labelsTs" / case.label.name)
        else:
            loaded = dataset.load_case(case)
            label = None if loaded.label is None else loaded.label.array
            writer.write_case(case.case_id, loaded.images, label, like=loaded.images[0], split="Ts")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
