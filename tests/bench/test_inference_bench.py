from __future__ import annotations

from slicebudget.cli.main import main
from slicebudget.models.nmsw import build_nmsw_model, save_nmsw
from slicebudget.bench.inference import k_values, target_checks


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
