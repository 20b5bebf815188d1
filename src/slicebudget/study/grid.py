"""From a validated study config and a dataset to the list of runs, each with a stable id.

A run spec is a plain JSON-able dict (what a Dask worker receives). Its id is the short sha256 of
its canonical JSON (sorted keys), so the same config on the same data always names the same runs,
and a study folder can be resumed after the config file or the dataset folder moves.

Pairing: the selection seed and the training seed derive only from (dataset, repeat, study seed),
so runs that differ only in model or interpolation annotate exactly the same volumes and slices.
Leaving rho, s and the policy out of the seed pairs more than that: ``plan_selection`` draws the
chosen volumes as a prefix of one seeded permutation, so within a repeat every policy sees the same
volumes and a smaller s annotates a subset of a larger one's volumes (common random numbers, which
make the budget comparisons paired too).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.study.choices import OFF
from slicebudget.study.config import StudyConfig

SPEC_SCHEMA = 1
RUN_ID_LENGTH = 12


@dataclass(frozen=True)
class DatasetInfo:
    """What the grid needs to know of a dataset, read from headers only (no voxel data)."""

    root: str
    name: str
    fingerprint: str
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    test_source: str  # "imagesTs" or "test_fraction"
    depths: dict[str, int]  # slices per training case (canonical axis 0)
    classes: dict[str, int]


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def short_hash(data, length: int = RUN_ID_LENGTH) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:length]


def derived_seed(*parts) -> int:
    """A 32-bit seed that depends only on ``parts`` (stable across processes and machines)."""
    return int(hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:8], 16)


def run_id(spec: dict) -> str:
    return short_hash(spec)


def _canonical_depth(path: Path) -> int:
    """Slices along canonical axis 0, from the file header only."""
    import SimpleITK as sitk

    from slicebudget.volume import SourceGeometry

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UserError("cannot read image header", path) from exc
    size = reader.GetSize()[:3]
    geometry = SourceGeometry.from_header(reader.GetSpacing()[:3], reader.GetOrigin()[:3],
                                          _direction_3x3(reader.GetDirection(), reader.GetDimension()))
    source_shape = tuple(reversed(size))  # numpy (z, y, x)
    return int(source_shape[geometry.permutation[0]])


def _direction_3x3(direction: tuple[float, ...], dimension: int) -> tuple[float, ...]:
    if dimension == 3:
        return tuple(direction)
    rows = np.asarray(direction, dtype=float).reshape(dimension, dimension)
    return tuple(rows[:3, :3].ravel())


def _fingerprint(dataset) -> str:
    """Identity of a dataset: its description and the names and sizes of its files.

    Paths are relative to the dataset root, so moving the folder keeps the fingerprint.
    """
    meta_file = dataset.root / "dataset.json"
    meta = meta_file.read_text() if meta_file.exists() else ""
    files = []
    for case in (*dataset.cases, *dataset.test_cases):
        for path in (*case.images, case.label):
            if path is not None and path.exists():
                files.append([case.case_id, Path(path).name, path.stat().st_size])
    return short_hash({"meta": meta, "files": files}, 16)


def split_cases(dataset, test_fraction: float | None, seed: int) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(training ids, test ids, source). An explicit ``test_fraction`` holds out that share of the
    training cases (by seed); otherwise the labelled imagesTs cases are the test set."""
    train_ids = tuple(c.case_id for c in dataset.cases)
    if test_fraction is not None:
        n_test = max(1, math.floor(test_fraction * len(train_ids) + 0.5))
        if n_test >= len(train_ids):
            raise UserError(f"test_fraction {test_fraction} of {len(train_ids)} cases leaves no training case",
                            dataset.root)
        order = np.random.default_rng(derived_seed("test-split", seed)).permutation(len(train_ids))
        held = {train_ids[i] for i in order[:n_test]}
        return tuple(c for c in train_ids if c not in held), tuple(c for c in train_ids if c in held), "test_fraction"
    labelled = tuple(c.case_id for c in dataset.test_cases if c.label is not None)
    if not labelled:
        raise UserError("no labelled test cases (imagesTs + labelsTs); set `test_fraction` in the study config "
                        "to hold out part of the training cases", dataset.root)
    return train_ids, labelled, "imagesTs"


