"""`budget-study sparsify`: a sparse nnU-Net v2 dataset that nnU-Net accepts, plus its manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicebudget.cli.main import main
from slicebudget.io import open_dataset, read_labels, read_volume
from slicebudget.selection import SelectionPlan
from slicebudget.volume import SparseAnnotation


def sparsify(capsys, dataset, out, *extra):
    args = ["sparsify", str(dataset), "--out", str(out), "--density", "0.25", "--volume-fraction", "0.6", "--seed", "1"]
    code = main([*args, *map(str, extra)])
    return code, capsys.readouterr()


@pytest.mark.parametrize(("policy", "scope"), [("fixed", "volume"), ("coreset", "dataset")])
def test_sparsify_writes_a_valid_sparse_dataset(capsys, tmp_path, dense_dataset, policy, scope):
    out = tmp_path / "sparse"
    code, captured = sparsify(capsys, dense_dataset, out, "--policy", policy, "--scope", scope)
    assert code == 0, captured.err
    source, sparse = open_dataset(dense_dataset), open_dataset(out)

    manifest = json.loads((out / "selection.json").read_text())
    plan = SelectionPlan.from_json(manifest["plan"])
    assert plan.policy == policy and plan.scope == scope and len(plan.n_slices_total) == 3  # round(0.6 * 5)
    assert [c.case_id for c in sparse.cases] == sorted(plan.chosen)
    assert sparse.labels == {**source.labels, "ignore": max(source.labels.values()) + 1}
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == len(plan.chosen)

    for case_id, slices in plan.chosen.items():
        src_image = read_volume(source.case(case_id).images[0])
        out_image = read_volume(sparse.case(case_id).images[0])
        np.testing.assert_array_equal(out_image.array, src_image.array)
        assert out_image.geometry == src_image.geometry
        dense = read_labels(source.case(case_id).label).array
        decoded = SparseAnnotation.decode(read_labels(sparse.case(case_id).label).array, sparse.ignore_label)
        assert decoded.annotated_slices.tolist() == slices == manifest["cases"][case_id]["annotated_slices"]
        np.testing.assert_array_equal(decoded.labels[slices], dense[slices])

    # held-out cases are copied byte for byte
    for case in source.test_cases:
        assert (out / "imagesTs" / case.images[0].name).read_bytes() == case.images[0].read_bytes()
        assert (out / "labelsTs" / case.label.name).read_bytes() == case.label.read_bytes()


def test_sparse_dataset_passes_nnunet_integrity_check(capsys, tmp_path, dense_dataset):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    out = tmp_path / "sparse"
    code, captured = sparsify(capsys, dense_dataset, out, "--policy", "random")
    assert code == 0, captured.err
    verify.verify_dataset_integrity(str(out), num_processes=1)


def test_same_seed_same_volumes_across_policies(capsys, tmp_path, dense_dataset):
    chosen = []
    for policy in ("fixed", "random"):
        out = tmp_path / policy
        assert sparsify(capsys, dense_dataset, out, "--policy", policy)[0] == 0
        chosen.append(sorted(json.loads((out / "selection.json").read_text())["plan"]["chosen"]))
    assert chosen[0] == chosen[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--density", "0"], "density must be in (0, 1]"),
        (["--density", "1.5"], "density must be in (0, 1]"),
        (["--volume-fraction", "0"], "volume fraction must be in (0, 1]"),
        (["--scope", "global"], "unknown scope"),
        (["--policy", "smart"], "unknown slice policy"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(capsys, tmp_path, dense_dataset, args, message):
    out = tmp_path / "sparse"
    code, captured = sparsify(capsys, dense_dataset, out, *args)
    assert code == 2 and captured.err.count("\n") == 1 and message in captured.err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_missing_dataset_and_existing_output(capsys, tmp_path, dense_dataset):
    missing = tmp_path / "nowhere"
    code, captured = sparsify(capsys, missing, tmp_path / "out")
    assert code == 2 and str(missing) in captured.err and captured.err.count("\n") == 1
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    code, captured = sparsify(capsys, dense_dataset, taken)
    assert code == 2 and "already exists" in captured.err and (taken / "keep.txt").read_text() == "mine"


def test_already_sparse_dataset_is_refused(capsys, tmp_path, dense_dataset):
    out = tmp_path / "sparse"
    assert sparsify(capsys, dense_dataset, out)[0] == 0
    code, captured = sparsify(capsys, out, tmp_path / "again")
    assert code == 2 and "ignore" in captured.err


def test_undeclared_label_value_is_reported(capsys, tmp_path, dense_dataset, write_voxel):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dense_dataset, copy)
    for label_file in sorted((copy / "labelsTr").glob("*.nii.gz")):
        write_voxel(label_file, (0, 0, 0), 9)
    code, captured = sparsify(capsys, copy, tmp_path / "out")
    assert code == 2 and "not declared" in captured.err and "labelsTr" in captured.err
