from __future__ import annotations

import pytest

from slicebudget.cli.main import main
from slicebudget.models.nmsw import build_nmsw_model, save_nmsw
from slicebudget.bench.inference import k_values, paired_nmsw_rf, target_checks
from slicebudget.bench.inference_methods import BenchSetup, train_bench_model

from ..conftest import RECIPE_KEYS, recipe_facts  # noqa: TID252


def test_unknown_task_is_one_line_error(capsys):
    assert main(["bench", "inference", "--task", "liver"]) == 2
    err = capsys.readouterr().err
    assert "unknown phantom task 'liver'" in err and "Traceback" not in err


def test_checkpoint_from_elsewhere_is_refused(tmp_path, capsys):
    model = build_nmsw_model("unet3d", 1, 3, (24, 40, 40), {"base_channels": 2, "depth": 2})
    path = save_nmsw(model, tmp_path / "other.pt", {"task": "lesion", "volume_shape": [48, 128, 128]})
    assert main(["bench", "inference", "--checkpoint", str(path)]) == 2
    assert "checkpoint was made for task 'lesion'" in capsys.readouterr().err


def test_k_values_and_target_checks():
    assert k_values(108) == [3, 5, 10, 16, 108]
    assert k_values(4) == [1, 3, 4]  # 15% of 4 rounds to 1
    rows = [
        {"method": "sw", "k": None, "seconds": 10.0, "macs": 1000, "peak_mb": 50, "dice": 0.90},
        {"method": "nmsw", "k": 5, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dice": 0.80},
        {"method": "rf", "k": 5, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dice": 0.85},
        {"method": "nmsw", "k": 16, "seconds": 2.0, "macs": 200, "peak_mb": 60, "dice": 0.89},
    ]
    checks = dict(target_checks({"n_patches": 108, "rows": rows}))
    assert [met for text, met in checks.items() if "faster" in text] == [True]
    assert [met for text, met in checks.items() if "fewer MACs" in text] == [True]
    assert [met for text, met in checks.items() if ">= RF" in text] == [False]
    assert [met for text, met in checks.items() if "within 0.02" in text] == [True]
    assert [met for text, met in checks.items() if "peak memory" in text] == [True, False]
    # Speed is judged on CPU seconds when a report has them (wall seconds carry the machine's load).
    loaded = [{**row, "cpu_seconds": 3.0 if row["method"] == "sw" else 1.0} for row in rows]
    checks = dict(target_checks({"n_patches": 108, "rows": loaded}))
    assert [met for text, met in checks.items() if "faster" in text] == [False]


def test_paired_interval_decides_nmsw_against_rf():
    """NMSW beats RF only when the per-volume paired difference's interval lies above zero."""
    rows = [
        {"method": "sw", "k": None, "seconds": 10.0, "macs": 1000, "peak_mb": 50, "dice": 0.9},
        {"method": "nmsw", "k": 3, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dices": [0.6, 0.7, 0.8, 0.5]},
        {"method": "rf", "k": 3, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dices": [0.5, 0.6, 0.7, 0.45]},
        {"method": "nmsw", "k": 5, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dices": [0.6, 0.7, 0.8, 0.5]},
        {"method": "rf", "k": 5, "seconds": 1.0, "macs": 100, "peak_mb": 40, "dices": [0.7, 0.5, 0.9, 0.4]},
    ]
    for row in rows[1:]:
        row["dice"] = sum(row["dices"]) / 4
    paired = paired_nmsw_rf(rows)
    assert [p["k"] for p in paired] == [3, 5] and paired[0]["n"] == 4
    assert paired[0]["diff"] == pytest.approx(0.0875) and paired[0]["ci"][0] > 0
    assert paired[1]["diff"] == pytest.approx(0.025) and paired[1]["ci"][0] < 0 < paired[1]["ci"][1]
    checks = dict(target_checks({"n_patches": 108, "rows": rows, "paired": paired}))
    assert [met for text, met in checks.items() if "beyond the interval" in text] == [True, False]


def test_bench_trains_nmsw_with_the_study_recipe():
    """The benchmark's NMSW is trained by the same function, with the same settings, as a study's
    (tests/study/test_every_model.py checks the study side against the same facts)."""
    setup = BenchSetup(task="lesion", volume_shape=(16, 32, 32), patch_size=(8, 16, 16),
                       local_params={"base_channels": 2, "depth": 2}, global_params={"base_channels": 2, "depth": 2},
                       train_seeds=(0, 1), test_seeds=(1000,))
    _, facts = train_bench_model(setup, iterations=2, on_stage=lambda text: None)
    assert {key: facts[key] for key in RECIPE_KEYS} == recipe_facts(iterations=2)


def test_bad_k_list_is_one_line_error(capsys):
    assert main(["bench", "inference", "--task", "lesion", "--k", "3,x"]) == 2
    err = capsys.readouterr().err
    assert "--k takes whole numbers of patches >= 1" in err and "Traceback" not in err