def describe_dataset(path: str | Path, test_fraction: float | None, seed: int) -> DatasetInfo:
    from slicebudget.io import open_dataset

    dataset = open_dataset(path)
    train_ids, test_ids, source = split_cases(dataset, test_fraction, seed)
    depths = {cid: _canonical_depth(dataset.case(cid).images[0]) for cid in train_ids}
    meta_file = dataset.root / "dataset.json"
    name = dataset.root.name
    if meta_file.exists():
        name = json.loads(meta_file.read_text()).get("name", name)
    return DatasetInfo(str(dataset.root), str(name), _fingerprint(dataset), train_ids, test_ids, source,
                       depths, dict(dataset.classes))


def n_chosen_volumes(n_total: int, volume_fraction: float) -> int:
    """Volumes a fraction s stands for, by the selection allocator's own rule."""
    from slicebudget.selection import n_volumes_for_fraction

    return n_volumes_for_fraction(n_total, volume_fraction)


def n_slices(depth: int, density: float) -> int:
    """Slices a density rho stands for in a volume, by the selection allocator's own rule."""
    from slicebudget.selection import n_slices_for_density

    return n_slices_for_density(depth, density)


def check_feasible(config: StudyConfig, n_total: int, shallowest: int, source: str | Path | None = None) -> None:
    """Refuse, before any training, a grid that asks for more than the data holds.

    A density always yields at least one slice and never more than a volume has, so only the
    volume count and empty volumes can make a grid impossible.
    """
    for s in config.volume_fractions:
        if s * n_total < 1:
            raise UserError(f"volume_fractions: {s} of {n_total} training volumes is less than one volume; "
                            f"the smallest usable fraction here is {1 / n_total:.3g}", source)
    if shallowest < 1:
        raise UserError("a training volume has no slices", source)


def _selection_key(info: DatasetInfo, repeat: int, seed: int) -> list:
    return [info.fingerprint, int(repeat), int(seed)]


def make_spec(config: StudyConfig, info: DatasetInfo, model_index: int, density: float, fraction: float,
              policy: str | dict, interpolation: str, repeat: int) -> dict:
    model = config.models[model_index]
    key = _selection_key(info, repeat, config.seed)
    n_total = len(info.train_ids)
    return {
        "schema": SPEC_SCHEMA,
        "dataset": {"name": info.name, "fingerprint": info.fingerprint},
        "split": {"train": list(info.train_ids), "test": list(info.test_ids), "source": info.test_source},
        "classes": dict(info.classes),
        "density": float(density),
        "volume_fraction": float(fraction),
        "policy": policy,
        "repeat": int(repeat),
        "interpolation": interpolation,
        "is_dense_baseline": bool(density >= 1.0 and fraction >= 1.0),
        "selection_seed": derived_seed("selection", *key),
        "train_seed": derived_seed("training", *key),
        "n_volumes": n_chosen_volumes(n_total, fraction),
        "n_volumes_total": n_total,
        "model": {**model.model_dump(mode="json"), "display_name": model.display_name},
        "training": _training_json(config),
    }


def _training_json(config: StudyConfig) -> dict:
    # unset sampling is left out, so the run ids of studies written before it existed stay the same
    training = config.training.model_dump(mode="json")
    if training.get("sampling") is None:
        training.pop("sampling", None)
    return training


def expand_grid(config: StudyConfig, info: DatasetInfo) -> list[tuple[str, dict]]:
    """Every run of the study as (run_id, spec), in the order they should execute.

    Repeat is the outer loop, so a study stopped halfway already holds complete repeats; the dense
    baseline (rho = s = 1, fixed policy, no interpolation) leads each repeat. Duplicates (a grid
    that already contains rho = s = 1) collapse to one run.
    """
    check_feasible(config, len(info.train_ids), min(info.depths.values()))
    runs: dict[str, dict] = {}
    for repeat in range(config.repeats):
        for m in range(len(config.models)):
            if config.dense_baseline:
                spec = make_spec(config, info, m, 1.0, 1.0, "fixed", OFF, repeat)
                runs.setdefault(run_id(spec), spec)
            for interpolation in config.interpolation:
                for density in config.densities:
                    for fraction in config.volume_fractions:
                        for policy in config.policies:
                            spec = make_spec(config, info, m, density, fraction, policy, interpolation, repeat)
                            runs.setdefault(run_id(spec), spec)
    return list(runs.items())
