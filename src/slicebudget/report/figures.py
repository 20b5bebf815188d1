"""The report's figures as PNG bytes (matplotlib, Agg canvas, no pyplot state).

Each function takes a table from ``slicebudget.report.tables`` and returns PNG bytes, or None when
the table holds nothing to draw (the report then says why instead of showing an empty plot).
``matplotlib.figure.Figure`` is used directly rather than pyplot so that no global figure registry
is touched: the report can be built from a worker thread or the napari plugin safely.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
PANEL_SIZE = (5.2, 4.0)
MAX_COLUMNS = 3


def _new_figure(panels: int, min_width: float = 7.5) -> tuple[Figure, list]:
    columns = min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    # A floor on the width keeps a single panel's title and legend readable.
    width = max(PANEL_SIZE[0] * columns, min_width)
    # Constrained layout places titles, labels and colorbars without overlap (tight_layout cannot
    # handle a colorbar shared by several panels).
    figure = Figure(figsize=(width, PANEL_SIZE[1] * rows + 0.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, columns, index + 1) for index in range(panels)]
    return figure, axes


def _panel_per_dims(frame: pd.DataFrame) -> tuple[Figure, list[tuple[object, int, pd.DataFrame]]]:
    """A figure with one panel per dimensionality in ``frame`` (ascending): (axis, dims, its rows)."""
    dims_present = sorted(frame["dims"].unique())
    figure, axes = _new_figure(len(dims_present))
    return figure, [(axis, dims, frame.loc[frame["dims"] == dims]) for axis, dims in zip(axes, dims_present)]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _error_bars(table: pd.DataFrame) -> np.ndarray | None:
    if table["ci_low"].isna().all():
        return None
    low = (table["mean_iou"] - table["ci_low"]).fillna(0.0).clip(lower=0.0)
    high = (table["ci_high"] - table["mean_iou"]).fillna(0.0).clip(lower=0.0)
    return np.vstack([low.to_numpy(float), high.to_numpy(float)])


def budget_curves(rho_s: pd.DataFrame, dims: int) -> bytes | None:
    """Fig. 2/3: mean IoU against annotated slices, one line per volume fraction s, one panel per model."""
    table = rho_s.loc[rho_s["dims"] == dims]
    if table.empty:
        return None
    models = sorted(table["model"].unique())
    figure, axes = _new_figure(len(models))
    for axis, model in zip(axes, models):
        runs = table.loc[table["model"] == model]
        sparse = runs.loc[~runs["is_dense_baseline"]]
        for fraction, line in sparse.groupby("volume_fraction", sort=True):
            line = line.sort_values("budget_level")
            volumes = int(round(line["n_volumes"].mean()))
            axis.errorbar(line["budget_level"], line["mean_iou"], yerr=_error_bars(line), marker="o",
                          capsize=3, label=f"s = {fraction:g} ({volumes} volumes)")
        dense = runs.loc[runs["is_dense_baseline"]]
        if not dense.empty:
            dense_iou = float(dense["mean_iou"].mean())
            axis.axhline(dense_iou, color="black", linestyle="--", linewidth=1)
            axis.errorbar(dense["budget_level"], dense["mean_iou"], yerr=_error_bars(dense), marker="s",
                          color="black", capsize=3, linestyle="none",
                          label=f"dense baseline ({int(dense['budget_level'].iloc[0]):,} slices)")
        levels = sorted(int(level) for level in runs["budget_level"].unique())
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [f"{level:,}" for level in levels], rotation=45 if len(levels) > 5 else 0)
        axis.minorticks_off()
        axis.set_xlabel("annotation budget (annotated slices, log scale)")
        axis.set_ylabel("mean IoU on test cases (bars: 95% CI over repeats)")
        low, high = axis.get_ylim()
        axis.set_ylim(max(low, 0.0), min(high, 1.0))  # IoU lives in [0, 1]
        axis.set_title(f"{model} ({dims}D)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, title="volume fraction s", title_fontsize=8, loc="best")
    figure.suptitle(f"{dims}D models: IoU against annotation budget, one line per volume count")
    return _png(figure)


def dense_drop_heatmap(drop: pd.DataFrame) -> bytes | None:
    """Fig. 1: IoU minus the dense baseline for each (rho, s), averaged over models, one panel per dims."""
    if drop.empty:
        return None
    figure, panels = _panel_per_dims(drop)
    limit = max(float(drop["drop"].abs().max()), 1e-3)
    image = None
    for axis, dims, table in panels:
        n_models = table["model"].nunique()
        grid = table.pivot_table(index="density", columns="volume_fraction", values="drop", aggfunc="mean")
        grid = grid.sort_index(ascending=False)
        values = np.ma.masked_invalid(grid.to_numpy(float))
        image = axis.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_xticks(range(grid.shape[1]), [f"{s:g}" for s in grid.columns])
        axis.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
        axis.set_xlabel("volume fraction s (share of volumes annotated)")
        axis.set_ylabel("annotation density rho (share of slices)")
        axis.set_title(f"{dims}D models (mean over {n_models} model{'s' if n_models != 1 else ''})")
        for (row, column), value in np.ndenumerate(grid.to_numpy(float)):
            if np.isfinite(value):
                axis.text(column, row, f"{value:+.3f}", ha="center", va="center", fontsize=8,
                          color="white" if abs(value) > 0.6 * limit else "black")
    figure.colorbar(image, ax=[axis for axis, _, _ in panels], label="IoU minus dense baseline")
    figure.suptitle("Change in IoU against the densely annotated baseline")
    return _png(figure)


def policy_deltas(deltas: pd.DataFrame) -> bytes | None:
    """Fig. 5: each policy's IoU minus the mean over policies, as boxes with the points on top."""
    if deltas.empty:
        return None
    figure, panels = _panel_per_dims(deltas)
    jitter = np.random.default_rng(0)  # fixed seed: the same data always draw the same picture
    for axis, dims, table in panels:
        policies = sorted(table["policy"].unique())
        samples = [table.loc[table["policy"] == p, "delta"].to_numpy(float) for p in policies]
        axis.boxplot(samples, showfliers=False)
        axis.set_xticks(range(1, len(policies) + 1), policies)  # works on every matplotlib >= 3.5
        for position, sample in enumerate(samples, start=1):
            axis.scatter(position + jitter.uniform(-0.12, 0.12, sample.size), sample, s=12, alpha=0.6)
        axis.axhline(0.0, color="black", linewidth=1, linestyle="--")
        axis.set_xlabel("slice-selection policy")
        axis.set_ylabel("IoU minus mean over policies")
        groups = table.groupby(["model", "density", "volume_fraction", "repeat"]).ngroups
        axis.set_title(f"{dims}D ({groups} groups of equal model, rho, s, repeat)")
        axis.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Relative performance of slice-selection policies")
    return _png(figure)


