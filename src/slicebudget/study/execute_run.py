"""One run end to end: select -> sparse labels -> optional propagation -> train -> infer -> metrics.

:func:`execute_run` is a pure function of (run spec, dataset folder, run folder): it writes the
run's artifacts into ``run_dir`` and returns a plain result dict, so a Dask worker can run it with
nothing but its arguments. It raises on failure (``TrainingDiverged`` for a NaN loss); the runner
records the message.

Choices worth knowing:

- Normalisation: one MIST-style normalisation per dataset, fitted on the training cases (never the
  test cases), the same for every run so that runs differ only in what the grid varies. It is fitted
  once per process and cached, as are the normalised images (a study reuses them in every run).
- Validation (model selection) uses annotated data only: ``round(val_fraction * n_chosen)`` of the
  chosen volumes (at most all but one; none when only one volume is chosen) are held out, drawn with
  the run's training seed, so paired runs hold out the same volumes. A held-out volume is scored on
  the stack of its annotated slices with their true labels (what the annotator drew). Its slices
  still count in the budget: they were annotated. Without a validation volume the final weights
  are kept.
- Interpolation: training volumes' sparse labels are propagated to every slice, the model trains on
  the dense result, and ``interp_iou`` is the IoU (pooled voxels per class, mean over classes) of
  the propagated masks against the dense truth on the slices that were not annotated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from slicebudget.study.config import OFF
from slicebudget.study.store import json_safe

ProgressFn = Callable[[dict], None]
METRICS = ("iou", "dice", "hd95", "surface_dice")


@dataclass(frozen=True)
class CaseData:
    image: np.ndarray  # normalised (C, D, H, W) float32
    label: np.ndarray  # dense (D, H, W) ints
    spacing: tuple[float, float, float]


@dataclass(eq=False)
class PreparedDataset:
    """A dataset opened with its normalisation; cases are loaded and normalised once, on demand."""

    dataset: object
    normalizations: list
    cases_: dict[str, CaseData] = field(default_factory=dict)

    def case(self, case_id: str) -> CaseData:
        if case_id not in self.cases_:
            loaded = self.dataset.load_case(case_id)
            if loaded.label is None:
                raise ValueError(f"case {case_id} has no label file; a study needs dense labels")
            image = np.stack([n.apply(v.array) for n, v in zip(self.normalizations, loaded.images)])
            self.cases_[case_id] = CaseData(image.astype(np.float32, copy=False), np.asarray(loaded.label.array),
                                            tuple(float(s) for s in loaded.images[0].spacing))
        return self.cases_[case_id]


class _FirstChannel(Mapping):
    """case id -> normalised channel 0 (D, H, W), loaded lazily: what the selection policies see."""

    def __init__(self, prepared: PreparedDataset, case_ids):
        self._prepared, self._ids = prepared, list(case_ids)

    def __getitem__(self, case_id: str) -> np.ndarray:
        if case_id not in self._ids:
            raise KeyError(case_id)
        return self._prepared.case(case_id).image[0]

    def __iter__(self):
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@lru_cache(maxsize=2)
def prepare_dataset(dataset_path: str, fingerprint: str, train_ids: tuple[str, ...]) -> PreparedDataset:
    """Open and fit the normalisation once per process (the fingerprint keys the cache)."""
    from slicebudget.data.preprocess import fit_normalization
    from slicebudget.io import open_dataset

    dataset = open_dataset(dataset_path)
    train_cases = [dataset.case(cid) for cid in train_ids]
    norms = [fit_normalization(dataset, channel=c, cases=train_cases) for c in range(len(dataset.channel_names))]
    return PreparedDataset(dataset, norms)


def propagation_settings(spec: dict, prepared: PreparedDataset, run_dir: Path, device=None) -> tuple[str, dict]:
    """(method, parameters) of the run's interpolation: ``sli2vol:model=adapt`` gets the study's adapted
    model (see :mod:`slicebudget.study.adapt`), a model path is checked against the image channels."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.propagation.sli2vol.model_io import check_model_channels
    from slicebudget.study.adapt import ADAPT, adapted_model

    method, params = parse_method_spec(spec["interpolation"])
    n_channels = len(prepared.normalizations)
    if params.get("model") == ADAPT:
        study_dir = Path(run_dir).parent.parent  # runs run in STUDY_DIR/runs/<tmp folder>
        params["model"] = adapted_model(study_dir, lambda c: prepared.case(c).image[0], spec["split"]["train"],
                                        spec["dataset"]["fingerprint"], n_channels, device)
    elif "model" in params:
        check_model_channels(params["model"], n_channels)
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


