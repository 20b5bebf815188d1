"""Per budget level, the best studied (rho, s) and policy, with its interval and one plain sentence.

This is the evidence at the studied cells, not the recommendation: the plan comes from the budget
surface (:mod:`slicebudget.planning.plan`), which pools every run, and a cell that wins its budget
level by less than its repeat noise can differ from it. So the sentence describes the cell ("At 200
slices the best studied cell annotates ...") instead of telling the user what to annotate: one report
must not give two instructions.

One recommendation is made per (dims, model, budget level): a user trains one model, and 2D and 3D
results are kept apart because they can disagree (the paper's Fig. 1a against 1b). "Best" is the
highest mean IoU over repeats; whether the data can actually tell it from the runner-up is judged
from their paired difference over repeats and test cases (:mod:`slicebudget.report.paired`) and said
in words next to the recommendation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from slicebudget.planning.plan import POLICY_PHRASES
from slicebudget.report.paired import by_repeat_case, difference, paired_difference
from slicebudget.report.stats import Interval



@dataclass(frozen=True)
class Recommendation:
    """One row of ``summary.json``'s ``recommendations`` (see the ``slicebudget.report`` docstring)."""

    budget_slices: int
    n_volumes: int
    slices_per_volume: float
    density: float
    volume_fraction: float
    policy: str
    interpolation: str
    model: str
    dims: int
    mean_iou: float
    ci95: list[float] | None
    n_repeats: int
    sentence: str
    separable: bool | None
    separation: str
    n_candidates: int
    runner_up: dict | None = field(default=None)

    def as_dict(self) -> dict:
        return asdict(self)


def policy_phrase(policy: str) -> str:
    return POLICY_PHRASES.get(policy, f"chosen by the '{policy}' policy")


def config_label(row) -> str:
    """Short name of a configuration, e.g. ``rho=0.1, s=0.5, fixed`` (``+ sli2vol`` when interpolated)."""
    label = f"rho={row['density']:g}, s={row['volume_fraction']:g}, {row['policy']}"
    if row["interpolation"] != "off":
        label += f" + {row['interpolation']} interpolation"
    return label


def _per_volume(value: float) -> str:
    # Slices per volume is a mean over volumes of different depths: say "10 slices each" when it is
    # 10 up to rounding, else give one decimal and call it an average.
    rounded = round(value)
    if abs(value - rounded) < 0.05:
        return f"{_plural(int(rounded), 'slice')} each"
    return f"{value:.1f} slices each on average"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def sentence(best, budget_level: int, interpolation_in_grid: bool) -> str:
    """The plain sentence, built only from the numbers of ``best`` (a config-summary row)."""
    volumes = int(round(best["n_volumes"]))
    if best["is_dense_baseline"]:
        text = f"At {budget_level:,} slices the best studied cell annotates every slice of all {_plural(volumes, 'volume')}"
    else:
        per_volume = _per_volume(float(best["slices_per_volume"]))
        text = (
            f"At {budget_level:,} slices the best studied cell annotates {_plural(volumes, 'volume')} at {per_volume}, "
            f"{policy_phrase(best['policy'])}"
        )
    if best["interpolation"] != "off":
        text += f", and fills the slices in between by {best['interpolation']} mask interpolation before training"
    elif interpolation_in_grid:
        text += ", without mask interpolation"
    return text + "."


def _interval(row) -> Interval:
    low = None if pd.isna(row["ci_low"]) else float(row["ci_low"])
    high = None if pd.isna(row["ci_high"]) else float(row["ci_high"])
    return Interval(mean=float(row["mean_iou"]), low=low, high=high, n=int(row["n_repeats"]))


CONFIG_KEYS = ["dims", "model", "budget_level", "density", "volume_fraction", "policy", "interpolation"]


def separation(best, runner_up, values: pd.Series | None) -> tuple[bool | None, str]:
    """Whether the best and the runner-up differ, by their paired difference, in words."""
    if runner_up is None:
        return None, "Only one configuration finished at this budget, so there is nothing to compare it with."
    other = f"the runner-up, {config_label(runner_up)} ({_interval(runner_up).describe()})"
    result = None
    if values is not None:
        key = lambda row: tuple(row[k] for k in CONFIG_KEYS)  # noqa: E731
        try:
            result = paired_difference(difference(values.loc[key(best)], values.loc[key(runner_up)]))
        except KeyError:
            result = None
    if result is None or result.low is None:
        return None, f"With a single repeat the data cannot say whether it beats {other}."
    if result.detected:
        return True, f"It beats {other} by {result.describe()}, so the data separate them."
    return False, (f"Against {other}: {result.describe()}; {result.null_text()}, so the data cannot separate them.")


def recommend(configs: pd.DataFrame, cases: pd.DataFrame | None = None) -> list[Recommendation]:
    """Best configuration per (dims, model, budget level) from ``tables.config_summary`` output;
    ``cases`` (:func:`slicebudget.report.paired.case_table`) pairs best and runner-up."""
    recommendations = []
    if configs.empty:
        return recommendations
    values = by_repeat_case(cases, CONFIG_KEYS) if cases is not None and not cases.empty else None
    for (dims, model, level), group in configs.groupby(["dims", "model", "budget_level"], sort=True):
        # Ties go to the better-replicated configuration, then to a stable name order, so the
        # report never changes between two runs on the same data.
        ranked = group.assign(_label=[config_label(r) for _, r in group.iterrows()]).sort_values(
            ["mean_iou", "n_repeats", "_label"], ascending=[False, False, True], kind="stable"
        )
        best = ranked.iloc[0]
        runner_up = ranked.iloc[1] if len(ranked) > 1 else None
        separable, separation_text = separation(best, runner_up, values)
        interval = _interval(best)
        recommendations.append(Recommendation(
            budget_slices=int(level),
            n_volumes=int(round(best["n_volumes"])) if not math.isnan(best["n_volumes"]) else 0,
            slices_per_volume=float(best["slices_per_volume"]),
            density=float(best["density"]),
            volume_fraction=float(best["volume_fraction"]),
            policy=str(best["policy"]),
            interpolation=str(best["interpolation"]),
            model=str(model),
            dims=int(dims),
            mean_iou=interval.mean,
            ci95=interval.as_list(),
            n_repeats=interval.n,
            sentence=sentence(best, int(level), bool((group["interpolation"] != "off").any())),
            separable=separable,
            separation=separation_text,
            n_candidates=len(ranked),
            runner_up=None if runner_up is None else {
                "label": config_label(runner_up),
                "density": float(runner_up["density"]),
                "volume_fraction": float(runner_up["volume_fraction"]),
                "policy": str(runner_up["policy"]),
                "interpolation": str(runner_up["interpolation"]),
                "mean_iou": float(runner_up["mean_iou"]),
                "ci95": _interval(runner_up).as_list(),
                "n_repeats": int(runner_up["n_repeats"]),
            },
        ))
    return recommendations
