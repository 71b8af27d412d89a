"""Results tables: mean ± std over seeds per (method, order), plus a per-method average.

Inputs are the per-run ``summary.json`` files written by :func:`asvd.analysis.metrics.collect_run`.
The CSV keeps numbers (``<metric>_mean``, ``<metric>_std``) for further processing; Markdown, LaTeX
and HTML show formatted ``mean ± std`` cells for reading (the HTML page inline in the Snakemake
report, where a CSV is only a download). Column ``n`` counts the seeds of a (method, order) row and
the orders of an ``average`` row.
"""

from __future__ import annotations

import html
import math
import os
from typing import Sequence

import pandas as pd
from pandas.api.typing import DataFrameGroupBy

from asvd.io import read_json, write_text

AVERAGE_ORDER = "average"

# summary key path -> column label; the order here is the table's column order
METRICS: dict[tuple[str, ...], str] = {
    ("aa",): "AA",
    ("bwt",): "BWT",
    ("fwt",): "FWT",
    ("forgetting",): "Forgetting",
    ("learning_accuracy",): "LA",
    ("micro_accuracy",): "Micro acc.",
    ("general", "retention"): "Gen. retention",
    # option ranking (asvd.evaluation.ranking): forgetting the task, not the answer format
    ("ranked", "aa"): "AA (ranked)",
    ("ranked", "bwt"): "BWT (ranked)",
    ("answers_in_options", "final"): "In options",
    # the method's premise (asvd.evaluation.premise): input energy in the frozen subspace
    ("premise", "earlier_input_share"): "Earlier in V_h",
    ("premise", "new_input_share"): "New in V_h",
    # what tuning on the order's first task chose (asvd.train.tuning)
    ("tuning", "lr"): "Tuned lr",
    ("tuning", "trr"): "Tuned trr",
}


def metric_key(path: tuple[str, ...]) -> str:
    """Flat column name of a (possibly nested) summary key, e.g. ``general_retention``."""
    return "_".join(path)


def _lookup(summary: dict, path: tuple[str, ...], source: str | os.PathLike) -> float:
    """Value at ``path`` as float; None (undefined metric) becomes NaN so pandas skips it."""
    value: object = summary
    for key in path:
        if value is None:
            return math.nan  # a section the study does not have (e.g. no general-ability set)
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{source}: summary lacks {'.'.join(path)!r}")
        value = value[key]
    return math.nan if value is None else float(value)


def _run_record(summary: dict, source: str | os.PathLike) -> dict:
    for key in ("method", "order"):
        if key not in summary:
            raise ValueError(f"{source}: summary lacks {key!r}")
    general = summary.get("general") or {}
    return {
        "method": str(summary["method"]),
        "order": str(summary["order"]),
        "seed": summary.get("seed"),
        **{metric_key(path): _lookup(summary, path, source) for path in METRICS},
        "general_curve": [general.get("base"), *general.get("per_step", [])],
    }


