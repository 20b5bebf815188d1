"""One run end to end, in four stages: select -> label (sparse, optionally propagated) -> train -> score.

:func:`execute_run` is a pure function of (run spec, dataset folder, run folder): it writes the
run's artifacts into ``run_dir``, a private scratch folder (never the study folder: the executor
packs what lands there and the driver writes it, see :mod:`slicebudget.study.product`), and returns
a plain result dict, so a Dask worker can run it with nothing but its arguments. It raises on
failure (``TrainingDiverged`` for a NaN loss); the runner records the message. The spec arrives as JSON and is read as a typed :class:`RunSpec`.

Choices worth knowing:

- Normalisation: one MIST-style normalisation per dataset, fitted on the training cases only and
  kept with the normalised cases between runs (:mod:`slicebudget.study.prepared`).
- Validation (model selection) uses annotated data only: ``round(val_fraction * n_chosen)`` of the
  chosen volumes (at most all but one; none when only one volume is chosen) are held out, drawn with
  the run's training seed, so paired runs hold out the same volumes. A held-out volume is scored on
  the stack of its annotated slices with their true labels (what the annotator drew). Its slices
  still count in the budget: they were annotated. Without a validation volume the final weights
  are kept.
- Interpolation: training volumes' sparse labels are propagated to every slice, the model trains on
  the dense result, and ``interp_iou`` is the IoU (pooled voxels per class, mean over classes) of
  the propagated masks against the dense truth on the slices that were not annotated;
  ``interp_provenance`` says where those masks came from and how sure the calibrated confidence was
  of them (:func:`slicebudget.propagation.summary.provenance_summary`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.study.choices import OFF, policy_parts
from slicebudget.study.prepared import PROCESS_CACHE, DatasetCache, FirstChannel, PreparedDataset
from slicebudget.study.run_spec import RunSpec
from slicebudget.study.scoring import ProgressFn, inferer_for_run, prediction_record, score
from slicebudget.study.store import json_safe

CHECKPOINTS = ("model.pt", "nmsw.pt")  # shipped back and kept only when a study asks for them


def propagation_settings(spec: RunSpec, prepared: PreparedDataset) -> tuple[str, dict]:
    """(method, parameters) of the run's interpolation; a model file is checked against the image
    channels. ``model=adapt`` never reaches a run: the study runner adapts the model once, in the
    driver, and ships the file with each task (see :func:`slicebudget.study.tasks.worker_task`)."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.propagation.sli2vol.model_io import check_model_channels
    from slicebudget.study.adapt import ADAPT

    method, params = parse_method_spec(spec.interpolation)
    if params.get("model") == ADAPT:
        raise ValueError("interpolation model=adapt must be resolved by the study runner before the run")
    if "model" in params:
        check_model_channels(params["model"], len(prepared.normalizations))
    return method, params


def hold_out_validation(chosen: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training volumes, validation volumes) among the chosen ones; see the module docstring."""
    n_val = min(len(chosen) - 1, int(np.floor(fraction * len(chosen) + 0.5)))
    if n_val <= 0:
        return list(chosen), []
    order = np.random.default_rng([seed, 7]).permutation(len(chosen))
    held = {chosen[i] for i in order[:n_val]}
    return [c for c in chosen if c not in held], [c for c in chosen if c in held]


def interpolation_iou(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], class_ids: list[int]) -> float | None:
    """Pooled IoU per class of (propagated, truth) on unannotated slices; mean over classes."""
    from slicebudget.metrics import pooled_class_iou

    if not any((~a).any() for _, _, a in pairs):
        return None  # every slice annotated: nothing was interpolated
    return pooled_class_iou([(propagated[~annotated], truth[~annotated]) for propagated, truth, annotated in pairs],
                            class_ids)


def select_for_run(spec: RunSpec | dict, dataset_path: str, cache: DatasetCache | None = None):
    """The run's SelectionPlan (volumes and slices to annotate); a pure function of the spec."""
    from slicebudget.selection import get_policy, plan_selection

    spec = RunSpec.of(spec)
    prepared = (cache or PROCESS_CACHE).get(dataset_path, spec)
    name, params, scope = policy_parts(spec.policy)
    return plan_selection(FirstChannel(prepared, spec.split.train), get_policy(name, **params), spec.density,
                          spec.volume_fraction, seed=spec.selection_seed, scope=scope)


