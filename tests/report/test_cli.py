from __future__ import annotations

import json

from slicebudget.cli.main import main


def test_folder_without_study_is_one_error_line_and_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {tmp_path}:") and "study.sqlite not found" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_missing_folder_is_one_error_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such study folder"


def test_damaged_store_is_one_error_line(tmp_path, capsys):
    (tmp_path / "study.sqlite").write_bytes(b"this is not a database" * 100)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def _spec(model, dims, rho, s, policy, repeat):
    return {"model": {"name": model, "dims": dims, "display_name": model}, "policy": policy,
            "density": rho, "volume_fraction": s, "repeat": repeat, "interpolation": "off",
            "is_dense_baseline": rho == 1.0 and s == 1.0, "n_volumes": round(8 * s), "n_volumes_total": 8}


def test_report_from_a_real_study_store(tmp_path, capsys):
    from slicebudget.study.store import StudyStore

    grid = [(rho, s, policy, repeat) for repeat in (0, 1) for (rho, s) in ((0.25, 1.0), (0.5, 0.5))
            for policy in ("fixed", "random")]
    specs = [(f"run{i:02d}", _spec("unet", 2, *config)) for i, config in enumerate(grid)]
    with StudyStore(tmp_path, create=True) as store:
        store.sync_grid(specs)
        for i, (run_id, spec) in enumerate(specs):
            if i == 3:
                store.mark_failed(run_id, "CUDA out of memory")
                continue
            iou = 0.6 + 0.1 * spec["volume_fraction"] + 0.001 * i
            store.mark_done(run_id, {"metrics": {"iou": iou, "dice": iou, "hd95": 3.0, "surface_dice": iou,
                                                 "val_dice": float("nan")},
                                     "slices_per_volume": 4.0 * spec["density"] / 0.25,
                                     "budget_slices": 32, "seconds_train": 5.0, "seconds_infer_per_case": 0.2})
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # two budget cells cannot carry a surface: the command says so instead of planning
    assert "no budget surface: too few finished runs" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["runs"]) == len(specs)
    assert [r["budget_slices"] for r in summary["recommendations"]] == [32]
    assert summary["recommendations"][0]["volume_fraction"] == 1.0
    assert "CUDA out of memory" in (tmp_path / "report.html").read_text()
