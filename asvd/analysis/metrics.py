"""Continual-learning metrics from the accuracy matrix (docs/benchmarks.md §5).

The accuracy matrix ``R`` is a DataFrame whose index (named ``after``) holds the checkpoint a row
was measured on -- ``base`` (before any continual training) and then one label per training task,
in training order -- and whose columns are the tasks in the same order. ``R.loc[a, t]`` is the
score in percent on task ``t`` after training through task ``a`` (accuracy for classification;
TRACE's tasks use their own metric, :mod:`asvd.evaluation.scoring`, and AA is then TRACE's OP). Every stage
that needs the matrix (CLI, tables, figures) goes through this module, so the definitions live in
one place.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from asvd.data.prepare import GENERAL
from asvd.io import read_json, write_json, write_text
from asvd.method_config import SCHEDULES
from asvd.train_log import TaskLog

BASE_ROW = "base"
JOINT_ROW = "joint"  # the one row after base of a jointly trained (MTL) run
INDEX_NAME = "after"
_OLORA_PREFIX = "predict_exact_match_for_"
_OLORA_STEP_DIR = re.compile(r"^(\d+)-(.+)$")


# --------------------------------------------------------------------------- building the matrix


def _eval_names(tasks: Sequence[str]) -> list[str]:
    """Default human-readable names of the evals, used only in error messages."""
    return ["base eval", *(f"eval after task {task!r}" for task in tasks)]


def _score(eval_: dict, name: str, source: str) -> dict:
    """Return the score record ``name`` of an eval, or say which eval lacks it."""
    try:
        return eval_["scores"][name]
    except (KeyError, TypeError):
        raise ValueError(f"{source}: no score for {name!r}") from None


def accuracy_matrix(
    base_eval: dict,
    step_evals: list[dict],
    tasks: list[str],
    *,
    sources: Sequence[str] | None = None,
    schedule: str = "sequential",
    score_key: str = "score",
) -> pd.DataFrame:
    """Assemble ``R`` from the base eval and one eval per training step.

    ``sources`` names the evals (e.g. their file paths) in error messages; by default they are
    called "base eval" and "eval after task ...". ``schedule`` ``per_task`` (PerTaskFT: a
    separate model per task) scores a task already trained by its own model, ``R[a][t] =
    R[t][t]`` for ``t <= a``, so nothing is forgotten by construction; later tasks by step
    ``a``'s model. ``joint`` (MTL) has one step eval, the jointly trained model: rows ``base``
    and ``joint``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is not one of {SCHEDULES}")
    joint = schedule == "joint"
    if len(step_evals) != (1 if joint else len(tasks)):
        raise ValueError(f"{len(tasks)} tasks but {len(step_evals)} step evals ({schedule})")
    sources = list(sources) if sources is not None else _eval_names([JOINT_ROW] if joint else tasks)
    evals = [base_eval, *step_evals]
    own_models = schedule == "per_task"

    def scored_by(row: int, column: int) -> int:
        return column + 1 if own_models and 0 < column + 1 <= row else row

    def cell(row: int, column: int, task: str) -> float:
        record = _score(evals[scored_by(row, column)], task, sources[scored_by(row, column)])
        if score_key not in record:
            raise ValueError(f"{sources[scored_by(row, column)]}: {task!r} has no {score_key!r}")
        return float(record[score_key])

    rows = [[cell(row, col, task) for col, task in enumerate(tasks)] for row in range(len(evals))]
    index = pd.Index([BASE_ROW, *([JOINT_ROW] if joint else tasks)], name=INDEX_NAME)
    return pd.DataFrame(rows, index=index, columns=list(tasks))


# --------------------------------------------------------------------------- metrics


def _none_if_nan(value: float | None) -> float | None:
    """JSON has no NaN; undefined metrics (e.g. BWT with one task) are stored as null."""
    return None if value is None or math.isnan(value) else float(value)