def write_selection(plan, run_dir: Path) -> None:
    (run_dir / "selection.json").write_text(json.dumps(plan.to_json(), indent=1, sort_keys=True) + "\n")


# ---- the four stages -------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    plan: object  # slicebudget.selection.SelectionPlan
    chosen: list[str]
    train_volumes: list[str]
    val_volumes: list[str]


@dataclass(frozen=True)
class Labels:
    train_cases: list  # TrainingCase: sparse, or dense where propagated
    val_cases: list  # EvalCase: the annotated slices of held-out volumes with their true labels
    interp_iou: float | None
    interp_provenance: dict | None = None  # slicebudget.propagation.summary.provenance_summary


@dataclass(frozen=True)
class Trained:
    model: object  # the trained backbone (eval mode)
    inferer: Callable | None  # for 3D test volumes; None for 2D
    history: list[dict]
    best_val_dice: float
    seconds: float  # backbone and NMSW training together
    nmsw_training: dict | None = None  # the NMSW recipe's facts, when the inferer needed one


def select(spec: RunSpec, dataset_path: str, cache: DatasetCache, run_dir: Path, notify: ProgressFn) -> Selection:
    """1. Which volumes and slices are annotated (paired: the seed depends on dataset and repeat only)."""
    notify({"stage": "select"})
    plan = select_for_run(spec, dataset_path, cache)
    write_selection(plan, run_dir)
    chosen = sorted(plan.chosen)
    train_volumes, val_volumes = hold_out_validation(chosen, spec.training.val_fraction, spec.train_seed)
    return Selection(plan, chosen, train_volumes, val_volumes)


def label(spec: RunSpec, prepared: PreparedDataset, selection: Selection, notify: ProgressFn) -> Labels:
    """2. Sparse labels cut from the dense truth, optionally propagated to every slice."""
    from slicebudget.training import EvalCase, TrainingCase
    from slicebudget.volume import SparseAnnotation

    interpolate = spec.interpolation != OFF
    if interpolate:
        from slicebudget.propagation import propagate

        # once per run, not per volume: the check loads the model file
        method, params = propagation_settings(spec, prepared)
    train_cases, propagated = [], []
    for case_id in selection.train_volumes:
        data = prepared.case(case_id)
        annotation = SparseAnnotation.from_dense(data.label, selection.plan.chosen[case_id])
        if interpolate:
            notify({"stage": "interpolate", "case": case_id})
            result = propagate(data.image[0], annotation, method=method, device=spec.training.device, **params)
            propagated.append((result, data.label, annotation.annotated))
            annotation = SparseAnnotation(result.labels.astype(data.label.dtype, copy=False),
                                          np.ones(data.label.shape[0], dtype=bool))
        train_cases.append(TrainingCase(case_id, data.image, annotation))
    val_cases = []
    for case_id in selection.val_volumes:
        data = prepared.case(case_id)
        rows = np.asarray(selection.plan.chosen[case_id], dtype=int)
        val_cases.append(EvalCase(case_id, data.image[:, rows], data.label[rows], data.spacing))
    if not interpolate:
        return Labels(train_cases, val_cases, None)
    from slicebudget.propagation.summary import provenance_summary

    pairs = [(result.labels, truth, annotated) for result, truth, annotated in propagated]
    return Labels(train_cases, val_cases, interpolation_iou(pairs, spec.class_ids), provenance_summary(propagated))


