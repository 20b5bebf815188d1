"""Shared pieces of the study-runner tests: a tiny phantom dataset, config files, a fake executor."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Four 8 x 32 x 32 organ phantoms for training and one dense test case."""
    from slicebudget.data.phantoms import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "organ", "organ", cases=4, test_cases=1,
                                 shape=(8, 32, 32), seed=0)


def base_config(dataset: Path | dict) -> dict:
    return {
        "version": 1,
        "dataset": str(dataset) if isinstance(dataset, Path) else dataset,
        "densities": [0.25, 0.5],
        "volume_fractions": [0.5, 1.0],
        "policies": ["fixed", "random"],
        "interpolation": ["off"],
        "models": [{"name": "unet", "encoder": "resnet18", "dims": 2}],
        "training": {"iterations": 5, "batch_size": 4, "learning_rate": 0.001, "val_every": 5},
        "repeats": 1,
        "seed": 0,
    }


@pytest.fixture
def write_config(tmp_path, tiny_dataset):
    """write_config(**overrides) -> path of a study YAML in a fresh folder."""

    def write(name: str = "study.yaml", **overrides) -> Path:
        data = {**base_config(tiny_dataset), **overrides}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


class FakeExecute:
    """Stands in for execute_run: writes a marker artifact and returns plausible results instantly.

    ``raise_for(spec, call_number)`` may return an exception to raise for that call.
    """

    def __init__(self, raise_for=None, select: bool = False):
        self.calls: list[str] = []
        self.raise_for = raise_for
        self.select = select

    def __call__(self, spec: dict, dataset_path: str, run_dir: str, on_progress=None) -> dict:
        from slicebudget.study.grid import run_id

        self.calls.append(run_id(spec))
        if self.raise_for is not None:
            exc = self.raise_for(spec, len(self.calls))
            if exc is not None:
                raise exc
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "marker.txt").write_text(spec["policy"])
        budget = None
        if self.select:
            from slicebudget.study.execute_run import select_for_run, write_selection

            plan = select_for_run(spec, dataset_path)
            write_selection(plan, run_dir)
            budget = plan.budget
        if on_progress is not None:
            on_progress({"stage": "train", "iteration": 1, "iterations": 1, "loss": 0.5})
        return {
            "metrics": {"iou": spec["density"] * spec["volume_fraction"], "dice": 0.5, "hd95": 1.0,
                        "surface_dice": 0.5, "organ_iou": 0.4, "val_dice": float("nan")},
            "n_volumes": spec["n_volumes"],
            "n_volumes_total": spec["n_volumes_total"],
            "budget_slices": budget,
            "slices_per_volume": None,
            "interp_iou": None,
            "seconds_train": 0.01,
            "seconds_infer_per_case": 0.001,
        }
