"""How long a study will take, told before it starts: a short timing probe on the real data.

For each distinct model (with its training and inference settings) among the runs still to do, the
probe executes one of its runs for real (the same ``execute_run``, with the torch threads the
executor gives each run), cut to a few training iterations and one test case: first ``SHORT``
iterations to warm the process up (imports, first kernels, the dataset cache; a study pays that
once), then ``LONG``. From the second: seconds per training iteration (the median gap between
iterations, validations left out), seconds per validation pass, seconds of NMSW's own training per
iteration (3D NMSW runs), inference per test case, and the rest, the fixed cost of a run. A run
then costs ``fixed + iterations * per_iteration + validations * per_validation + NMSW iterations *
per_nmsw_iteration + test cases * per_case``, and the study the sum over the runs still to do
divided by the runs that execute at once (1 in-process, ``--workers`` on a local Dask cluster, the
scheduler's worker threads).

Not in the estimate: propagation cost that grows with the volumes a run annotates, contention
between runs that share CPUs, and other programs' load. It is printed as an estimate, and the
progress display switches to the measured pace once runs finish.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

_now = time.perf_counter  # the probe's clock (a test replaces it)
SHORT, LONG = 2, 6  # probe iterations: a warm-up, then the timed probe (its gaps 2..LONG-1 are clean iterations)


@dataclass(frozen=True)
class ModelCost:
    model: str  # display name and dims, e.g. "unet-resnet18 2D"
    runs: int
    seconds_fixed: float
    seconds_per_iteration: float
    seconds_infer_per_case: float
    seconds_per_run: float


@dataclass(frozen=True)
class StudyEstimate:
    runs: int
    parallel: int
    seconds: float  # wall time of the runs to do
    probe_seconds: float
    models: list[ModelCost] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{m.model}: {m.runs} run(s) x {clock(m.seconds_per_run)} (train {m.seconds_per_iteration:.3f} s/iteration,"
                 f" inference {m.seconds_infer_per_case:.2f} s/case)" for m in self.models]
        at_once = f" / {self.parallel} at once" if self.parallel > 1 else ""
        return (f"estimate: {self.runs} run(s){at_once} = {clock(self.seconds)} "
                f"({'; '.join(parts)}; from a {self.probe_seconds:.0f} s timing probe on this machine)")


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _probe_spec(spec: dict, iterations: int) -> dict:
    training = {**spec["training"], "iterations": iterations, "val_every": iterations}
    inference = {**spec["model"]["inference"], "iterations": iterations} if spec["model"]["dims"] == 3 else None
    model = spec["model"] if inference is None else {**spec["model"], "inference": inference}
    return {**spec, "training": training, "model": model,
            "split": {**spec["split"], "test": list(spec["split"]["test"][:1])}}


def _group_key(spec: dict) -> str:
    return json.dumps({"model": spec["model"], "training": spec["training"],
                       "interpolation": spec["interpolation"] != "off"}, sort_keys=True)


def _costs(spec: dict, result: dict, stamps: list[float]) -> tuple[float, float, float, float, float]:
    """(fixed, per iteration, per validation, per NMSW iteration, per case) from the timed probe:
    ``stamps`` are the times of its training-iteration callbacks (one per iteration, the validation
    pass at iteration LONG included in the last gap)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]  # gap i: iteration i + 2
    clean = sorted(gaps[:-1]) or sorted(gaps)
    per_iteration = clean[len(clean) // 2]
    per_validation = max(0.0, gaps[-1] - per_iteration) if gaps else 0.0
    backbone = LONG * per_iteration + per_validation
    nmsw = max(0.0, result["seconds_train"] - backbone) if _needs_nmsw(spec) else 0.0
    per_case = result["seconds_infer_per_case"]
    fixed = max(0.0, result["seconds_total"] - backbone - nmsw - per_case)
    return fixed, per_iteration, per_validation, nmsw / LONG, per_case


def _needs_nmsw(spec: dict) -> bool:
    from slicebudget.inference import get_inferer_class

    return spec["model"]["dims"] == 3 and get_inferer_class(spec["model"]["inference"]["name"]).needs_nmsw_model


def estimate_study(tasks: list, parallel: int, probe) -> StudyEstimate | None:
    """The estimate for ``tasks`` (RunTask objects still to run); ``probe(task, on_progress) ->
    RunOutcome`` runs one task as the executor would. None when there is nothing to run or a probe
    run fails (the study itself will then say why)."""
    if not tasks:
        return None
    started = time.perf_counter()
    groups: dict[str, list] = {}
    for task in tasks:
        groups.setdefault(_group_key(task.spec), []).append(task)
    costs, total = [], 0.0
    for members in groups.values():
        # the run annotating most volumes: per-iteration cost is the same, set-up is the largest
        task = max(members, key=lambda t: (t.spec["n_volumes"], t.spec["density"]))
        stamps: list[float] = []

        def record(info: dict, stamps=stamps) -> None:
            if info.get("stage") == "train" and "iteration" in info:
                stamps.append(_now())

        for iterations in (SHORT, LONG):
            stamps.clear()
            outcome = probe(type(task)(f"probe-{task.run_id}", _probe_spec(task.spec, iterations),
                                       task.dataset_path, task.inputs), record)
            if not outcome.ok:
                return None
        spec = task.spec
        fixed, per_iteration, per_validation, per_nmsw, per_case = _costs(spec, outcome.product.result, stamps)
        training = spec["training"]
        nmsw_iterations = spec["model"].get("inference", {}).get("iterations") or training["iterations"]
        per_run = (fixed + training["iterations"] * per_iteration
                   + training["iterations"] // training["val_every"] * per_validation
                   + nmsw_iterations * per_nmsw + len(spec["split"]["test"]) * per_case)
        costs.append(ModelCost(f"{spec['model']['display_name']} {spec['model']['dims']}D", len(members), fixed,
                               per_iteration, per_case, per_run))
        total += per_run * len(members)
    return StudyEstimate(len(tasks), parallel, total / max(parallel, 1), time.perf_counter() - started, costs)