def train(spec: RunSpec, prepared: PreparedDataset, labels: Labels, run_dir: Path, notify: ProgressFn) -> Trained:
    """3. The registered model, initialised from the run's training seed (paired across policies),
    trained on the labels; then, for 3D, its inferer (see :func:`~slicebudget.study.scoring.inferer_for_run`)."""
    import torch

    from slicebudget.models import create_model
    from slicebudget.training import TrainSpec, train_model

    dims, training = spec.model.dims, spec.training
    patch = tuple(spec.model.patch_size) if spec.model.patch_size else None
    train_spec = TrainSpec(
        iterations=training.iterations, batch_size=training.batch_size,
        learning_rate=training.learning_rate, val_every=training.val_every, seed=spec.train_seed,
        device=training.device, augment=training.augment,
        patch_size=patch if dims == 3 else None, slice_size=patch if dims == 2 else None,
        **({"sampling": training.sampling} if training.sampling else {}),
    )
    in_channels = labels.train_cases[0].image.shape[0]
    model = create_model(spec.model.name, dims, in_channels, spec.n_classes, seed=spec.train_seed,
                         weights_path=spec.model.weights_path, **spec.model.factory_params)
    trained = train_model(model, labels.train_cases, labels.val_cases, train_spec, dims, spec.n_classes,
                          on_progress=lambda p: notify({"stage": "train", **p}))
    torch.save({"state_dict": trained.model.state_dict(), "model": spec.model.model_dump(mode="json", by_alias=True),
                "in_channels": in_channels, "n_classes": spec.n_classes,
                "normalization": [n.model_dump(mode="json") for n in prepared.normalizations]},
               run_dir / "model.pt")
    inferer, nmsw_training, nmsw_seconds = inferer_for_run(spec, trained.model, labels.train_cases, run_dir)
    return Trained(trained.model, inferer, trained.history, float(trained.best_val_dice),
                   float(trained.seconds) + nmsw_seconds, nmsw_training)


def execute_run(spec: RunSpec | dict, dataset_path: str, run_dir: str, on_progress: ProgressFn | None = None,
                cache: DatasetCache | None = None, checkpoints: bool = False) -> dict:
    """Run one grid point; write artifacts into ``run_dir``; return the result dict for the store.

    ``cache``: where prepared datasets are kept between runs (default: this process's cache).
    ``checkpoints``: keep the trained weights (``CHECKPOINTS``) among the artifacts.
    """
    from slicebudget.metrics import summarize

    spec = RunSpec.of(spec)
    cache = cache or PROCESS_CACHE
    notify = on_progress or (lambda _info: None)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    prepared = cache.get(dataset_path, spec)

    selection = select(spec, dataset_path, cache, run_dir, notify)
    labels = label(spec, prepared, selection, notify)
    train_cpu = time.process_time()
    trained = train(spec, prepared, labels, run_dir, notify)
    train_cpu = time.process_time() - train_cpu
    scores = score(spec, prepared, trained.model, trained.inferer, run_dir, notify)

    budget = selection.plan.budget
    chosen = selection.chosen
    result = {
        "metrics": {**summarize(scores.per_case), "val_dice": trained.best_val_dice},
        "n_volumes": len(chosen),
        "n_volumes_total": len(spec.split.train),
        "n_train_volumes": len(selection.train_volumes),
        "n_val_volumes": len(selection.val_volumes),
        "budget_slices": int(budget),
        "slices_per_volume": budget / len(chosen) if chosen else 0.0,
        "interp_iou": labels.interp_iou,
        "interp_provenance": labels.interp_provenance,
        "seconds_train": trained.seconds,
        "seconds_infer_per_case": scores.seconds / max(len(spec.split.test), 1),
        # CPU seconds of this process: on a shared machine, wall seconds measure the neighbours too
        "cpu_seconds_train": train_cpu,
        "cpu_seconds_infer_per_case": scores.cpu_seconds / max(len(spec.split.test), 1),
        "seconds_total": time.perf_counter() - started,
        "prediction": prediction_record(trained.inferer, scores.backbone_inputs, trained.nmsw_training),
    }
    record = json_safe({"spec": spec.to_json(), "result": result, "history": trained.history})
    (run_dir / "run.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if not checkpoints:  # the stages save them as they go (into scratch); dropping them here keeps one save path
        for name in CHECKPOINTS:
            (run_dir / name).unlink(missing_ok=True)
    return result
