"""A study config on the tiny phantom with a 4 x 4 grid, and an executor that returns IoU from a known
budget surface (per test case, in results.csv) without training, for the adaptive runner's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from slicebudget.data.phantoms import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "organ", "organ", cases=4, test_cases=1,
                                 shape=(8, 32, 32), seed=0)


@pytest.fixture
def adaptive_config(tmp_path, tiny_dataset):
    def write(name: str = "study.yaml", **overrides) -> Path:
        data = {
            "version": 1, "dataset": str(tiny_dataset),
            "densities": [0.125, 0.25, 0.5, 0.75], "volume_fractions": [0.25, 0.5, 0.75, 1.0],
            "policies": ["fixed"], "interpolation": ["off"],
            "models": [{"name": "unet", "encoder": "resnet18", "dims": 2}],
            "training": {"iterations": 5, "batch_size": 4, "learning_rate": 0.001, "val_every": 5},
            "repeats": 3, "seed": 0, "dense_baseline": False, **overrides,
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


SURFACE_EXECUTE = '''
def surface_execute(spec, dataset_path, run_dir, on_progress=None):
    """IoU 0.85 - 0.3 n^-0.8 - 0.3 k^-0.7 plus a repeat effect, on 4 pseudo test cases."""
    import numpy as np
    from pathlib import Path
    from slicebudget.metrics import write_results_csv
    from slicebudget.study.grid import n_slices

    n, k = spec["n_volumes"], n_slices(8, spec["density"])
    rng = np.random.default_rng(spec["repeat"] * 1000 + int(spec["density"] * 100) + 7 * n)
    mean = 0.85 - 0.3 * n ** -0.8 - 0.3 * k ** -0.7 + rng.normal(0, 0.01)
    cases = {f"case_{i}": {"iou": float(mean + (i - 1.5) * 0.02)} for i in range(4)}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_results_csv(Path(run_dir) / "results.csv", cases)
    return {"metrics": {"iou": float(mean)}, "n_volumes": n, "n_volumes_total": spec["n_volumes_total"],
            "budget_slices": n * k, "slices_per_volume": float(k), "interp_iou": None,
            "seconds_train": 0.01, "seconds_infer_per_case": 0.001}
'''
namespace: dict = {}
exec(SURFACE_EXECUTE, namespace)
surface_execute = namespace["surface_execute"]