def interpolation_bars(by_density: pd.DataFrame) -> bytes | None:
    """Fig. 4: IoU with minus without interpolation on the same annotated slices, per rho and method.

    The difference is drawn rather than the two absolute bars: effects of a few hundredths of IoU
    vanish on a 0-1 axis, and the error bars (95% CI over matched pairs) show whether they are real.
    """
    if by_density.empty:
        return None
    figure, panels = _panel_per_dims(by_density)
    for axis, dims, table in panels:
        densities = sorted(table["density"].unique())
        methods = sorted(table["method"].unique())
        width = 0.8 / len(methods)
        positions = np.arange(len(densities))
        for index, method in enumerate(methods):
            rows = table.loc[table["method"] == method].set_index("density").reindex(densities)
            low = (rows["mean_delta"] - rows["ci_low"]).fillna(0.0).clip(lower=0.0).to_numpy(float)
            high = (rows["ci_high"] - rows["mean_delta"]).fillna(0.0).clip(lower=0.0).to_numpy(float)
            axis.bar(positions + (index - (len(methods) - 1) / 2) * width, rows["mean_delta"].to_numpy(float),
                     width, yerr=np.vstack([low, high]), capsize=4, label=method)
        axis.axhline(0.0, color="black", linewidth=1)
        axis.set_xticks(positions, [f"{d:g}" for d in densities])
        axis.set_xlabel("annotation density rho")
        axis.set_ylabel("IoU with interpolation minus without")
        axis.set_title(f"{dims}D (bars: 95% CI over matched runs)")
        axis.legend(title="method", fontsize=8, loc="best")
        axis.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Effect of mask interpolation on model IoU (same annotated slices)")
    return _png(figure)


def interpolation_quality(quality: pd.DataFrame) -> bytes | None:
    """Table 3 as a plot: IoU of interpolated masks against human masks, against rho, per method."""
    if quality.empty:
        return None
    figure, (axis,) = _new_figure(1)
    for method, rows in quality.groupby("method", sort=True):
        rows = rows.sort_values("density")
        axis.plot(rows["density"], rows["interp_iou"], marker="o", label=method)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("annotation density rho (log scale)")
    axis.set_ylabel("IoU of interpolated vs human masks")
    axis.set_title("Quality of interpolated masks")
    axis.grid(True, alpha=0.3)
    axis.legend(title="method", fontsize=8)
    return _png(figure)