def load_runs(summary_paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per run summary, in the order given (which fixes the method order everywhere)."""
    if not summary_paths:
        raise ValueError("no run summaries given")
    return pd.DataFrame([_run_record(read_json(p), p) for p in summary_paths])


def _stats(groups: DataFrameGroupBy) -> pd.DataFrame:
    """Mean, sample std (NaN for one member) and member count of every metric per group."""
    columns = [metric_key(path) for path in METRICS]
    stats = groups[columns].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats.insert(0, "n", groups.size())
    return stats


def aggregate_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (method, order) mean ± std over seeds, then one ``average`` row per method.

    The average row is the mean over orders of the per-order means (the papers' "avg" column);
    its std is the spread of those order means and its ``n`` the number of orders.
    """
    per_order = _stats(runs.groupby(["method", "order"], sort=False)).reset_index()
    order_means = per_order[["method", "order"] + [metric_key(p) + "_mean" for p in METRICS]]
    order_means = order_means.rename(columns=lambda c: c.removesuffix("_mean"))
    average = _stats(order_means.groupby("method", sort=False)).reset_index()
    average.insert(1, "order", AVERAGE_ORDER)
    blocks = [
        pd.concat([per_order[per_order["method"] == method], average[average["method"] == method]])
        for method in runs["method"].unique()
    ]
    return pd.concat(blocks, ignore_index=True)


def _cell(mean: float, std: float, plus_minus: str, missing: str) -> str:
    """``mean ± std`` with two decimals, or three significant digits where the mean is below
    0.01 (a learning rate)."""
    if math.isnan(mean):
        return missing
    number = "{:.3g}" if 0 < abs(mean) < 0.01 else "{:.2f}"
    return number.format(mean) + ("" if math.isnan(std) else plus_minus + number.format(std))


def display_table(stats: pd.DataFrame, plus_minus: str = " ± ", missing: str = "–") -> pd.DataFrame:
    """Human-readable table: one ``mean ± std`` string column per metric.

    ``missing`` marks undefined metrics (e.g. FWT without a base row).
    """
    table = pd.DataFrame(
        {"Method": stats["method"], "Order": stats["order"], "n": stats["n"].astype(int)}
    )
    for path, label in METRICS.items():
        key = metric_key(path)
        table[label] = [
            _cell(m, s, plus_minus, missing)
            for m, s in zip(stats[f"{key}_mean"], stats[f"{key}_std"])
        ]
    return table


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    """Escape LaTeX specials in labels; cells are escaped before ``$\\pm$`` is inserted."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _latex(table: pd.DataFrame, text_columns: Sequence[str], labels: int) -> str:
    """LaTeX tabular: ``text_columns`` and headers escaped, the first ``labels`` left-aligned."""
    table = table.copy()
    for column in text_columns:
        table[column] = table[column].map(_latex_escape)
    table.columns = [_latex_escape(c) for c in table.columns]
    return table.to_latex(index=False, escape=False,
                          column_format="l" * labels + "r" * (table.shape[1] - labels))


def _to_latex(stats: pd.DataFrame) -> str:
    # cells hold $\pm$ already, so only the label columns are escaped
    return _latex(display_table(stats, plus_minus=" $\\pm$ ", missing="--"), ("Method", "Order"), 2)


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 12px; background: #fff; color: #111; font: 13px/1.4 system-ui, sans-serif; }}
p {{ margin: 0 0 8px; color: #444; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 3px 9px; border-bottom: 1px solid #ddd; white-space: nowrap; text-align: right; }}
th {{ position: sticky; top: 0; background: #eef1f5; }}
td {{ font-variant-numeric: tabular-nums; }}
tbody tr:nth-child(even) {{ background: #f8f9fb; }}
th:nth-child(-n+{labels}), td:nth-child(-n+{labels}) {{ text-align: left; }}
</style>
</head>
<body>
<p>{note}</p>
{table}
</body>
</html>
"""


def _html(table: pd.DataFrame, title: str, note: str, labels: int) -> str:
    """A self-contained HTML page of ``table`` (inline CSS, nothing fetched, its charset
    declared), which the Snakemake report shows inline where a CSV is only a download; the first
    ``labels`` columns left-aligned."""
    return _HTML_PAGE.format(title=html.escape(title), note=html.escape(note), labels=labels,
                             table=table.to_html(index=False, border=0))


def environment_table(summary_paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per distinct environment the runs were trained in (package versions, torch
    threads, CPU, GPU) and how many runs each holds; published runs record none."""
    rows: list[dict] = []
    for path in summary_paths:
        recorded = read_json(path).get("environment")
        for env in recorded if isinstance(recorded, list) else [recorded] if recorded else []:
            row = {"python": env.get("python"), **(env.get("packages") or {}),
                   "torch_threads": env.get("torch_threads"), "cpu": env.get("cpu"),
                   "gpu": env.get("gpu") or "none"}
            match = next((r for r in rows if {k: v for k, v in r.items() if k != "runs"} == row), None)
            if match is None:
                rows.append({"runs": 1, **row})
            else:
                match["runs"] += 1
    return pd.DataFrame(rows, columns=["runs", "python"] if not rows else None)


def write_summary_tables(
    summary_paths: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    out_html: str | os.PathLike,
    out_environment: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Aggregate run summaries and write the CSV, Markdown, LaTeX and HTML tables atomically, and
    the environments the runs were trained in (``out_environment``, CSV)."""
    stats = aggregate_runs(load_runs(summary_paths))
    shown = display_table(stats)
    write_text(out_csv, stats.to_csv(index=False, lineterminator="\n"))
    write_text(out_md, shown.to_markdown(index=False) + "\n")
    write_text(out_tex, _to_latex(stats))
    write_text(out_html, _html(shown, "Summary", "Mean ± standard deviation over the n seeds of each "
                               "method and order; average rows: over the orders (n: orders). "
                               "–: undefined for the row.", labels=2))
    if out_environment is not None:
        write_text(out_environment, environment_table(summary_paths).to_csv(index=False, lineterminator="\n"))
    return stats


# --------------------------------------------------------------------------- beside the paper

PAPER, OURS = "paper", "this run"


def _order_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """``avg1-3`` -> ["1", "2", "3"]: which orders a printed average covers."""
    groups = {}
    for column in columns:
        if column.startswith("avg"):
            first, last = column.removeprefix("avg").split("-")
            groups[column] = [str(o) for o in range(int(first), int(last) + 1)]
    return groups


def _our_values(runs: pd.DataFrame, names: dict[str, str], metric: str,
                columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean over seeds of ``metric`` per (paper method name, order column); an average column
    only where every order it covers was run."""
    values: dict[str, dict[str, float]] = {}
    for method, group in runs.groupby("method", sort=False):
        per_order = group.groupby("order")[metric].mean()
        row = {str(order): float(value) for order, value in per_order.items()}
        for average, orders in _order_groups(columns).items():
            if all(order in row for order in orders):
                row[average] = sum(row[o] for o in orders) / len(orders)
        values[names.get(method, method)] = row
    return values


def paper_comparison(runs: pd.DataFrame, reference: pd.DataFrame,
                     method_names: dict[str, str]) -> pd.DataFrame:
    """The paper's table with this study's values beside each of its numbers.

    A reference with an ``order`` column is Table 1's layout (AA per order and the printed
    averages); one without is a per-method table of its metric columns (TRACE: ``op``, ``bwt``;
    OP is this study's AA). Cells without a value stay empty (NaN), never zero. Rows: the
    paper's methods in its order, then this study's methods the paper does not have.
    """
    numeric = [c for c in reference.columns if c not in ("method", "order", "source", "flag")]
    if "order" in reference.columns:
        orders = list(dict.fromkeys(reference["order"].astype(str)))
        paper = reference.pivot(index="method", columns="order", values=numeric[0])
        paper.columns = paper.columns.astype(str)
        ours = _our_values(runs, method_names, "aa", orders)
        columns = orders
    else:
        paper = reference.set_index("method")[numeric]
        source = {metric: "aa" if metric == "op" else metric for metric in numeric}
        # mean over orders of the per-order means over seeds, like the table's average rows
        means = (runs.groupby(["method", "order"], sort=False)[list(source.values())].mean()
                 .groupby(level="method", sort=False).mean())
        ours = {method_names.get(method, method): {m: float(row[source[m]]) for m in numeric}
                for method, row in means.iterrows()}
        columns = numeric
    methods = list(dict.fromkeys(reference["method"])) + [m for m in ours if m not in set(reference["method"])]
    table = pd.DataFrame({"method": methods})
    for column in columns:
        table[f"{column} {PAPER}"] = [paper.at[m, column] if m in paper.index else math.nan
                                      for m in methods]
        table[f"{column} {OURS}"] = [ours.get(m, {}).get(column, math.nan) for m in methods]
    return table


def write_paper_tables(summary_paths: Sequence[str | os.PathLike], reference_csv: str | os.PathLike,
                       method_names: dict[str, str], out_csv: str | os.PathLike,
                       out_md: str | os.PathLike, out_tex: str | os.PathLike,
                       out_html: str | os.PathLike) -> pd.DataFrame:
    """:func:`paper_comparison` as CSV (numbers, empty cells), Markdown, LaTeX and HTML."""
    table = paper_comparison(load_runs(summary_paths), pd.read_csv(reference_csv), method_names)
    write_text(out_csv, table.to_csv(index=False, lineterminator="\n"))
    shown = table.copy()
    for column in shown.columns[1:]:
        shown[column] = [_cell(v, math.nan, "", "") for v in shown[column]]
    write_text(out_md, shown.to_markdown(index=False) + "\n")
    write_text(out_tex, _latex(shown, shown.columns, 1))
    write_text(out_html, _html(shown, "The paper beside this study",
                               f"Each of the paper's numbers as printed ({PAPER}) beside this "
                               f"study's mean over seeds and, where the column averages them, "
                               f"orders ({OURS}); empty: no value.", labels=1))
    return table
