"""Published continual-learning runs as rows beside this study's own (config ``reference_runs``).

A reference run is either a directory of O-LoRA-style per-step results
(``outputs/<k>-<task>/all_results.json``, as O-LoRA's repository publishes them) or an
accuracy-matrix CSV, which may be partial: published logs score only the tasks seen so far and
have no base row. It becomes an accuracy matrix and a run summary in the layout a trained run
writes, so the summary table and the comparison figures take it as one more method. Metrics that
need cells the log lacks are null, and the summary's ``notes`` say which cells.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from asvd.analysis.metrics import (
    cl_metrics,
    fraction_scale,
    metric_notes,
    read_accuracy_csv,
    read_olora_results,
    write_accuracy_csv,
)
from asvd.io import write_json


def source_files(source: str | os.PathLike) -> list[Path]:
    """The files a reference run is read from, so a workflow reruns when one of them changes."""
    path = Path(source)
    if path.is_dir():
        return sorted((path / "outputs").glob("*/all_results.json"))
    return [path]


def load_reference_matrix(source: str | os.PathLike) -> pd.DataFrame:
    """The accuracy matrix of an O-LoRA run directory or of a (partial) accuracy-matrix CSV."""
    path = Path(source)
    if path.is_dir():
        if not (path / "outputs").is_dir():
            raise ValueError(f"{path}: an O-LoRA run directory holds outputs/<k>-<task>/all_results.json")
        matrix = read_olora_results(path)
    elif path.is_file():
        matrix = read_accuracy_csv(path, partial=True)
    else:
        raise ValueError(f"{path}: no such file or directory")
    if why := fraction_scale(matrix):
        raise ValueError(f"{path}: {why}")
    return matrix


def reference_summary(matrix: pd.DataFrame, name: str, order: int | str, source: str) -> dict:
    """A run summary of ``matrix`` under method ``name``: the keys a trained run's summary has
    (no seed, micro accuracy, general ability, option ranking, premise or tuning: logs do not
    give them) plus its source."""
    return {
        "method": name,
        "order": order,
        "seed": None,
        "reference": source,
        **cl_metrics(matrix),
        "micro_accuracy": None,
        "general": None,
        "ranked": None,
        "answers_in_options": None,
        "premise": None,
        "tuning": None,
        "tasks": list(matrix.columns),
        "notes": metric_notes(matrix),
    }


def collect_reference_run(
    source: str | os.PathLike,
    name: str,
    order: int | str,
    matrix_csv: str | os.PathLike,
    summary_json: str | os.PathLike,
) -> dict:
    """Read a published run and write its accuracy matrix and summary atomically."""
    matrix = load_reference_matrix(source)
    summary = reference_summary(matrix, name, order, str(source))
    write_accuracy_csv(matrix, matrix_csv, partial=True)
    write_json(summary_json, summary)
    return summary