def budget_surface(planning) -> bytes | None:
    """Predicted IoU over (n volumes, k slices each), one panel per model: studied cells as dots,
    equal-budget lines n * k = B at the study's budget levels, the planner's plan at each as a star."""
    if not planning.models:
        return None
    figure, axes = _new_figure(len(planning.models))
    for axis, mp in zip(axes, planning.models):
        grid, obs = mp.grid, mp.surface.obs
        best_level = mp.plans[-1].best
        level = next(i for i, lv in enumerate(obs.levels)
                     if lv.policy == best_level.policy and lv.interpolation == best_level.interpolation)
        image = axis.pcolormesh(grid["n"], grid["k"], np.clip(grid["expected"][level].T, 0, 1), shading="gouraud",
                                cmap="viridis", vmin=0.0, vmax=1.0)
        contours = axis.contour(grid["n"], grid["k"], grid["expected"][level].T, levels=np.arange(0.1, 1.0, 0.1),
                                colors="white", linewidths=0.6, alpha=0.7)
        axis.clabel(contours, fmt="%.1f", fontsize=7)
        n_line = np.geomspace(grid["n"][0], grid["n"][-1], 100)
        for plan in mp.plans:
            axis.plot(n_line, plan.budget / n_line, color="orange", linewidth=0.8, linestyle="--")
            # clip_on=False: the volume cap puts plans and studied cells on the panel's edge
            axis.plot(plan.best.n_volumes, plan.best.slices_per_volume, marker="*", markersize=12, color="red",
                      markeredgecolor="black", clip_on=False, zorder=4)
        axis.scatter(obs.n, obs.k, s=18, color="white", edgecolor="black", zorder=3, label="studied cells",
                     clip_on=False)
        axis.plot([], [], color="orange", linestyle="--", label="equal budget (study levels)")
        axis.plot([], [], marker="*", color="red", linestyle="none", markeredgecolor="black", label="planned")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlim(grid["n"][0], grid["n"][-1])
        axis.set_ylim(grid["k"][0], grid["k"][-1])
        # counts of volumes and slices read as plain numbers at the studied values, not powers of ten
        for set_ticks, values in ((axis.set_xticks, obs.n), (axis.set_yticks, obs.k)):
            studied = sorted({int(v) for v in values})
            set_ticks(studied, [str(v) for v in studied], minor=False)
            set_ticks([], minor=True)
        axis.set_xlabel("volumes annotated (n)")
        axis.set_ylabel("slices annotated per volume (k)")
        axis.set_title(f"{mp.model} ({mp.dims}D), {obs.levels[level].label}: {mp.surface.form.name} surface")
        axis.legend(loc="lower left", fontsize=7)
        figure.colorbar(image, ax=axis, label="predicted IoU")
    return _png(figure)


def planning_frontier(planning) -> bytes | None:
    """Best plan's IoU against budget, in slices and in annotator-hours, with 80% bands (IoU axis 0..1)."""
    if not planning.models:
        return None
    figure, (left, right) = _new_figure(2)
    for mp in planning.models:
        for axis, points in ((left, mp.frontier_slices), (right, mp.frontier_hours)):
            if not points:
                continue
            x = [p["budget"] for p in points]
            mean = [p["expected_iou"] for p in points]
            axis.fill_between(x, [p["interval80"][0] for p in points], [p["interval80"][1] for p in points], alpha=0.25)
            axis.plot(x, mean, marker=".", label=f"{mp.model} ({mp.dims}D)")
            extrapolated = [p for p in points if p["extrapolated"]]
            if extrapolated:
                axis.scatter([p["budget"] for p in extrapolated], [p["expected_iou"] for p in extrapolated],
                             marker="x", color="black", zorder=3, s=14)
        studied = [p.budget for p in mp.plans]
        left.scatter(studied, [p.best.expected_iou for p in mp.plans], marker="*", s=60, color="red", zorder=4)
    for axis, unit in ((left, "annotated slices"), (right, "annotator-hours (cost model)")):
        axis.set_xscale("log")
        axis.set_ylim(0.0, 1.0)
        axis.set_xlabel(f"budget ({unit}, log scale)")
        axis.set_ylabel("IoU of the best plan (band: 80%)")
        axis.grid(True, alpha=0.3)
    left.scatter([], [], marker="x", color="black", label="extrapolated plan")
    left.scatter([], [], marker="*", color="red", label="study budget levels")
    left.legend(fontsize=7, loc="lower right")
    left.set_title("IoU against budget in slices")
    right.set_title("IoU against budget in hours")
    return _png(figure)
