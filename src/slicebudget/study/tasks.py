"""The task a worker gets for a stored run: its spec, and the files it reads besides the dataset
shipped with it (see :mod:`slicebudget.study.product`), the study's adapted sli2vol model included,
which the driver makes before any run asks for it.
"""

from __future__ import annotations

from pathlib import Path

from slicebudget.errors import UserError
from slicebudget.study.executors import RunTask
from slicebudget.study.product import INPUT_PREFIX, pack


def _read_input(path: Path, what: str) -> bytes:
    try:
        return pack(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read the {what}: {exc.strerror}", path) from exc


def worker_task(record: dict, config_path: Path, dataset_path: Path, adapted: Path | None = None) -> RunTask:
    """The task a worker gets for a stored run: its spec, with every file it reads besides the dataset
    (a model's ``weights_path`` relative to the config, a sli2vol model file, the study's adapted
    model ``adapted``) shipped as an input and named ``@input/<name>`` (neither is part of the id)."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.study.adapt import ADAPT
    from slicebudget.study.choices import OFF

    spec, inputs = record["spec"], {}
    weights = spec["model"].get("weights_path")
    if weights:
        path = (config_path.parent / weights).resolve()
        inputs["weights" + "".join(path.suffixes)] = _read_input(path, "model weights")
        spec = {**spec, "model": {**spec["model"], "weights_path": INPUT_PREFIX + "weights" + "".join(path.suffixes)}}
    if spec["interpolation"] != OFF:
        method, params = parse_method_spec(spec["interpolation"])
        if "model" in params:
            path = adapted if params["model"] == ADAPT else Path(params["model"]).resolve()
            inputs["propagation.pt"] = _read_input(path, "propagation model")
            params["model"] = INPUT_PREFIX + "propagation.pt"
            spec = {**spec, "interpolation": ":".join([method, *(f"{k}={v}" for k, v in params.items())])}
    return RunTask(record["run_id"], spec, str(dataset_path), inputs)


def adapt_if_asked(records: list[dict], study_dir: Path, dataset_path: Path, view) -> Path | None:
    """The study's adapted sli2vol model, made here in the driver before any run that asks for it
    (``model: adapt``) is dispatched; None when no pending run asks."""
    from slicebudget.propagation.registry import parse_method_spec
    from slicebudget.study.adapt import ADAPT, adapted_model
    from slicebudget.study.choices import OFF
    from slicebudget.study.prepared import PROCESS_CACHE
    from slicebudget.study.run_spec import RunSpec

    wanting = [r for r in records if r["spec"]["interpolation"] != OFF
               and parse_method_spec(r["spec"]["interpolation"])[1].get("model") == ADAPT]
    if not wanting:
        return None
    spec = RunSpec.of(wanting[0]["spec"])
    prepared = PROCESS_CACHE.get(dataset_path, spec)
    view.status("adapting the sli2vol model to the study's training images (once per study)")
    return adapted_model(study_dir, lambda c: prepared.case(c).image[0], spec.split.train,
                         spec.dataset.fingerprint, len(prepared.normalizations), spec.training.device)
