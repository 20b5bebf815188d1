"""Aggregations behind each section of the report; every function takes and returns a DataFrame.

Input is the frame from ``records.budget_levels`` (completed runs with a ``budget_level`` column),
except where a function says it takes the full run frame. Averages over repeats are always taken
last, so the interval reflects repeat-to-repeat noise: within a repeat, policies (or models) are
averaged first, as the paper does when it reports one value per (rho, s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from slicebudget.report.records import HEADLINE, metric_columns
from slicebudget.report.stats import mean_ci, pooled_sd

SECONDARY_METRICS = ("metric_dice", "metric_hd95", "metric_surface_dice")


def _interval_columns(values: Sequence[float]) -> dict:
    """Mean IoU with its interval over repeats, clipped to the metric's range [0, 1]: a Student-t
    interval over three repeats can otherwise print "0.247 to 1.303"."""
    interval = mean_ci(values)
    return {
        "mean_iou": interval.mean,
        "ci_low": None if interval.low is None else max(interval.low, 0.0),
        "ci_high": None if interval.high is None else min(interval.high, 1.0),
        "n_repeats": interval.n,
    }


def _sparse_off(levels: pd.DataFrame) -> pd.DataFrame:
    """Runs trained on sparse labels as annotated (no interpolation), i.e. the paper's main grid."""
    return levels.loc[levels["interpolation"] == "off"]


def config_summary(levels: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (model, rho, s, policy, interpolation) with mean IoU and interval over repeats."""
    keys = ["dims", "model", "budget_level", "density", "volume_fraction", "policy", "interpolation"]
    rows = []
    for key, group in levels.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        row.update(_interval_columns(group[HEADLINE]))
        row["is_dense_baseline"] = bool(group["is_dense_baseline"].all())
        row["n_volumes"] = float(group["n_volumes"].mean())
        row["slices_per_volume"] = float(group["slices_per_volume"].mean())
        row["budget_slices"] = float(group["budget_slices"].mean())
        for column in SECONDARY_METRICS:
            if column in group:
                row[column.removeprefix("metric_")] = float(group[column].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _repeat_level(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean IoU per (keys, repeat): the other factors (policies) are averaged within each repeat."""
    return frame.groupby([*keys, "repeat"], sort=True).agg(
        iou=(HEADLINE, "mean"),
        n_volumes=("n_volumes", "mean"),
        slices_per_volume=("slices_per_volume", "mean"),
        budget_slices=("budget_slices", "mean"),
    ).reset_index()


def rho_s_summary(levels: pd.DataFrame) -> pd.DataFrame:
    """Mean IoU per (model, rho, s) over policies, with its interval over repeats (no interpolation).

    This is the value behind Fig. 2/3 (IoU against budget, one line per volume count) and the
    "spread the budget?" finding.
    """
    keys = ["dims", "model", "budget_level", "density", "volume_fraction", "is_dense_baseline"]
    per_repeat = _repeat_level(_sparse_off(levels), keys)
    rows = []
    for key, group in per_repeat.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        row.update(_interval_columns(group["iou"]))
        row["n_volumes"] = float(group["n_volumes"].mean())
        row["slices_per_volume"] = float(group["slices_per_volume"].mean())
        row["budget_slices"] = float(group["budget_slices"].mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "mean_iou", "ci_low", "ci_high", "n_repeats",
                                       "n_volumes", "slices_per_volume", "budget_slices"])


