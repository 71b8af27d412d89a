"""The cost benchmark's figure: the constraint's step time and memory against model size, and
its overhead against peft's OSF pass by pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from asvd.cost.comparison import against_peft, summarize
from asvd.io import read_json
from asvd.plotting import PathLike, color_map, save_figure, styled

_BENCH_LABELS = {"asvd": "asvd (on the gradient)", "asvd_update": "asvd (on the update)",
                 "peft_osf": "peft OSF"}


@styled
def plot_constraint_cost(report_json: PathLike, out_png: PathLike, out_pdf: PathLike) -> None:
    """Step-time ratios to each case's plain twin and peak-memory ratios to plain AdamW against
    model size, per method and fraction (medians over the repeats, bars spanning their range),
    and the constraint's overhead as a share of peft OSF's compared pass by pass (mean, bars
    2 std; dotted: the 0.75 bar)."""
    report = read_json(report_json)
    rows = pd.DataFrame(summarize(report["cases"]))
    params = {c["size"]: c["trained_parameters"] for c in report["cases"] if c["method"] == "plain"}
    rows = rows[rows["method"] != "plain"].assign(params=rows["size"].map(params))
    shares = pd.DataFrame(against_peft(report["cases"]), columns=[
        "size", "method", "fraction_frozen", "share_mean", "share_std"]).dropna()
    shares = shares.assign(params=shares["size"].map(params))
    fig = Figure(figsize=(14, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    colors = color_map(list(_BENCH_LABELS))
    for (method, fraction), group in rows.groupby(["method", "fraction_frozen"], sort=True):
        group = group.sort_values("params")
        style = dict(color=colors[method], marker="o",
                     linestyle="-" if fraction <= 0.5 else "--",
                     label=f"{_BENCH_LABELS.get(method, method)}, {fraction:.0%} frozen")
        for ax, column in zip(axes, ("step_ratio", "memory_ratio")):  # bars: range of the repeats
            low, high = np.array(group[f"{column}_range"].tolist()).T
            ax.errorbar(group["params"], group[column], capsize=3, **style,
                        yerr=[group[column] - low, high - group[column]])
        share = shares[(shares["method"] == method) & (shares["fraction_frozen"] == fraction)]
        if len(share):
            share = share.sort_values("params")
            axes[2].errorbar(share["params"], share["share_mean"], yerr=2 * share["share_std"],
                             capsize=3, **style)
    axes[2].axhline(0.75, color="dimgrey", linewidth=1.2, linestyle=":")
    for ax, ylabel in zip(axes, ("step time / plain AdamW twin (median)", "peak memory / plain AdamW",
                                 "step overhead / peft OSF's, per pass")):
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.margins(x=0.12)
        ax.set(xlabel="trained parameters (target matrices)", ylabel=ylabel)
        for size, count in params.items():  # name each size at the top of the axes
            ax.annotate(size, (count, 1.0), xycoords=("data", "axes fraction"),
                        textcoords="offset points", xytext=(0, -10), ha="center", fontsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
    cases = report["cases"]
    fig.suptitle(f"Cost of the subspace constraint vs model size ({cases[0]['device']}, "
                 f"{cases[0]['dtype']}; right: mean ± 2 std over passes, dotted line 0.75)")
    save_figure(fig, out_png, out_pdf)
