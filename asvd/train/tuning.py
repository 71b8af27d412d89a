"""Every method tuned alike on the first task of an order, as the paper tunes its settings.

One declared grid (config ``tuning``): the learning rates every tuned method tries, and for a
method whose rank rule is the importance rule also its trr values (its mrr stays). Each
candidate trains the order's first task from the base model, on that task's training records
less a seeded validation share, with the study's own training stage
(:func:`asvd.train.finetune.finetune_task`), and is scored on the held-out share by the study's
own evaluation. The choice is the best validation score, ties going to the most conservative
candidate (the lowest lr, then the highest trr: the gentlest update that reaches it); every task
of that method's runs in that order then trains with it (:func:`apply_choice`).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asvd.data.prepare import load_records
from asvd.evaluation.evaluate import evaluate_checkpoint
from asvd.io import read_json, write_json, write_jsonl
from asvd.methods import Method
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task


def candidates(method: Mapping, grid: Mapping) -> list[dict]:
    """The grid's points for ``method``: every ``lr``, times every ``trr`` where its rank rule
    is the importance rule and constrains the first task (``trr`` None otherwise: with
    ``first_task: full`` the first task cannot tell trr values apart), in the grid's order."""
    declared = Method.from_config(method)
    by_trr = declared.uses_importance and declared.constrained_on(1)
    trrs = (grid.get("trr") or []) if by_trr else []
    return [{"lr": lr, "trr": trr} for lr, trr in itertools.product(grid["lr"], trrs or [None])]


def apply_choice(method: Mapping, settings: Mapping, choice: Mapping,
                 keys: Sequence[str] = ("lr", "trr")) -> tuple[dict, dict]:
    """The method block and train settings with the tuned ``keys`` of ``choice`` put in: its
    ``lr``, and its ``trr`` where tuned (a retention-ablation variant takes the lr alone)."""
    settings = {**settings, "lr": choice["lr"]} if "lr" in keys else dict(settings)
    if "trr" in keys and choice.get("trr") is not None:
        method = {**method, "rank_rule": {**method["rank_rule"], "trr": choice["trr"]}}
    return dict(method), settings


def validation_split(records: Sequence[Mapping], fraction: float,
                     seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation): a seeded ``fraction`` of ``records`` held out, at least one each."""
    if len(records) < 2:
        raise ValueError(f"tuning: {len(records)} training record(s) cannot be split for validation")
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    held = min(max(1, round(fraction * len(records))), len(records) - 1)
    chosen = set(order[:held])
    return ([dict(r) for i, r in enumerate(records) if i not in chosen],
            [dict(r) for i, r in enumerate(records) if i in chosen])


def choose(results: Sequence[Mapping]) -> dict:
    """The best validation score; ties to the lowest lr, then the highest trr."""
    best = max(result["score"] for result in results)
    tied = [result for result in results if result["score"] == best]
    pick = min(tied, key=lambda r: (r["lr"], -(r["trr"] if r["trr"] is not None else 0.0)))
    return {"lr": pick["lr"], "trr": pick["trr"]}


def tune_first_task(base: str | Path, train_file: str | Path, task: str, task_count: int,
                    method: Mapping, settings: Mapping, grid: Mapping, validation: float,
                    seed: int, evaluation: Mapping, out_json: str | Path,
                    svd_path: str | Path | None = None) -> dict:
    """Train every candidate of ``grid`` on ``task`` from ``base``, score it on the held-out
    share, and write the scores and the choice to ``out_json``.

    The candidates' checkpoints live in a work folder beside ``out_json`` that is removed
    afterwards (a killed job's is removed by the next attempt).
    """
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.work"):
        shutil.rmtree(stale, ignore_errors=True)
    train, held_out = validation_split(load_records(train_file), validation, seed)
    results = []
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".work", dir=out.parent))
    try:
        write_jsonl(work / "train.jsonl", train)
        write_jsonl(work / "validation.jsonl", held_out)
        for number, candidate in enumerate(candidates(method, grid)):
            tuned_method, tuned_settings = apply_choice(method, settings, candidate)
            where = work / f"candidate{number}"
            log = finetune_task(
                TaskInputs(checkpoint=base, train_file=work / "train.jsonl", svd_path=svd_path),
                TaskPosition(task=task, index=1, count=task_count), tuned_method,
                tuned_settings, seed, where / "model", where / "train_log.json")
            scored = evaluate_checkpoint(where / "model", {task: work / "validation.jsonl"},
                                         where / "eval.json", **evaluation)
            results.append({**candidate, "score": scored["scores"][task]["score"],
                            "final_loss": log["final_loss"]})
            shutil.rmtree(where)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"task": task, "seed": seed, "validation": validation,
              "records": {"train": len(train), "validation": len(held_out)},
              "trials": len(results), "candidates": results, "choice": choose(results)}
    write_json(out, result)
    return result


def read_choice(path: str | Path) -> dict:
    """The choice a tuning job wrote (named by file if it has none)."""
    found = read_json(path).get("choice")
    if not isinstance(found, dict) or "lr" not in found:
        raise ValueError(f"{path}: no tuning choice (expected {{'choice': {{'lr': ..., 'trr': ...}}}})")
    return found