def dense_drop(levels: pd.DataFrame) -> pd.DataFrame:
    """IoU of each sparse (rho, s) minus the same model's dense baseline (Fig. 1), per model.

    Models without a dense-baseline run are left out: there is nothing to subtract.
    """
    summary = rho_s_summary(levels)
    if summary.empty:
        return pd.DataFrame(columns=["dims", "model", "density", "volume_fraction", "mean_iou",
                                     "dense_iou", "drop"])
    dense = summary.loc[summary["is_dense_baseline"]].groupby(["dims", "model"])["mean_iou"].mean()
    sparse = summary.loc[~summary["is_dense_baseline"]]
    rows = []
    for row in sparse.itertuples(index=False):
        key = (row.dims, row.model)
        if key not in dense.index:
            continue
        rows.append({
            "dims": row.dims,
            "model": row.model,
            "density": row.density,
            "volume_fraction": row.volume_fraction,
            "budget_level": row.budget_level,
            "mean_iou": row.mean_iou,
            "dense_iou": float(dense[key]),
            "drop": float(row.mean_iou - dense[key]),
        })
    return pd.DataFrame(rows, columns=["dims", "model", "density", "volume_fraction", "budget_level",
                                       "mean_iou", "dense_iou", "drop"])


def policy_deltas(levels: pd.DataFrame) -> pd.DataFrame:
    """Each policy's IoU minus the mean over policies for the same (model, rho, s, repeat) (Fig. 5).

    Only groups where at least two policies finished count: a lone policy has no one to compare with.
    """
    sparse = _sparse_off(levels)
    sparse = sparse.loc[~sparse["is_dense_baseline"]]
    keys = ["dims", "model", "density", "volume_fraction", "repeat"]
    per_policy = sparse.groupby([*keys, "policy"], sort=True)[HEADLINE].mean().reset_index()
    n_policies = per_policy.groupby(keys)["policy"].transform("nunique")
    per_policy = per_policy.loc[n_policies >= 2].copy()
    group_mean = per_policy.groupby(keys)[HEADLINE].transform("mean")
    return per_policy.assign(iou=per_policy[HEADLINE], delta=per_policy[HEADLINE] - group_mean).drop(
        columns=[HEADLINE]
    )


def policy_summary(deltas: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """Per (dims, policy): mean delta with interval, beside the repeat noise of the same runs."""
    sparse = _sparse_off(levels)
    rows = []
    for dims, group in deltas.groupby("dims", sort=True):
        runs = sparse.loc[sparse["dims"] == dims]
        noise, dof = pooled_sd(
            g[HEADLINE] for _, g in runs.groupby(["model", "density", "volume_fraction", "policy"])
        )
        for policy, policy_group in group.groupby("policy", sort=True):
            interval = mean_ci(policy_group["delta"])
            rows.append({
                "dims": dims,
                "policy": policy,
                "mean_delta": interval.mean,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "n_groups": interval.n,
                "repeat_noise_sd": noise,
                "repeat_noise_dof": dof,
            })
    return pd.DataFrame(rows, columns=["dims", "policy", "mean_delta", "ci_low", "ci_high", "n_groups",
                                       "repeat_noise_sd", "repeat_noise_dof"])


def interpolation_pairs(levels: pd.DataFrame) -> pd.DataFrame:
    """Runs on the same annotated slices with and without interpolation, matched one to one (Fig. 4)."""
    keys = ["dims", "model", "density", "volume_fraction", "policy", "repeat"]
    columns = [*keys, "method", "iou_off", "iou_interp", "delta"]
    off = levels.loc[levels["interpolation"] == "off"].groupby(keys)[HEADLINE].mean()
    interpolated = levels.loc[levels["interpolation"] != "off"]
    rows = []
    for key, group in interpolated.groupby([*keys, "interpolation"], sort=True):
        match = key[:-1]
        if match not in off.index:
            continue
        iou_interp = float(group[HEADLINE].mean())
        rows.append({**dict(zip(keys, match)), "method": key[-1], "iou_off": float(off[match]),
                     "iou_interp": iou_interp, "delta": iou_interp - float(off[match])})
    return pd.DataFrame(rows, columns=columns)


def interpolation_summary(pairs: pd.DataFrame, by_density: bool = True) -> pd.DataFrame:
    """Mean IoU with and without interpolation and the paired difference's interval."""
    keys = ["dims", "method", "density"] if by_density else ["dims", "method"]
    rows = []
    for key, group in pairs.groupby(keys, sort=True):
        interval = mean_ci(group["delta"])
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "iou_off": float(group["iou_off"].mean()),
                     "iou_interp": float(group["iou_interp"].mean()),
                     "mean_delta": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                     "n_pairs": interval.n})
    return pd.DataFrame(rows, columns=[*keys, "iou_off", "iou_interp", "mean_delta", "ci_low", "ci_high",
                                       "n_pairs"])


