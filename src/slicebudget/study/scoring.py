"""How a run's trained model meets the test cases: the 3D inferer it is applied with, prediction,
the metrics per case, and the record of what predicted.

The inferer is built in the train stage (an NMSW inferer trains a network of its own there); the
score stage (:func:`score`) uses it on every dense test case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.study.prepared import PreparedDataset
from slicebudget.study.run_spec import RunSpec

ProgressFn = Callable[[dict], None]
METRICS = ("iou", "dice", "hd95", "surface_dice")


def inferer_for_run(spec: RunSpec, model, train_cases: list, run_dir: Path):
    """The inferer for 3D test volumes (None for 2D: predict_case goes slice by slice).

    An inferer that needs an NMSW model (NMSW, random foreground) gets its own global network,
    trained here around the already trained backbone, which stays frozen (``train_local=False``),
    so it learns only where to look and how to blend. The config's settings are handed to the
    inferer where its ``build`` takes them. Returns (inferer, NMSW training facts or None, seconds
    spent training NMSW).
    """
    from slicebudget.inference import build_inferer, get_inferer_class, inferer_parameters

    if spec.model.dims == 2:
        return None, None, 0.0
    inference, training = spec.model.inference, spec.training
    patch = tuple(spec.model.patch_size)
    network, facts, seconds = model, None, 0.0
    if get_inferer_class(inference.name).needs_nmsw_model:
        from slicebudget.models.nmsw import build_nmsw_model, save_nmsw
        from slicebudget.training.nmsw import train_nmsw_recipe

        nmsw = build_nmsw_model(spec.model.name, train_cases[0].image.shape[0], spec.n_classes, patch,
                                backbone_params=spec.model.factory_params, local_net=model,
                                overlap=inference.overlap)
        trained = train_nmsw_recipe(nmsw, train_cases, inference.iterations or training.iterations,
                                    seed=spec.train_seed, device=training.device)
        save_nmsw(trained.model, run_dir / "nmsw.pt", trained.training)
        network, facts, seconds = trained.model, trained.training, float(trained.seconds)
    offered = {"overlap": inference.overlap, "k": inference.k, "batch_size": training.batch_size}
    params = {key: value for key, value in offered.items() if key in inferer_parameters(inference.name)}
    return build_inferer(inference.name, network, patch, **params), facts, seconds


@dataclass(frozen=True)
class Scores:
    per_case: dict[str, dict[str, float]]  # case id -> metrics (per class, and their means)
    seconds: float  # wall seconds of inference, all test cases together
    cpu_seconds: float  # CPU seconds of this process for the same
    backbone_inputs: dict[str, int]  # case id -> inputs the backbone was fed (see count_inputs)


def score(spec: RunSpec, prepared: PreparedDataset, model, inferer, run_dir: Path, notify: ProgressFn) -> Scores:
    """4. Predict every dense test case with ``model`` (through ``inferer`` for 3D) and score it;
    writes results.csv."""
    from slicebudget.metrics import case_metrics, write_results_csv
    from slicebudget.models.predict import predict_case

    patch = tuple(spec.model.patch_size) if spec.model.patch_size else None
    per_case, infer_seconds, infer_cpu, fed = {}, 0.0, 0.0, {}
    test_ids = spec.split.test
    for index, case_id in enumerate(test_ids):
        notify({"stage": "infer", "case": index + 1, "cases": len(test_ids)})
        data = prepared.case(case_id)
        t0, cpu0 = time.perf_counter(), time.process_time()
        with count_inputs(model) as counted:
            probabilities = predict_case(model, data.image, spec.model.dims, patch,
                                         batch_size=spec.training.batch_size, inferer=inferer)
        prediction = probabilities.argmax(axis=0).astype(data.label.dtype, copy=False)
        infer_seconds += time.perf_counter() - t0
        infer_cpu += time.process_time() - cpu0
        fed[case_id] = counted[0]
        per_case[case_id] = case_summary(case_metrics(prediction, data.label, data.spacing, spec.classes),
                                         list(spec.classes))
    write_results_csv(run_dir / "results.csv", per_case)
    return Scores(per_case, infer_seconds, infer_cpu, fed)


def case_summary(metrics: dict[str, float], class_names: list[str]) -> dict[str, float]:
    """Per-case means over foreground classes, added beside the per-class values."""
    out = dict(metrics)
    for m in METRICS:
        values = [metrics[f"{c}_{m}"] for c in class_names]
        out[m] = float(np.mean(values))
    return out


@contextmanager
def count_inputs(network):
    """Count the inputs (patches, windows or slices) the trained backbone is fed inside the block:
    ``with count_inputs(model) as counted: ...`` then ``counted[0]``. Measured, not taken from the
    config, so a run that says NMSW but slid a window over the volume shows it."""
    counted = [0]

    def hook(_module, inputs, _output):
        counted[0] += int(inputs[0].shape[0])

    handle = network.register_forward_hook(hook)
    try:
        yield counted
    finally:
        handle.remove()


def prediction_record(inferer, backbone_inputs: dict[str, int], nmsw_training: dict | None) -> dict:
    """Which inferer produced the run's predictions (``slices`` for a 2D model), its K, how many
    inputs the backbone was fed per test case, and the NMSW training recipe when one was trained."""
    from slicebudget.inference import registered_name

    name = "slices" if inferer is None else registered_name(inferer)
    return {"inferer": name, "k": getattr(inferer, "k", None), "backbone_inputs": backbone_inputs,
            "nmsw_training": nmsw_training}