def _inferer(model_cfg: dict, model, n_classes: int, train_cases: list, training: dict, seed: int,
             run_dir: Path):
    """The inferer for 3D test volumes (None for 2D: predict_case goes slice by slice).

    An inferer that needs an NMSW model (NMSW, random foreground) gets its own global network,
    trained here around the already trained backbone, which stays frozen (``train_local=False``),
    so it learns only where to look and how to blend. The config's settings are handed to the
    inferer where its ``build`` takes them. Returns (inferer, seconds spent training NMSW).
    """
    from slicebudget.inference import build_inferer, get_inferer_class, inferer_parameters

    if int(model_cfg["dims"]) == 2:
        return None, 0.0
    inference = model_cfg.get("inference", {})
    name = inference.get("name", "sliding_window")
    patch = tuple(model_cfg["patch_size"])
    network, seconds = model, 0.0
    if get_inferer_class(name).needs_nmsw_model:
        from slicebudget.inference.nmsw import build_nmsw_model, save_nmsw, train_nmsw

        params = dict(model_cfg.get("params", {}))
        if model_cfg.get("encoder"):
            params["encoder"] = model_cfg["encoder"]
        nmsw = build_nmsw_model(model_cfg["name"], train_cases[0].image.shape[0], n_classes, patch,
                                backbone_params=params, local_net=model, overlap=inference.get("overlap", 0.5))
        trained = train_nmsw(nmsw, train_cases, inference.get("iterations") or training["iterations"],
                             learning_rate=training["learning_rate"], train_local=False, seed=seed,
                             device=training.get("device"))
        save_nmsw(trained.model, run_dir / "nmsw.pt", trained.training)
        network, seconds = trained.model, float(trained.seconds)
    offered = {"overlap": inference.get("overlap", 0.5), "k": inference.get("k", 10), "batch_size": training["batch_size"]}
    params = {key: value for key, value in offered.items() if key in inferer_parameters(name)}
    return build_inferer(name, network, patch, **params), seconds


def _build_model(model_cfg: dict, in_channels: int, n_classes: int, seed: int):
    """The registered model, initialised from the run's training seed (paired across policies)."""
    from slicebudget.models import create_model

    params = dict(model_cfg.get("params", {}))
    if model_cfg.get("encoder"):
        params["encoder"] = model_cfg["encoder"]
    return create_model(model_cfg["name"], int(model_cfg["dims"]), in_channels, n_classes, seed=seed,
                        weights_path=model_cfg.get("weights_path"), **params)


def _case_summary(metrics: dict[str, float], class_names: list[str]) -> dict[str, float]:
    """Per-case means over foreground classes, added beside the per-class values."""
    out = dict(metrics)
    for m in METRICS:
        values = [metrics[f"{c}_{m}"] for c in class_names]
        out[m] = float(np.mean(values))
    return out


def select_for_run(spec: dict, dataset_path: str):
    """The run's SelectionPlan (volumes and slices to annotate); a pure function of the spec."""
    from slicebudget.selection import plan_selection

    train_ids = tuple(spec["split"]["train"])
    prepared = prepare_dataset(str(dataset_path), spec["dataset"]["fingerprint"], train_ids)
    return plan_selection(_FirstChannel(prepared, train_ids), spec["policy"], spec["density"],
                          spec["volume_fraction"], seed=int(spec["selection_seed"]))


def write_selection(plan, run_dir: Path) -> None:
    (run_dir / "selection.json").write_text(json.dumps(plan.to_json(), indent=1, sort_keys=True) + "\n")


