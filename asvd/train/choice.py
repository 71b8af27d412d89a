"""What tuning on the first task chooses and how a run takes it (standard library only: the
workflow reads it while parsed, and the training and premise stages apply a choice without
importing the evaluation that made it; :mod:`asvd.train.tuning` runs the candidates)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping, Sequence

from asvd.io import read_json
from asvd.method_config import Method


def candidates(method: Mapping, grid: Mapping) -> list[dict]:
    """The grid's points for ``method``: every ``lr``, times every ``trr`` where its rank rule
    is the importance rule and constrains the first task (``trr`` None otherwise: with
    ``first_task: full`` the first task cannot tell trr values apart), in the grid's order."""
    declared = Method.from_config(method)
    by_trr = declared.uses_importance and declared.constrained_on(1)
    trrs = (grid.get("trr") or []) if by_trr else []
    return [{"lr": lr, "trr": trr} for lr, trr in itertools.product(grid["lr"], trrs or [None])]


def choose(results: Sequence[Mapping]) -> dict:
    """The best validation score; ties to the lowest lr, then the highest trr."""
    best = max(result["score"] for result in results)
    tied = [result for result in results if result["score"] == best]
    pick = min(tied, key=lambda r: (r["lr"], -(r["trr"] if r["trr"] is not None else 0.0)))
    return {"lr": pick["lr"], "trr": pick["trr"]}


def apply_choice(method: Mapping, settings: Mapping, choice: Mapping,
                 keys: Sequence[str] = ("lr", "trr")) -> tuple[dict, dict]:
    """The method block and train settings with the tuned ``keys`` of ``choice`` put in: its
    ``lr``, and its ``trr`` where tuned (a retention-ablation variant takes the lr alone)."""
    settings = {**settings, "lr": choice["lr"]} if "lr" in keys else dict(settings)
    if "trr" in keys and choice.get("trr") is not None:
        method = {**method, "rank_rule": {**method["rank_rule"], "trr": choice["trr"]}}
    return dict(method), settings


def read_choice(path: str | Path) -> dict:
    """The choice a tuning job wrote (named by file if it has none)."""
    found = read_json(path).get("choice")
    if not isinstance(found, dict) or "lr" not in found:
        raise ValueError(f"{path}: no tuning choice (expected {{'choice': {{'lr': ..., 'trr': ...}}}})")
    return found