def _split_matrix(matrix: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (base row or None, T x T array of the rows after each task).

    A matrix without a ``base`` row (or with an empty one) is accepted because published logs
    (O-LoRA's) give only the rows after training steps; metrics that need the base row are then
    undefined.
    """
    tasks = list(matrix.columns)
    labels = list(matrix.index)
    first_step = 1 if labels[:1] == [BASE_ROW] else 0
    if labels[first_step:] != tasks:
        raise ValueError(
            f"accuracy matrix rows {labels} do not match "
            f"[{BASE_ROW!r} (optional), *tasks] with tasks {tasks}"
        )
    values = matrix.to_numpy(dtype=float)
    base = values[0] if first_step and not np.isnan(values[0]).all() else None
    return base, values[first_step:]


def metric_notes(matrix: pd.DataFrame) -> list[str]:
    """Why a metric of a partial matrix is null: the cells it needs that are missing."""
    if list(matrix.index)[-1:] == [JOINT_ROW]:
        return []
    base, steps = _split_matrix(matrix)
    tasks = list(matrix.columns)
    n_tasks = len(tasks)
    final = [f"R[{tasks[-1]}][{t}]" for j, t in enumerate(tasks) if np.isnan(steps[-1, j])]
    diagonal = [f"R[{t}][{t}]" for j, t in enumerate(tasks) if np.isnan(steps[j, j])]
    notes = []
    if final:
        notes.append(f"aa is null: missing {', '.join(final)}")
    if diagonal:
        notes.append(f"learning_accuracy is null: missing {', '.join(diagonal)}")
    if n_tasks > 1:
        left_out = [t for j, t in enumerate(tasks[:-1])
                    if np.isnan(steps[-1, j]) or np.isnan(steps[j, j])]
        if left_out:
            notes.append(f"bwt leaves out {', '.join(left_out)} (a cell missing)")
        unmeasured = [t for j, t in enumerate(tasks[:-1])
                      if np.isnan(steps[-1, j]) or np.isnan(steps[:-1, j]).all()]
        if unmeasured:
            notes.append(f"forgetting leaves out {', '.join(unmeasured)} (a cell missing)")
    if n_tasks > 1 and base is None:
        notes.append("fwt is null: the matrix has no base row (the model before training)")
    elif n_tasks > 1:
        zero_shot = [f"R[{tasks[j - 1]}][{tasks[j]}]" for j in range(1, n_tasks)
                     if np.isnan(steps[j - 1, j])] + [
                     f"R[base][{t}]" for j, t in enumerate(tasks[1:], 1) if np.isnan(base[j])]
        if zero_shot:
            notes.append(f"fwt is null: missing {', '.join(zero_shot)}")
    return notes


def _mean_of_present(terms: np.ndarray) -> float:
    """Mean of the per-task terms whose cells exist (NaN when none does)."""
    present = terms[~np.isnan(terms)]
    return float(np.mean(present)) if present.size else math.nan


def cl_metrics(matrix: pd.DataFrame) -> dict[str, float | None]:
    """AA, BWT, FWT, forgetting and learning accuracy of ``R``, all in percent.

    With rows 1..T the states after each task and row 0 the base model (docs/benchmarks.md §5):

    - ``aa`` = mean_j R[T][j]; ``learning_accuracy`` = mean_j R[j][j].
    - ``bwt`` = mean_{j<T} (R[T][j] - R[j][j]).
    - ``fwt`` = mean_{j>1} (R[j-1][j] - R[0][j]); None without a base row.
    - ``forgetting`` = mean_{j<T} (max_{1<=i<T} R[i][j] - R[T][j]). The max runs over rows
      1..T-1 only, as in Chaudhry et al. (2018): forgetting is measured against what continual
      training reached, not against the base model, which was never trained on task j. Rows
      before task j was learned are included (also as in Chaudhry); missing (NaN) entries, as
      in O-LoRA's published results, are ignored by the max.

    In a partial matrix (a published log) BWT and forgetting average over the tasks whose cells
    exist (:func:`metric_notes` names the ones left out); AA, learning accuracy and FWT need
    every cell of theirs and are None otherwise.

    BWT, FWT and forgetting are undefined (None) for a single task. A joint (MTL) matrix has
    only AA: its one model saw every task at once.
    """
    if list(matrix.index)[-1:] == [JOINT_ROW]:
        return {"aa": _none_if_nan(float(np.mean(matrix.loc[JOINT_ROW]))), "bwt": None, "fwt": None,
                "forgetting": None, "learning_accuracy": None}
    base, steps = _split_matrix(matrix)
    n_tasks = steps.shape[0]
    final = steps[-1]
    diagonal = np.diag(steps)
    metrics: dict[str, float | None] = {
        "aa": float(np.mean(final)),
        "bwt": None,
        "fwt": None,
        "forgetting": None,
        "learning_accuracy": float(np.mean(diagonal)),
    }
    if n_tasks > 1:
        metrics["bwt"] = _mean_of_present(final[:-1] - diagonal[:-1])
        best_before_last = np.fmax.reduce(steps[:-1, :-1], axis=0)  # ignores NaN
        metrics["forgetting"] = _mean_of_present(best_before_last - final[:-1])
        if base is not None:
            zero_shot = steps[np.arange(n_tasks - 1), np.arange(1, n_tasks)]
            metrics["fwt"] = float(np.mean(zero_shot - base[1:]))
    return {key: _none_if_nan(value) for key, value in metrics.items()}


# --------------------------------------------------------------------------- CSV format


def _check_matrix(matrix: pd.DataFrame, source: str | os.PathLike, partial: bool = False) -> None:
    """Enforce the fixed CSV layout (rows base, tasks...; finite percents) before write or use.

    ``partial``: a published log's matrix, which may lack the base row and leave cells empty
    (NaN: tasks not evaluated at a step).
    """
    tasks = list(matrix.columns)
    if not tasks:
        raise ValueError(f"{source}: accuracy matrix has no task columns")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"{source}: duplicate task columns {tasks}")
    reserved = [task for task in tasks if task in (BASE_ROW, JOINT_ROW)]
    if reserved:
        raise ValueError(f"{source}: a task named {reserved[0]!r}: that name is reserved for the "
                         f"row of the model before training ({BASE_ROW!r}) or trained jointly "
                         f"({JOINT_ROW!r}); rename the task")
    expected = [BASE_ROW, *tasks]
    layouts = [expected, [BASE_ROW, JOINT_ROW]] + ([tasks] if partial else [])
    if list(matrix.index) not in layouts:
        raise ValueError(f"{source}: rows {list(matrix.index)} should be {expected} "
                         + ("(base optional) " if partial else "")
                         + f"(or {[BASE_ROW, JOINT_ROW]} for a jointly trained model)")
    values = matrix.to_numpy(dtype=float)
    present = values[~np.isnan(values)] if partial else values
    if not np.all(np.isfinite(present)) or (present.size and (present.min() < 0 or present.max() > 100)):
        raise ValueError(f"{source}: accuracies must be finite percentages in [0, 100]"
                         + (" or empty" if partial else ""))


def _parse_cell(text: str, path: str | os.PathLike, line: int, partial: bool) -> float:
    if partial and not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError:
        hint = " (empty cells are allowed only in a partial matrix)" if not text.strip() else ""
        raise ValueError(f"{path}:{line}: {text!r} is not a number{hint}") from None


def read_accuracy_csv(path: str | os.PathLike, partial: bool = False) -> pd.DataFrame:
    """Read and validate an accuracy-matrix CSV (header ``after,<tasks>``, rows base, tasks).

    ``partial``: accept what published logs give, empty cells and no base row. A UTF-8 byte
    order mark (spreadsheets write one) and CRLF line ends are accepted either way.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    if not rows:
        raise ValueError(f"{path}: empty file, expected header '{INDEX_NAME},<task1>,...'")
    header, body = rows[0], rows[1:]
    if header[0] != INDEX_NAME:
        raise ValueError(f"{path}:1: first header column is {header[0]!r}, expected {INDEX_NAME!r}")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} fields, header has {len(header)}")
    values = [
        [_parse_cell(cell, path, line, partial) for cell in row[1:]]
        for line, row in enumerate(body, start=2)
    ]
    index = pd.Index([row[0] for row in body], name=INDEX_NAME)
    matrix = pd.DataFrame(values, index=index, columns=header[1:], dtype=float)
    _check_matrix(matrix, path, partial)
    return matrix


def write_accuracy_csv(matrix: pd.DataFrame, path: str | os.PathLike, partial: bool = False) -> None:
    """Validate ``matrix`` and write it atomically in the fixed CSV layout (``partial``: missing
    cells written empty, as :func:`read_accuracy_csv` reads them back)."""
    _check_matrix(matrix, path, partial)
    frame = matrix.copy()
    frame.index.name = INDEX_NAME
    write_text(path, frame.to_csv(lineterminator="\n"))


# --------------------------------------------------------------------------- run summaries


def _accuracy(eval_: dict, name: str, source: str) -> float:
    return float(_score(eval_, name, source)["score"])


def _micro_accuracy(step_evals: Sequence[dict], tasks: Sequence[str], sources: Sequence[str],
                    own_models: bool) -> float | None:
    """Pooled correct/total over the tasks: O-LoRA's headline number, reported beside AA.

    Scored by the final model, or with ``own_models`` each task by its own model (PerTaskFT).
    None where a task's metric is not right-or-wrong (TRACE's ROUGE-L, edit similarity, SARI).
    """
    if own_models:
        records = [_score(e, task, s) for e, task, s in zip(step_evals, tasks, sources)]
    else:
        records = [_score(step_evals[-1], task, sources[-1]) for task in tasks]
    if not all("correct" in record for record in records):
        return None
    total = sum(int(r["total"]) for r in records)
    if total == 0:
        raise ValueError(f"{sources[-1]}: no test samples in tasks {list(tasks)}")
    return 100.0 * sum(int(r["correct"]) for r in records) / total


def _general_summary(evals: Sequence[dict], sources: Sequence[str]) -> dict[str, Any]:
    """General-ability accuracy before, during and after the sequence, and its retention."""
    base, *per_step = [_accuracy(e, GENERAL, s) for e, s in zip(evals, sources)]
    final = per_step[-1]
    return {
        "base": base,
        "per_step": per_step,
        "final": final,
        "retention": 100.0 * final / base if base else None,
    }


def _truncated(eval_: dict, tasks: Sequence[str]) -> int | None:
    counts = [((eval_.get("scores") or {}).get(task) or {}).get("truncated") for task in tasks]
    return None if None in counts else sum(counts)


def _option_summaries(base_eval: dict, step_evals: list[dict], tasks: list[str],
                      sources: Sequence[str], schedule: str) -> tuple[dict | None, dict | None]:
    """The option-ranking metrics (:func:`cl_metrics` of the ``ranked`` matrix, with the base
    model's mean) and the share of generated answers that are a listed option (base and final
    model, mean over tasks); both None unless every eval ranked every task."""
    ranked_everywhere = all("ranked" in ((e.get("scores") or {}).get(task) or {})
                            for e in (base_eval, *step_evals) for task in tasks)
    if not ranked_everywhere:
        return None, None
    ranked, in_options = (accuracy_matrix(base_eval, step_evals, tasks, sources=sources,
                                          schedule=schedule, score_key=key)
                          for key in ("ranked", "in_options"))
    return ({**cl_metrics(ranked), "base_accuracy": float(ranked.loc[BASE_ROW].mean())},
            {"base": float(in_options.iloc[0].mean()), "final": float(in_options.iloc[-1].mean())})


def summarise_run(
    base_eval: dict,
    step_evals: list[dict],
    tasks: list[str],
    meta: dict,
    *,
    sources: Sequence[str] | None = None,
    schedule: str = "sequential",
) -> tuple[pd.DataFrame, dict]:
    """Accuracy matrix and summary dict (meta + CL metrics + micro accuracy + general ability
    + option ranking).

    ``schedule`` as in :func:`accuracy_matrix`; under ``per_task`` the micro accuracy pools each
    task's own model's answers.
    """
    sources = list(sources) if sources is not None else _eval_names(
        [JOINT_ROW] if schedule == "joint" else tasks)
    matrix = accuracy_matrix(base_eval, step_evals, tasks, sources=sources, schedule=schedule)
    evals = [base_eval, *step_evals]
    ranked, in_options = _option_summaries(base_eval, step_evals, tasks, sources, schedule)
    summary = {
        **meta,
        **cl_metrics(matrix),
        "micro_accuracy": _micro_accuracy(step_evals, tasks, sources[1:], schedule == "per_task"),
        # what the base model already scores on the tasks: the floor learning is counted from
        "base_accuracy": _none_if_nan(float(matrix.loc[BASE_ROW].mean())),
        # studies without a general-ability set (real benchmarks) report None
        "general": (_general_summary(evals, sources)
                    if GENERAL in (base_eval.get("scores") or {}) else None),
        # prompts cut at evaluation.max_source_length, over the run's tasks (None: not counted)
        "truncated_prompts": _truncated(step_evals[-1], tasks),
        # tasks that list their options, scored by ranking them (None where any does not)
        "ranked": ranked,
        "answers_in_options": in_options,
        "tasks": list(tasks),
    }
    return matrix, summary


def run_environment(train_logs: Sequence[str | os.PathLike]) -> dict | list[dict] | None:
    """The environment the run's training jobs recorded (:func:`asvd.pipeline.runtime.environment`): one
    dict, or the distinct ones in step order if jobs ran in different places; None without logs."""
    distinct: list[dict] = []
    for path in train_logs:
        found = TaskLog.read(path).environment
        if found not in distinct:
            distinct.append(found)
    return (distinct[0] if len(distinct) == 1 else distinct) if distinct else None


def collect_run(
    base_eval_path: str | os.PathLike,
    step_eval_paths: Sequence[str | os.PathLike],
    tasks: list[str],
    matrix_csv: str | os.PathLike,
    summary_json: str | os.PathLike,
    meta: dict,
    schedule: str = "sequential",
    train_logs: Sequence[str | os.PathLike] = (),
    premise_json: str | os.PathLike | None = None,
    tuning_json: str | os.PathLike | None = None,
    tuned_keys: Sequence[str] = ("lr", "trr"),
    lr_scale: float = 1.0,
) -> dict:
    """Read a run's ``eval.json`` files and write its accuracy matrix and summary atomically;
    ``train_logs`` give the summary its ``environment``, ``premise_json`` (the run's
    :mod:`asvd.evaluation.premise` measurement) its ``premise`` (None where not measured),
    ``tuning_json`` (:mod:`asvd.train.tuning`) its ``tuning``: the lr and trr the run took of
    the choice (``tuned_keys``; a key it did not take is None; the lr times the method's
    ``lr_scale``, which is recorded too), the task and the number of trials (None where the
    method was not tuned)."""
    paths = [base_eval_path, *step_eval_paths]
    base_eval, *step_evals = [read_json(p) for p in paths]
    matrix, summary = summarise_run(
        base_eval, step_evals, tasks, meta, sources=[str(p) for p in paths], schedule=schedule
    )
    summary["environment"] = run_environment(train_logs)
    summary["premise"] = read_json(premise_json) if premise_json else None
    tuning = read_json(tuning_json) if tuning_json else None
    took = tuning and {key: value if key in tuned_keys else None
                       for key, value in tuning["choice"].items()}
    summary["tuning"] = tuning and {
        **took, "lr": took["lr"] * lr_scale if took["lr"] is not None else None,
        "lr_scale": lr_scale, "task": tuning["task"], "trials": tuning["trials"]}
    write_accuracy_csv(matrix, matrix_csv)
    write_json(summary_json, summary)
    return summary


# --------------------------------------------------------------------------- O-LoRA results


def _olora_steps(outputs: Path) -> list[tuple[str, Path]]:
    """(task, all_results.json) per step, ordered by the 1-based step in ``<k>-<task>``."""
    steps = {}
    for entry in outputs.iterdir():
        match = _OLORA_STEP_DIR.match(entry.name)
        if entry.is_dir() and match:
            steps[int(match.group(1))] = (match.group(2), entry / "all_results.json")
    if sorted(steps) != list(range(1, len(steps) + 1)):
        raise ValueError(f"{outputs}: step directories {sorted(steps)} are not 1..T")
    first = {}
    for k in sorted(steps):
        task = steps[k][0]
        if task in first:
            raise ValueError(f"{outputs}: task {task!r} is trained at steps {first[task]} and {k}; "
                             "an O-LoRA run trains each task once")
        first[task] = k
    return [steps[k] for k in sorted(steps)]


def _olora_value(results: Mapping, key: str, path: Path) -> float:
    value = results[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValueError(f"{path}: {key!r} is {value!r}, expected a percentage in [0, 100]")
    return float(value)


def fraction_scale(matrix: pd.DataFrame) -> str | None:
    """Why ``matrix`` looks like accuracies on a 0-1 scale rather than percent, or None: every
    cell at most 1 and one above 0 (a published log or spreadsheet that wrote 0.985 for 98.5 %)."""
    values = matrix.to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    if values.size and 0 < values.max() <= 1:
        return (f"every accuracy is at most 1 (largest {values.max():g}): these look like "
                "fractions, and accuracies are read as percentages (write 98.5 for 0.985)")
    return None


def read_olora_results(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Accuracy matrix (steps 1..T, no base row) from O-LoRA's published per-step results.

    Entries for tasks not yet seen at a step are NaN; O-LoRA does not evaluate them. A step
    whose file holds no predictions at all (published runs have such steps, e.g. SeqLoRA order 1
    step 3) gives a NaN row; a step that has predictions but lacks a seen task is an error.
    """
    steps = _olora_steps(Path(run_dir) / "outputs")
    tasks = [task for task, _ in steps]
    matrix = pd.DataFrame(
        np.nan, index=pd.Index(tasks, name=INDEX_NAME), columns=tasks, dtype=float
    )
    for k, (task, results_path) in enumerate(steps, start=1):
        results = read_json(results_path)
        if not isinstance(results, dict):
            raise ValueError(f"{results_path}: a JSON {type(results).__name__}, expected an object "
                             f"of metrics ({_OLORA_PREFIX}<task>: percent)")
        if not any(key.startswith(_OLORA_PREFIX) for key in results):
            continue
        for seen in tasks[:k]:
            key = _OLORA_PREFIX + seen
            if key not in results:
                raise ValueError(f"{results_path}: missing {key!r}")
            matrix.loc[task, seen] = _olora_value(results, key, results_path)
    return matrix