def execute_run(spec: dict, dataset_path: str, run_dir: str, on_progress: ProgressFn | None = None) -> dict:
    """Run one grid point; write artifacts into ``run_dir``; return the result dict for the store."""
    import torch

    from slicebudget.inference import predict_case
    from slicebudget.metrics import case_metrics, summarize, write_results_csv
    from slicebudget.training import EvalCase, TrainingCase, TrainSpec, train_model
    from slicebudget.volume import SparseAnnotation

    notify = on_progress or (lambda _info: None)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ids = tuple(spec["split"]["train"])
    prepared = prepare_dataset(str(dataset_path), spec["dataset"]["fingerprint"], train_ids)
    classes = {str(k): int(v) for k, v in spec["classes"].items()}
    class_ids = sorted(classes.values())
    n_classes = max(class_ids) + 1
    model_cfg, training = spec["model"], spec["training"]

    # 1. selection (paired: the seed depends on the dataset and the repeat only)
    notify({"stage": "select"})
    plan = select_for_run(spec, dataset_path)
    write_selection(plan, run_dir)
    chosen = sorted(plan.chosen)
    train_vols, val_vols = hold_out_validation(chosen, training["val_fraction"], int(spec["train_seed"]))

    # 2. sparse labels, optionally propagated to dense
    train_cases, pairs = [], []
    for case_id in train_vols:
        data = prepared.case(case_id)
        annotation = SparseAnnotation.from_dense(data.label, plan.chosen[case_id])
        if spec["interpolation"] != OFF:
            notify({"stage": "interpolate", "case": case_id})
            from slicebudget.propagation import propagate

            method, params = propagation_settings(spec, prepared, run_dir, training.get("device"))
            result = propagate(data.image[0], annotation, method=method, device=training.get("device"), **params)
            pairs.append((result.labels, data.label, annotation.annotated))
            annotation = SparseAnnotation(result.labels.astype(data.label.dtype, copy=False),
                                          np.ones(data.label.shape[0], dtype=bool))
        train_cases.append(TrainingCase(case_id, data.image, annotation))
    val_cases = []
    for case_id in val_vols:
        data = prepared.case(case_id)
        rows = np.asarray(plan.chosen[case_id], dtype=int)
        val_cases.append(EvalCase(case_id, data.image[:, rows], data.label[rows], data.spacing))
    interp_iou = interpolation_iou(pairs, class_ids) if spec["interpolation"] != OFF else None

    # 3. train
    dims = int(model_cfg["dims"])
    patch = tuple(model_cfg["patch_size"]) if model_cfg.get("patch_size") else None
    train_spec = TrainSpec(
        iterations=training["iterations"], batch_size=training["batch_size"],
        learning_rate=training["learning_rate"], val_every=training["val_every"], seed=int(spec["train_seed"]),
        device=training.get("device"), augment=training.get("augment", True),
        patch_size=patch if dims == 3 else None, slice_size=patch if dims == 2 else None,
    )
    in_channels = train_cases[0].image.shape[0]
    model = _build_model(model_cfg, in_channels, n_classes, int(spec["train_seed"]))
    trained = train_model(model, train_cases, val_cases, train_spec, dims, n_classes,
                          on_progress=lambda p: notify({"stage": "train", **p}))
    torch.save({"state_dict": trained.model.state_dict(), "model": model_cfg, "in_channels": in_channels,
                "n_classes": n_classes, "normalization": [n.model_dump(mode="json") for n in prepared.normalizations]},
               run_dir / "model.pt")

    # 4. infer and score the dense test cases
    inferer, nmsw_seconds = _inferer(model_cfg, trained.model, n_classes, train_cases, training,
                                     int(spec["train_seed"]), run_dir)
    per_case, infer_seconds = {}, 0.0
    test_ids = spec["split"]["test"]
    for index, case_id in enumerate(test_ids):
        notify({"stage": "infer", "case": index + 1, "cases": len(test_ids)})
        data = prepared.case(case_id)
        t0 = time.perf_counter()
        probabilities = predict_case(trained.model, data.image, dims, patch, batch_size=training["batch_size"],
                                     inferer=inferer)
        prediction = probabilities.argmax(axis=0).astype(data.label.dtype, copy=False)
        infer_seconds += time.perf_counter() - t0
        per_case[case_id] = _case_summary(case_metrics(prediction, data.label, data.spacing, classes), list(classes))
    write_results_csv(run_dir / "results.csv", per_case)
    metrics = {**summarize(per_case), "val_dice": float(trained.best_val_dice)}

    budget = plan.budget
    result = {
        "metrics": metrics,
        "n_volumes": len(chosen),
        "n_volumes_total": len(train_ids),
        "n_train_volumes": len(train_vols),
        "n_val_volumes": len(val_vols),
        "budget_slices": int(budget),
        "slices_per_volume": budget / len(chosen) if chosen else 0.0,
        "interp_iou": interp_iou,
        "seconds_train": float(trained.seconds) + nmsw_seconds,
        "seconds_infer_per_case": infer_seconds / max(len(test_ids), 1),
        "seconds_total": time.perf_counter() - started,
    }
    record = json_safe({"spec": spec, "result": result, "history": trained.history})
    (run_dir / "run.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return result
