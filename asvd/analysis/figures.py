"""Figures of the results: accuracy matrices, task curves, AA/BWT, general ability, ranks, spectra.

Each ``plot_*`` function writes one PNG and one PDF of the same figure, atomically. Figures are
built on :class:`matplotlib.figure.Figure` directly (rendered by the Agg backend) rather than
through ``pyplot``, so nothing here touches global backend state or leaks open figures.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from safetensors import safe_open

from asvd.analysis.metrics import BASE_ROW, read_accuracy_csv
from asvd.analysis.subspaces import overlap_table
from asvd.analysis.tables import load_runs
from asvd.io import read_json
from asvd.pipeline.ablations import lr_variant_of
from asvd.pipeline.damage import check_readable
from asvd.pipeline.layout import order_label
from asvd.plotting import PathLike, color_map, save_figure, styled
from asvd.train_log import TaskLog

_MAX_TICK_LABELS = 60
_RANK_ROW_INCHES = 0.12  # fits a 6 pt target name per heatmap row
_ACCURACY_CMAP = "viridis"


# --------------------------------------------------------------------------- shared helpers


def _unique(items: Iterable[str]) -> list[str]:
    """Distinct items in first-appearance order (the order callers configured)."""
    return list(dict.fromkeys(items))


def _natural_key(name: str) -> list[int | str]:
    """Sort ``block.2`` before ``block.10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _wrap_name(name: str, width: int = 32) -> str:
    """Break a long dotted module name at dots so it fits a panel title."""
    lines = [""]
    for part in re.split(r"(?<=\.)", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _sparse_ticks(
    ax: Axes, axis: str, labels: Sequence[str], max_labels: int = _MAX_TICK_LABELS
) -> None:
    """Label every tick, or every k-th one when more than ``max_labels`` would not fit."""
    step = max(1, math.ceil(len(labels) / max_labels))
    positions = np.arange(0, len(labels), step)
    shown = [labels[i] for i in positions]
    if axis == "x":
        ax.set_xticks(positions, shown, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_yticks(positions, shown)


def _heatmap(
    ax: Axes,
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cmap: str,
    vmin: float,
    vmax: float,
    fmt: str | None,
    max_row_labels: int = _MAX_TICK_LABELS,
) -> ScalarMappable:
    """Draw a labelled heatmap; annotate cells with ``fmt`` (None: no annotation)."""
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    _sparse_ticks(ax, "x", col_labels)
    _sparse_ticks(ax, "y", row_labels, max_row_labels)
    if fmt is not None:
        _annotate(ax, values, image.cmap, image.norm, fmt)
    return image


def _annotate(ax: Axes, values: np.ndarray, cmap: Colormap, norm: Normalize, fmt: str) -> None:
    """Write each finite value in its cell, black or white by the cell colour's luminance."""
    size = min(9.0, max(6.0, 9.0 - 0.12 * max(values.shape)))
    for (row, col), value in np.ndenumerate(values):
        if not np.isfinite(value):
            continue
        red, green, blue, _ = cmap(norm(value))
        color = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(col, row, fmt.format(value), ha="center", va="center", fontsize=size, color=color)


# --------------------------------------------------------------------------- accuracy


@styled
def plot_accuracy_matrices(
    matrix_csvs: Mapping[str, PathLike], method: str, out_png: PathLike, out_pdf: PathLike
) -> None:
    """One annotated heatmap of R (rows: after step, columns: tasks) per task order."""
    matrices = {order: read_accuracy_csv(path) for order, path in matrix_csvs.items()}
    side = 1.2 + 0.5 * max(len(m.columns) for m in matrices.values())
    fig = Figure(figsize=(side * len(matrices) + 1.2, side + 0.6), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (order, matrix) in zip(axes, matrices.items()):
        image = _heatmap(
            ax, matrix.to_numpy(), list(matrix.index), list(matrix.columns),
            cmap=_ACCURACY_CMAP, vmin=0.0, vmax=100.0, fmt="{:.1f}",
        )  # fmt: skip
        ax.set(title=str(order), xlabel="evaluated task", ylabel="after training on")
    fig.colorbar(image, ax=axes, label="accuracy (%)", shrink=0.9)
    fig.suptitle(f"{method}: accuracy matrix R[after step, task]")
    save_figure(fig, out_png, out_pdf)


def _with_base_row(matrix: pd.DataFrame) -> pd.DataFrame:
    """A published log's matrix lacks the base row; an empty one keeps step k at the same
    place as in this study's matrices."""
    if matrix.index[0] == BASE_ROW:
        return matrix
    empty = pd.DataFrame(np.nan, index=pd.Index([BASE_ROW], name=matrix.index.name),
                         columns=matrix.columns)
    return pd.concat([empty, matrix])


def _read_grid(matrix_csvs: Mapping[str, Mapping[str, PathLike]]):
    """(methods, orders, {(method, order): matrix}) of a method -> order -> CSV mapping.

    Matrices may be partial (published runs, ``reference_runs``): empty cells stay NaN, drawn
    blank, and a missing base row is added empty.
    """
    methods = list(matrix_csvs)
    orders = _unique(order for runs in matrix_csvs.values() for order in runs)
    matrices = {(m, o): _with_base_row(read_accuracy_csv(path, partial=True))
                for m, runs in matrix_csvs.items() for o, path in runs.items()}
    return methods, orders, matrices


def _no_run(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


@styled
def plot_method_matrices(
    matrix_csvs: Mapping[str, Mapping[str, PathLike]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Every method's accuracy matrices on one page: rows are methods, columns orders."""
    methods, orders, matrices = _read_grid(matrix_csvs)
    side = 1.0 + 0.45 * max(len(m.columns) for m in matrices.values())
    fig = Figure(figsize=(max(side * len(orders) + 1.4, 6.5), side * len(methods) + 0.6),
                 layout="constrained")
    axes = fig.subplots(len(methods), len(orders), squeeze=False)
    image = None
    for row, method in enumerate(methods):
        for col, order in enumerate(orders):
            ax, matrix = axes[row][col], matrices.get((method, order))
            if matrix is None:
                _no_run(ax)
                continue
            image = _heatmap(ax, matrix.to_numpy(), list(matrix.index), list(matrix.columns),
                             cmap=_ACCURACY_CMAP, vmin=0.0, vmax=100.0, fmt="{:.0f}")
            ax.set_title(f"{method} · {order}")
    fig.colorbar(image, ax=axes, label="accuracy (%)", shrink=0.6)
    fig.suptitle("Accuracy matrices R[after step, task] of every method")
    save_figure(fig, out_png, out_pdf)


def _plot_curves(ax: Axes, matrix: pd.DataFrame | None, colors: Mapping[str, tuple]) -> None:
    """Accuracy of every task across the sequence; a star marks the step that trains it.

    ``matrix`` is None for a (method, order) pair without a run; the panel then says so.
    """
    if matrix is None:
        _no_run(ax)
        return
    steps = np.arange(len(matrix.index))
    for task in matrix.columns:
        ax.plot(steps, matrix[task], marker="o", markersize=3, color=colors[task], label=task)
        if task in matrix.index:  # a joint (MTL) run trains every task at its one step
            trained_at = list(matrix.index).index(task)
            ax.plot(trained_at, matrix.loc[task, task], marker="*", markersize=10, color=colors[task])
    _sparse_ticks(ax, "x", list(matrix.index))
    ax.set_ylim(-3, 103)  # room for markers at 0 and 100
    ax.grid(alpha=0.3)


@styled
def plot_task_curves(
    matrix_csvs: Mapping[str, Mapping[str, PathLike]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Per-task accuracy after each step; rows are orders, columns methods."""
    methods, orders, matrices = _read_grid(matrix_csvs)
    colors = color_map(_unique(t for m in matrices.values() for t in m.columns))
    fig = Figure(figsize=(3.8 * len(methods) + 2.0, 3.2 * len(orders) + 0.8), layout="constrained")
    axes = fig.subplots(len(orders), len(methods), squeeze=False, sharey=True)
    for row, order in enumerate(orders):
        for col, method in enumerate(methods):
            axes[row][col].set_title(f"{method} · {order}")
            _plot_curves(axes[row][col], matrices.get((method, order)), colors)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("after training on")
    handles = [Line2D([], [], color=c, marker="o") for c in colors.values()]
    fig.legend(handles, list(colors), title="task", loc="outside right upper")
    fig.suptitle("Accuracy on each task over the training sequence (★ = step that trains it)")
    save_figure(fig, out_png, out_pdf)


# --------------------------------------------------------------------------- run summaries


@styled
def plot_aa_bwt(summary_jsons: Sequence[PathLike], out_png: PathLike, out_pdf: PathLike) -> None:
    """Grouped AA and BWT bars per method, mean ± std over all its runs (orders and seeds); where
    the runs ranked their tasks' options, the option-ranking AA and BWT stand hatched beside them."""
    runs = load_runs(summary_jsons)
    series = [(key, label) for key, label in (("aa", "AA"), ("ranked_aa", "AA (ranked)"),
                                              ("bwt", "BWT"), ("ranked_bwt", "BWT (ranked)"))
              if runs[key].notna().any()]
    stats = runs.groupby("method", sort=False)[[key for key, _ in series]].agg(["mean", "std"])
    positions = np.arange(len(stats.index))
    width = 0.76 / len(series)
    fig = Figure(figsize=(0.65 * len(series) * len(positions) + 3.0, 4.5), layout="constrained")
    ax = fig.subplots()
    colors = {"aa": "C0", "bwt": "C1"}
    for i, (key, label) in enumerate(series):
        means, stds = stats[(key, "mean")], stats[(key, "std")].fillna(0.0)
        bars = ax.bar(positions + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds,
                      capsize=3, label=label, color=colors[key.removeprefix("ranked_")],
                      hatch="//" if key.startswith("ranked_") else None,
                      alpha=0.6 if key.startswith("ranked_") else 1.0)
        ax.bar_label(bars, labels=[_fmt(v) for v in means], padding=2, fontsize=7)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(positions, list(stats.index), rotation=30, ha="right", rotation_mode="anchor")
    ax.set(xlabel="method", ylabel="percent")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(
        "Average accuracy (AA) and backward transfer (BWT)\nmean ± std over orders and seeds"
        + ("; ranked: the most likely listed option" if len(series) > 2 else "")
    )
    save_figure(fig, out_png, out_pdf)


def aa_per_order(runs: pd.DataFrame) -> pd.DataFrame:
    """AA mean, std (over seeds; 0 for one seed) and seed count per (method, order)."""
    stats = runs.groupby(["method", "order"], sort=False)["aa"].agg(["mean", "std", "count"])
    return stats.fillna({"std": 0.0})


@styled
def plot_aa_per_order(summary_jsons: Sequence[PathLike], out_png: PathLike, out_pdf: PathLike) -> None:
    """AA per method, one bar per order; error bars are the std over seeds."""
    stats = aa_per_order(load_runs(summary_jsons))
    methods = _unique(stats.index.get_level_values("method"))
    orders = _unique(stats.index.get_level_values("order"))
    width = 0.8 / len(orders)
    positions = np.arange(len(methods))
    fig = Figure(figsize=(1.1 * len(methods) * max(1, len(orders) / 2) + 3.0, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, order in enumerate(orders):
        rows = [stats.loc[(m, order)] if (m, order) in stats.index else None for m in methods]
        means = [math.nan if r is None else r["mean"] for r in rows]
        stds = [0.0 if r is None else r["std"] for r in rows]
        bars = ax.bar(positions + (i - (len(orders) - 1) / 2) * width, means, width, yerr=stds,
                      capsize=3, label=order_label(order) if str(order).isdigit() else str(order))
        ax.bar_label(bars, labels=[_fmt(v) for v in means], padding=2, fontsize=7)
    seeds = int(stats["count"].max())
    ax.set_xticks(positions, methods, rotation=30, ha="right", rotation_mode="anchor")
    ax.set(xlabel="method", ylabel="average accuracy AA (%)", ylim=(0, 105))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(len(orders), 6))
    ax.set_title(f"AA per method and order\nerror bars: std over seeds (up to {seeds})")
    save_figure(fig, out_png, out_pdf)


def learnability_retention(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean and std over runs of learning accuracy (mean R[t][t]) and BWT, and
    whether it is on the Pareto front (no other method at least as good on both, better on one)."""
    stats = (runs.groupby("method", sort=False)[["learning_accuracy", "bwt"]].agg(["mean", "std"])
             .dropna(subset=[("learning_accuracy", "mean"), ("bwt", "mean")]))  # MTL has neither
    learn, keep = stats[("learning_accuracy", "mean")], stats[("bwt", "mean")]
    front = [not any((learn[o] >= learn[m]) and (keep[o] >= keep[m])
                     and ((learn[o] > learn[m]) or (keep[o] > keep[m])) for o in stats.index)
             for m in stats.index]
    return pd.DataFrame({
        "learning": learn, "learning_std": stats[("learning_accuracy", "std")].fillna(0.0),
        "bwt": keep, "bwt_std": stats[("bwt", "std")].fillna(0.0), "pareto": front,
    })


@styled
def plot_learnability_retention(summary_jsons: Sequence[PathLike], out_png: PathLike,
                                out_pdf: PathLike) -> None:
    """One point per method: how well it learns each new task (mean R[t][t]) against how much
    it forgets (BWT); the Pareto front is joined by a line."""
    points = learnability_retention(load_runs(summary_jsons))
    fig = Figure(figsize=(6.5, 5.0), layout="constrained")
    ax = fig.subplots()
    colors = color_map(list(points.index))
    for method, row in points.iterrows():
        ax.errorbar(row["bwt"], row["learning"], xerr=row["bwt_std"], yerr=row["learning_std"],
                    marker="o" if row["pareto"] else "s", markersize=8, capsize=3,
                    color=colors[method], linestyle="none")
        ax.annotate(method, (row["bwt"], row["learning"]), textcoords="offset points", xytext=(6, 6))
    front = points[points["pareto"]].sort_values("bwt")
    ax.plot(front["bwt"], front["learning"], color="black", linewidth=0.8, linestyle="--",
            label="Pareto front")
    ax.set(xlabel="retention: backward transfer BWT (%)",
           ylabel="learnability: mean accuracy on a task right after training it (%)")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Learnability vs retention (mean ± std over orders and seeds)")
    save_figure(fig, out_png, out_pdf)


def tradeoff_points(summary_jsons: Sequence[PathLike]) -> pd.DataFrame:
    """Per method family and learning-rate factor (1 for the method itself, its variants'
    factors else): mean ± std over runs of learning (mean R[t][t]) and BWT, and the forgetting
    per point learned, -BWT / (learning - the base model's accuracy), from the means."""
    rows = []
    for path in summary_jsons:
        summary = read_json(path)
        family, scale = lr_variant_of(summary["method"]) or (summary["method"], 1.0)
        rows.append({"family": family, "scale": scale, "learning": summary["learning_accuracy"],
                     "bwt": summary["bwt"], "base": summary.get("base_accuracy")})
    runs = pd.DataFrame(rows).dropna(subset=["learning", "bwt"])
    points = runs.groupby(["family", "scale"], sort=False).agg(
        learning=("learning", "mean"), learning_std=("learning", "std"), bwt=("bwt", "mean"),
        bwt_std=("bwt", "std"), base=("base", "mean"), runs=("bwt", "size")).reset_index()
    gained = points["learning"] - points["base"]
    points["forgetting_per_point"] = (-points["bwt"] / gained).where(gained > 0)
    first_seen = {family: i for i, family in enumerate(_unique(points["family"]))}
    return (points.fillna({"learning_std": 0.0, "bwt_std": 0.0})
            .assign(order=points["family"].map(first_seen))
            .sort_values(["order", "scale"]).drop(columns="order").reset_index(drop=True))


@styled
def plot_tradeoff(summary_jsons: Sequence[PathLike], out_png: PathLike, out_pdf: PathLike) -> None:
    """Left: learning against retention for every method at each learning-rate factor (one line
    per method, one marker per factor). Right: the forgetting per point learned at each factor."""
    points = tradeoff_points(summary_jsons)
    if points.empty:
        raise ValueError(f"no run with learning accuracy and BWT in {len(summary_jsons)} summaries")
    fig = Figure(figsize=(11.5, 5.0), layout="constrained")
    ax, ratio_ax = fig.subplots(1, 2, width_ratios=(3, 2))
    colors = color_map(_unique(points["family"]))
    scales = sorted(points["scale"].unique())
    markers = dict(zip(scales, "osD^v<>p*"))
    for family, line in points.groupby("family", sort=False):
        ax.errorbar(line["bwt"], line["learning"], xerr=line["bwt_std"], yerr=line["learning_std"],
                    color=colors[family], capsize=3, label=family, alpha=0.8)
        for _, point in line.iterrows():
            ax.plot(point["bwt"], point["learning"], marker=markers[point["scale"]], markersize=8,
                    color=colors[family], markeredgecolor="black", linestyle="none")
        ratio_ax.plot(line["scale"], line["forgetting_per_point"], marker="o", color=colors[family],
                      label=family)
    for scale, marker in markers.items():
        ax.plot([], [], marker=marker, color="grey", markeredgecolor="black", linestyle="none",
                label=f"x{scale:g} lr")
    ax.set(xlabel="retention: backward transfer BWT (%)",
           ylabel="learning: mean accuracy on a task right after training it (%)",
           title="Learning vs retention (mean ± std over orders and seeds)")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    ratio_ax.set_xscale("log", base=2)
    ratio_ax.set_xticks(scales, [f"x{scale:g}" for scale in scales])
    ratio_ax.set(xlabel="multiple of the method's tuned learning rate",
                 ylabel="points forgotten per point learned (-BWT / gain)",
                 title="Forgetting per point learned")
    ratio_ax.set_ylim(bottom=0)
    ratio_ax.grid(alpha=0.3)
    ratio_ax.legend(fontsize=8)
    save_figure(fig, out_png, out_pdf)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def _mean_curve(method: str, curves: Sequence[Sequence[float | None]]) -> np.ndarray:
    """Step-wise mean of a method's general-ability curves, which must share one length."""
    lengths = {len(curve) for curve in curves}
    if len(lengths) != 1:
        raise ValueError(f"{method}: runs have different numbers of steps {sorted(lengths)}")
    return np.nanmean(np.array(curves, dtype=float), axis=0)


@styled
def plot_general_retention(
    summary_jsons: Sequence[PathLike], out_png: PathLike, out_pdf: PathLike
) -> None:
    """General-ability accuracy from the base model through each step, mean over runs."""
    runs = load_runs(summary_jsons)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    longest = 0
    for method, group in runs.groupby("method", sort=False):
        curve = _mean_curve(method, group["general_curve"].tolist())
        retention = group["general_retention"].mean()
        note = "n/a" if math.isnan(retention) else f"{retention:.1f}%"
        ax.plot(np.arange(len(curve)), curve, marker="o", label=f"{method} (retention {note})")
        longest = max(longest, len(curve))
    ax.set_xticks(np.arange(longest), ["base", *map(str, range(1, longest))])
    ax.set(xlabel="after training task k", ylabel="general-ability accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("General ability over the sequence (mean over runs)")
    save_figure(fig, out_png, out_pdf)


# --------------------------------------------------------------------------- training internals


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean over ``window`` points (shorter at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (sums[1:] - sums[starts]) / (np.arange(1, len(values) + 1) - starts)


def _plot_losses(ax: Axes, logs: Sequence[TaskLog], colors: Mapping[str, tuple]) -> None:
    """One run's loss per optimizer step over its whole sequence, each task's steps in its
    colour (raw, light; running mean, dark) with the task boundaries marked."""
    start = 0
    for log in logs:
        loss = np.asarray(log.loss, dtype=float)
        steps = start + np.arange(1, len(loss) + 1)
        ax.plot(steps, loss, color=colors[log.task], alpha=0.25, linewidth=0.6)
        ax.plot(steps, _smoothed(loss, max(1, len(loss) // 20)), color=colors[log.task], linewidth=1.6)
        if start:
            ax.axvline(start + 0.5, color="0.6", linestyle=":", linewidth=0.8)
        start += len(loss)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")


@styled
def plot_training_curves(
    train_logs: Mapping[str, Mapping[str, Sequence[PathLike]]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Training loss per optimizer step over the sequence; rows are orders, columns methods
    (every method runs every order)."""
    logs = {method: {order: [TaskLog.read(path) for path in paths] for order, paths in runs.items()}
            for method, runs in train_logs.items()}
    methods = list(logs)
    orders = _unique(order for runs in logs.values() for order in runs)
    colors = color_map(_unique(log.task for runs in logs.values() for run in runs.values() for log in run))
    fig = Figure(figsize=(3.8 * len(methods) + 2.0, 3.0 * len(orders) + 0.8), layout="constrained")
    axes = fig.subplots(len(orders), len(methods), squeeze=False, sharey=True)
    for row, order in enumerate(orders):
        for col, method in enumerate(methods):
            axes[row][col].set_title(f"{method} · {order}")
            _plot_losses(axes[row][col], logs[method][order], colors)
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss")
    for ax in axes[-1]:
        ax.set_xlabel("optimizer step over the sequence")
    handles = [Line2D([], [], color=color) for color in colors.values()]
    fig.legend(handles, list(colors), title="task trained", loc="outside right upper")
    fig.suptitle("Training loss per step (light: every step; dark: running mean over 5 % of a task)")
    save_figure(fig, out_png, out_pdf)


def _frozen_fractions(paths: Sequence[PathLike]) -> pd.DataFrame:
    """Frozen fraction k/r per target (rows) and task step (columns) from train logs."""
    logs = [TaskLog.read(path) for path in paths]
    targets = _unique(t for log in logs for t in log.ranks)
    columns = [f"{log.step}: {log.task}" for log in logs]
    fractions = pd.DataFrame(0.0, index=targets, columns=columns)
    for path, column, log in zip(paths, columns, logs):
        for target, frozen in log.frozen_ranks.items():
            rank = log.ranks.get(target, 0)
            if rank <= 0:
                raise ValueError(f"{path}: frozen rank for {target!r} without a positive rank")
            fractions.loc[target, column] = frozen / rank
    return fractions


@styled
def plot_frozen_ranks(
    train_logs: Mapping[str, Sequence[PathLike]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Heatmap of the frozen rank fraction k/r per target and step, one panel per method.

    Methods that never freeze anything (every k is 0) are skipped and named in the title.
    Panels share the target axis when all methods constrain the same targets.
    """
    fractions = {method: _frozen_fractions(paths) for method, paths in train_logs.items()}
    shown = {m: f for m, f in fractions.items() if f.to_numpy().any()}
    skipped = [m for m in fractions if m not in shown]
    n_rows = max((len(f.index) for f in shown.values()), default=1)
    n_cols = max((len(f.columns) for f in shown.values()), default=1)
    height = min(max(_RANK_ROW_INCHES * n_rows + 2.5, 4.0), 40.0)
    fig = Figure(
        figsize=((0.35 * n_cols + 1.0) * max(len(shown), 1) + 4.5, height), layout="constrained"
    )
    title = "Frozen rank fraction k/r per target and task step"
    if skipped:
        title += f"\nskipped (nothing frozen): {', '.join(skipped)}"
    fig.suptitle(title)
    if not shown:
        fig.text(0.5, 0.5, "no method froze any rank", ha="center", va="center")
        save_figure(fig, out_png, out_pdf)
        return
    shared = len({tuple(f.index) for f in shown.values()}) == 1
    axes = fig.subplots(1, len(shown), squeeze=False, sharey=shared)[0]
    for ax, (method, frac) in zip(axes, shown.items()):
        image = _heatmap(
            ax, frac.to_numpy(), list(frac.index), list(frac.columns),
            cmap="magma", vmin=0.0, vmax=1.0, fmt="{:.2f}" if n_rows <= 24 else None,
            max_row_labels=int((height - 2.5) / (0.8 * _RANK_ROW_INCHES)),
        )  # fmt: skip
        ax.set(title=method, xlabel="after task step")
        ax.tick_params(axis="y", labelsize=6 if n_rows > 24 else 9)
    for ax in axes[1:] if shared else []:
        ax.tick_params(axis="y", labelleft=False)
    axes[0].set_ylabel("target")
    fig.colorbar(image, ax=axes, label="frozen fraction k / r", shrink=min(0.8, 6.0 / height))
    save_figure(fig, out_png, out_pdf)


def _unit_table(logs: Sequence[TaskLog], key: str) -> pd.DataFrame:
    """``key`` (importance or retention ratio) per unit (rows) and task step (columns)."""
    columns = {f"{log.step}: {log.task}": log.importance[key] for log in logs}
    units = _unique(unit for values in columns.values() for unit in values)
    return pd.DataFrame(columns, index=units, dtype=float)


def rule_limits(logs: Sequence[TaskLog]) -> dict[str, str]:
    """Per unit, where the rule hit a limit: `` [clamped 2@1,3; mrr@2]`` -- targets clamped to
    r - 1 (count at each step) and steps where its importance was <= 0 (logs before these keys
    existed show none)."""
    notes: dict[str, list[str]] = {}
    for log in logs:
        report = log.importance
        unit_of = {name: next((u for u in report["importance"] if name == u or name.startswith(u + ".")),
                              name)
                   for name in report.get("clamped_targets", [])}
        counts = pd.Series(list(unit_of.values()), dtype=object).value_counts()
        for unit, count in counts.items():
            notes.setdefault(unit, []).append(f"clamped {count}@{log.step}")
        for unit in report.get("unimportant_units", []):
            notes.setdefault(unit, []).append(f"mrr@{log.step}")
    return {unit: f" [{'; '.join(items)}]" for unit, items in notes.items()}


@styled
def plot_importance_ratios(
    train_logs: Mapping[str, Sequence[PathLike]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Importance I and retention ratio r per unit (block or target) and task step, per method.

    Reads the ``importance`` and ``retention_ratio`` entries of importance-rule train logs
    (steps trained without the constraint have none and are left out).
    """
    logs = {method: [log for log in map(TaskLog.read, paths) if log.measured_importance]
            for method, paths in train_logs.items()}
    logs = {method: entries for method, entries in logs.items() if entries}
    if not logs:
        raise ValueError(f"no importance in the train logs of {sorted(train_logs)}")
    tables = {method: (_unit_table(entries, "importance"), _unit_table(entries, "retention_ratio"))
              for method, entries in logs.items()}
    limits = {method: rule_limits(entries) for method, entries in logs.items()}
    n_rows = max(len(importance.index) for importance, _ in tables.values())
    height = min(max(_RANK_ROW_INCHES * 2 * n_rows + 2.0, 3.2), 40.0) * len(tables)
    fig = Figure(figsize=(11.0, height), layout="constrained")
    axes = fig.subplots(len(tables), 2, squeeze=False)
    for row, (method, (importance, ratio)) in enumerate(tables.items()):
        first = logs[method][0].importance
        fmt = "{:.2f}" if n_rows <= 24 else None
        panels = ((importance, "coolwarm", -1.0, 1.0, "importance I (input/output cosine)"),
                  (ratio, "magma", 0.0, 1.0,
                   f"retention ratio r (mrr {first['mrr']}, trr {first['trr']})"))
        for ax, (table, cmap, vmin, vmax, label) in zip(axes[row], panels):
            image = _heatmap(ax, table.to_numpy(),
                             [_wrap_name(u + limits[method].get(u, "")) for u in table.index],
                             list(table.columns), cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt)
            ax.set(title=f"{method} ({first['granularity']}): {label}", xlabel="task step")
            ax.tick_params(axis="y", labelsize=7)
            fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("What the adaptive rule measured on the previous task's samples\n"
                 "[clamped n@t: n targets asked for k >= rank at step t, kept at rank - 1;"
                 " mrr@t: importance <= 0, kept mrr]")
    save_figure(fig, out_png, out_pdf)


ALL_TARGETS = "all targets"
NEW_TASK = "new task"


def premise_shares(summary_jsons: Sequence[PathLike]) -> pd.DataFrame:
    """One row per (run, step >= 2, task, unit): the task's input share in the frozen subspace.

    ``series`` is ``new task`` or how many steps back the task was trained (``1 back``: the
    previous task), so runs of different orders line up; ``unit`` is ``all targets`` or a block.
    Runs whose summary has no premise are left out.
    """
    rows = []
    for path in summary_jsons:
        summary = read_json(path)
        premise = summary.get("premise")
        if not premise:
            continue
        for step in premise["steps"]:
            if step["index"] < 2 or not step["shares"]:
                continue
            position = {task: i for i, task in enumerate(summary["tasks"], start=1)}
            for task, share in step["shares"].items():
                back = step["index"] - position[task]
                series = NEW_TASK if back == 0 else f"{back} back"
                units = {ALL_TARGETS: share["input"],
                         **{block: value["input"] for block, value in share["blocks"].items()}}
                rows += [{"method": summary["method"], "subspace_of": premise["subspace_of"],
                          "step": step["index"], "series": series, "unit": unit, "share": value}
                         for unit, value in units.items()]
    return pd.DataFrame(rows, columns=["method", "subspace_of", "step", "series", "unit", "share"])


@styled
def plot_premise(summary_jsons: Sequence[PathLike], out_png: PathLike, out_pdf: PathLike) -> None:
    """Share of each task's input energy in the frozen right subspace, per step: earlier tasks
    by how far back they were trained, the new task dashed; rows methods, columns all targets
    then each block; mean ± std over runs (:mod:`asvd.evaluation.premise`)."""
    table = premise_shares(summary_jsons)
    if table.empty:
        raise ValueError(f"no premise measured in {len(summary_jsons)} run summaries")
    methods = _unique(table["method"])
    units = [ALL_TARGETS] + [unit for unit in _unique(table["unit"]) if unit != ALL_TARGETS]
    series = sorted(set(table["series"]) - {NEW_TASK}, key=_natural_key)
    colors = dict(zip(series, matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(series)))))
    stats = table.groupby(["method", "unit", "series", "step"])["share"].agg(["mean", "std"])
    steps = sorted(set(table["step"]))
    fig = Figure(figsize=(2.6 * len(units) + 1.5, 2.4 * len(methods) + 1.4), layout="constrained")
    axes = fig.subplots(len(methods), len(units), squeeze=False, sharex=True, sharey=True)
    for row, method in enumerate(methods):
        stand_in = table.loc[table["method"] == method, "subspace_of"].iloc[0]
        for col, unit in enumerate(units):
            ax = axes[row][col]
            drawn = [*series, NEW_TASK]
            for offset, name in enumerate(drawn):
                key = (method, unit, name)
                if key not in stats.index.droplevel("step"):
                    continue
                values = stats.loc[key]
                new = name == NEW_TASK
                dodge = 0.06 * (offset - (len(drawn) - 1) / 2)  # side by side, not on top
                ax.errorbar(values.index + dodge, values["mean"], yerr=values["std"].fillna(0.0),
                            label=name, color="black" if new else colors[name],
                            linestyle="--" if new else "-", marker="o", markersize=3, capsize=2)
            ax.grid(alpha=0.3)
            ax.set_xticks(steps)
            ax.set_xlim(steps[0] - 0.5, steps[-1] + 0.5)
            title = _wrap_name(unit, 28) if row == 0 else ""
            ax.set_title(title, fontsize=8)
            if col == 0:
                label = method if stand_in == "own" else f"{method}\n({stand_in}'s rule)"
                ax.set_ylabel(f"{label}\nshare in V_h")
            if row == len(methods) - 1:
                ax.set_xlabel("task step")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle("Where each task's inputs fall: share of input energy in the frozen right "
                 "subspace V_h\n(the premise holds where earlier tasks stand near 1 and clearly "
                 "above the new task; y axis zoomed to the data)")
    save_figure(fig, out_png, out_pdf)


@styled
def plot_subspace_overlap(
    runs: Mapping[str, Mapping[str, Sequence[PathLike]]], out_png: PathLike, out_pdf: PathLike
) -> None:
    """Per target, the share of task t's frozen subspace that task t+1 keeps frozen, per method.

    ``runs[method]`` holds ``svd_caches`` (checkpoints 0..T-1) and ``train_logs`` (tasks 1..T);
    see :func:`asvd.analysis.subspaces.overlap_table`. Blank cells: the target was free in task t.
    """
    tables = {method: overlap_table(files["svd_caches"], files["train_logs"])
              for method, files in runs.items()}
    n_rows = max(len(table.index) for table in tables.values())
    n_cols = max(len(table.columns) for table in tables.values())
    height = min(max(_RANK_ROW_INCHES * n_rows + 2.5, 4.0), 40.0)
    fig = Figure(figsize=((0.5 * n_cols + 1.2) * len(tables) + 4.5, height), layout="constrained")
    axes = fig.subplots(1, len(tables), squeeze=False, sharey=True)[0]
    for ax, (method, table) in zip(axes, tables.items()):
        image = _heatmap(ax, table.to_numpy(), list(table.index), list(table.columns),
                         cmap="viridis", vmin=0.0, vmax=1.0, fmt="{:.2f}" if n_rows <= 40 else None,
                         max_row_labels=int((height - 2.5) / (0.8 * _RANK_ROW_INCHES)))
        ax.set(title=method, xlabel="task t -> t+1")
        ax.tick_params(axis="y", labelsize=6 if n_rows > 24 else 9)
    for ax in axes[1:]:
        ax.tick_params(axis="y", labelleft=False)
    axes[0].set_ylabel("target")
    fig.colorbar(image, ax=axes, label="||U_t^T U_t+1||^2 / k_t", shrink=min(0.8, 6.0 / height))
    fig.suptitle("Overlap of successive tasks' frozen subspaces\n"
                 "(1: task t+1 keeps every direction task t froze)")
    save_figure(fig, out_png, out_pdf)


def _cache_targets(path: PathLike) -> list[str]:
    """Targets that have singular values in an SVD cache, in natural order."""
    check_readable(path)
    with safe_open(str(path), framework="numpy") as cache:
        names = [key.removesuffix(".S") for key in cache.keys() if key.endswith(".S")]
    return sorted(names, key=_natural_key)


def _spread(names: Sequence[str], n: int) -> list[str]:
    """``n`` names evenly spaced over ``names`` (first and last included)."""
    if n < 1 or not names:
        raise ValueError(f"cannot pick {n} targets from {len(names)}")
    picks = np.linspace(0, len(names) - 1, min(n, len(names))).round().astype(int)
    return [names[i] for i in _unique(map(int, picks))]


def _read_spectra(path: PathLike, targets: Sequence[str]) -> dict[str, np.ndarray]:
    """Singular values of ``targets`` from one cache; only the ``.S`` tensors are loaded."""
    check_readable(path)
    with safe_open(str(path), framework="numpy") as cache:
        keys = set(cache.keys())
        missing = [t for t in targets if f"{t}.S" not in keys]
        if missing:
            raise ValueError(f"{path}: no singular values for {missing}")
        return {t: cache.get_tensor(f"{t}.S").astype(np.float64) for t in targets}


@styled
def plot_singular_spectra(
    svd_caches: Mapping[str, Sequence[PathLike]],
    targets: Sequence[str] | int,
    out_png: PathLike,
    out_pdf: PathLike,
) -> None:
    """Singular values (log scale) per checkpoint: rows are methods, columns targets.

    ``svd_caches[method]`` lists the caches of the base model and after tasks 1..T (each
    method's own targets); an int ``targets`` picks that many targets spread evenly over those
    every method's base cache holds.
    """
    if isinstance(targets, int):
        shared = set.intersection(*(set(_cache_targets(paths[0])) for paths in svd_caches.values()))
        targets = _spread(sorted(shared, key=_natural_key), targets)
    n_checkpoints = max(len(paths) for paths in svd_caches.values())
    # one discrete colour per checkpoint, so the colorbar reads off a line's step exactly
    cmap = matplotlib.colormaps["viridis"].resampled(n_checkpoints)
    norm = BoundaryNorm(np.arange(n_checkpoints + 1) - 0.5, n_checkpoints)
    fig = Figure(
        figsize=(3.6 * len(targets) + 1.5, 2.9 * len(svd_caches) + 1.0), layout="constrained"
    )
    axes = fig.subplots(len(svd_caches), len(targets), squeeze=False)
    for row, (method, paths) in enumerate(svd_caches.items()):
        for step, path in enumerate(paths):
            for col, values in enumerate(_read_spectra(path, targets).values()):
                index = np.arange(1, len(values) + 1)
                axes[row][col].semilogy(index, values, color=cmap(norm(step)), linewidth=1.2)
        axes[row][0].set_ylabel(f"{method}\nsingular value")
    for col, target in enumerate(targets):
        axes[0][col].set_title(_wrap_name(target), fontsize=9)
        axes[-1][col].set_xlabel("index")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    colorbar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes, shrink=0.8)
    colorbar.set_label("checkpoint (0 = base, k = after task k)")
    colorbar.set_ticks(range(n_checkpoints))
    fig.suptitle("Singular value spectra across the task sequence")
    save_figure(fig, out_png, out_pdf)
