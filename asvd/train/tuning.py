"""Every method tuned alike on the first task of an order, as the paper tunes its settings.

One declared grid (config ``tuning``): the learning rates every tuned method tries, and for a
method whose rank rule is the importance rule also its trr values (its mrr stays). Each
candidate trains the order's first task from the base model, on that task's training records
less a seeded validation share, with the study's own training stage
(:func:`asvd.train.finetune.finetune_task`), and is scored on the held-out share by the study's
own evaluation. The choice is the best validation score, ties going to the most conservative
candidate (the lowest lr, then the highest trr: the gentlest update that reaches it); every task
of that method's runs in that order then trains with it (:func:`asvd.train.choice.apply_choice`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asvd.data.prepare import load_records
from asvd.evaluation.evaluate import evaluate_checkpoint
from asvd.io import write_json, write_jsonl
from asvd.train.choice import apply_choice, candidates, choose
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task


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


def tune_first_task(base: str | Path, train_file: str | Path, task: str, task_count: int,
                    method: Mapping, settings: Mapping, grid: Mapping, validation: float,
                    seed: int, evaluation: Mapping, out_json: str | Path,
                    svd_path: str | Path | None = None, gpus: int = 0) -> dict:
    """Train every candidate of ``grid`` on ``task`` from ``base``, score it on the held-out
    share, and write the scores and the choice to ``out_json``.

    The candidates' checkpoints live in a work folder beside ``out_json`` that is removed
    afterwards (a killed job's is removed by the next attempt). Each candidate trains as a
    training job does, on the job's ``gpus`` (:func:`asvd.train.finetune.finetune_task`).
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
                tuned_settings, seed, where / "model", where / "train_log.json", gpus=gpus)
            # the choice is made on the task's metric alone: no option ranking
            scored = evaluate_checkpoint(where / "model", {task: work / "validation.jsonl"},
                                         where / "eval.json", **{**evaluation, "rank_options": False})
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