def interp_quality(levels: pd.DataFrame) -> pd.DataFrame:
    """Table 3: IoU of interpolated masks against the human ones, per method and rho (long form)."""
    runs = levels.loc[(levels["interpolation"] != "off") & levels["interp_iou"].notna()]
    table = runs.groupby(["interpolation", "density"], sort=True)["interp_iou"].agg(["mean", "count"])
    return table.reset_index().rename(
        columns={"interpolation": "method", "mean": "interp_iou", "count": "n_runs"}
    )


def interp_provenance(levels: pd.DataFrame) -> pd.DataFrame:
    """Where the interpolated training masks came from, per method and rho: the share of their
    foreground carried by the learned propagator, by the interpolation (sli2vol: its fallback) and
    by nearest-slice copies, the share of unannotated slices the stop rule left empty, and the mean
    calibrated confidence of the filled slices against the IoU they measured (means over runs)."""
    from slicebudget.report.records import PROVENANCE_COLUMNS

    columns = list(PROVENANCE_COLUMNS)
    runs = levels.loc[(levels["interpolation"] != "off") & levels["interp_confidence"].notna()] \
        if "interp_confidence" in levels.columns else levels.iloc[0:0]
    if runs.empty:
        return pd.DataFrame(columns=["method", "density", *columns, "n_runs"])
    table = runs.groupby(["interpolation", "density"], sort=True)[columns].mean()
    table["n_runs"] = runs.groupby(["interpolation", "density"], sort=True)["run_id"].count()
    return table.reset_index().rename(columns={"interpolation": "method"})


def timing(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model (finished runs of the full frame): inference seconds per case and training seconds
    per run, wall and CPU (the run's process; a shared machine inflates wall seconds, not CPU
    seconds), beside the mean IoU, so that cost and quality are read together."""
    done = frame.loc[frame["status"] == "done"]
    keys = ["dims", "model"] + [k for k in ("inference",) if k in done.columns and done[k].notna().any()]
    columns = {name: (name, "mean") for name in ("seconds_infer_per_case", "seconds_train", "cpu_seconds_infer_per_case",
                                                 "cpu_seconds_train", HEADLINE) if name in done.columns}
    table = done.groupby(keys, sort=True, dropna=False).agg(**columns, n_runs=("run_id", "count"))
    return table.reset_index().rename(columns={HEADLINE: "iou"})


def failed_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The failed runs of the full frame, with their error."""
    columns = ["run_id", "model", "dims", "policy", "density", "volume_fraction", "repeat",
               "interpolation", "error"]
    failed = frame.loc[frame["status"] == "failed", columns].copy()
    failed["error"] = failed["error"].fillna("(no error recorded)")
    return failed.sort_values("run_id").reset_index(drop=True)


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["status"].value_counts().sort_index().items()}


def runs_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-run CSV: run fields first, then the flattened metrics in a stable order."""
    metrics = metric_columns(frame)
    headline_first = [HEADLINE, *[m for m in SECONDARY_METRICS if m in metrics]]
    ordered_metrics = headline_first + sorted(set(metrics) - set(headline_first))
    others = [c for c in frame.columns if c not in metrics]
    return frame[others + ordered_metrics].sort_values("run_id", kind="stable").reset_index(drop=True)


def to_records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: numpy scalars to Python, NaN to None."""
    rows = []
    for row in table.to_dict(orient="records"):
        rows.append({str(k): plain_value(v) for k, v in row.items()})
    return rows


def plain_value(value):
    """A JSON-ready Python value: numpy scalars to Python, NaN and pandas NA to None."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value
